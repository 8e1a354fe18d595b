package dicomseg

import (
	"errors"
	"fmt"

	"github.com/espnode/espnode/seg/channel"
)

// LabelmapSegmentationStorage is the SOP class of label-map SEGs, which Decode also reads.
const LabelmapSegmentationStorage = "1.2.840.10008.5.1.4.1.1.66.7"

// Segmentation is a decoded SEG: what tests need to compare it with what was encoded.
type Segmentation struct {
	SOPClassUID       string
	SOPInstanceUID    string
	SeriesInstanceUID string
	StudyInstanceUID  string
	// FrameOfReferenceUID is empty when the SEG has no Frame of Reference module.
	FrameOfReferenceUID string
	PatientID           string
	// Type is the Segmentation Type: BINARY, FRACTIONAL or LABELMAP.
	Type          string
	Rows, Columns int
	// MaxFractional is the Maximum Fractional Value of a FRACTIONAL SEG.
	MaxFractional int
	Segments      []SegmentInfo
	Frames        []Frame
}

// SegmentInfo is one Segment Sequence item.
type SegmentInfo struct {
	Number        int
	Label         string
	Description   string
	AlgorithmType string
	AlgorithmName string
	Category      channel.Code
	Type          channel.Code
}

// Frame is one SEG frame and what it refers to.
type Frame struct {
	// SegmentNumber is the Referenced Segment Number; 0 in a LABELMAP SEG, whose pixel values
	// are the segment numbers.
	SegmentNumber int
	// Sources are the source images the frame was derived from.
	Sources              []FrameSource
	DimensionIndexValues []int
	// Position is the Image Position (Patient); nil when absent.
	Position []float64
	// Pixels holds Rows*Columns values: 0 or 1 for BINARY, stored values otherwise.
	Pixels []byte
}

// FrameSource is one Source Image Sequence item of a frame's Derivation Image.
type FrameSource struct {
	SOPClassUID    string
	SOPInstanceUID string
	// FrameNumber is the Referenced Frame Number; 0 when absent (a single-frame source).
	FrameNumber int
}

// Decode reads a SEG file in implicit, explicit or deflated explicit VR little endian.
func Decode(data []byte) (*Segmentation, error) {
	ds, err := parseFile(data)
	if err != nil {
		return nil, fmt.Errorf("decode SEG: %w", err)
	}
	seg, err := decode(ds)
	if err != nil {
		return nil, fmt.Errorf("decode SEG: %w", err)
	}
	return seg, nil
}

func decode(ds []rawElement) (*Segmentation, error) {
	s := &Segmentation{
		SOPClassUID:         text(ds, 0x00080016),
		SOPInstanceUID:      text(ds, 0x00080018),
		SeriesInstanceUID:   text(ds, 0x0020000E),
		StudyInstanceUID:    text(ds, 0x0020000D),
		FrameOfReferenceUID: text(ds, 0x00200052),
		PatientID:           text(ds, 0x00100020),
		Type:                text(ds, 0x00620001),
	}
	if s.SOPClassUID != SegmentationStorage && s.SOPClassUID != LabelmapSegmentationStorage {
		return nil, fmt.Errorf("SOP class %q is not a segmentation", s.SOPClassUID)
	}
	one := func(name string, v []int) (int, error) {
		if len(v) != 1 {
			return 0, fmt.Errorf("%s missing or malformed", name)
		}
		return v[0], nil
	}
	var err error
	if s.Rows, err = one("rows", us(ds, 0x00280010)); err != nil {
		return nil, err
	}
	if s.Columns, err = one("columns", us(ds, 0x00280011)); err != nil {
		return nil, err
	}
	bits, err := one("bits allocated", us(ds, 0x00280100))
	if err != nil {
		return nil, err
	}
	frames := 1
	if v := integers(ds, 0x00280008); v != nil {
		if frames, err = one("number of frames", v); err != nil {
			return nil, err
		}
	}
	if v := us(ds, 0x0062000E); len(v) == 1 {
		s.MaxFractional = v[0]
	}
	switch {
	case s.Type == "BINARY" && bits == 1:
	case (s.Type == "FRACTIONAL" || s.Type == "LABELMAP") && bits == 8:
	default:
		return nil, fmt.Errorf("segmentation type %q with %d bits allocated is not supported", s.Type, bits)
	}
	if s.Rows <= 0 || s.Columns <= 0 || frames <= 0 {
		return nil, fmt.Errorf("%d frames of %dx%d", frames, s.Columns, s.Rows)
	}

	if e := find(ds, 0x00620002); e != nil {
		for _, item := range e.items {
			info := SegmentInfo{
				Label:         text(item, 0x00620005),
				Description:   text(item, 0x00620006),
				AlgorithmType: text(item, 0x00620008),
				AlgorithmName: text(item, 0x00620009),
				Category:      codeOf(first(item, 0x00620003)),
				Type:          codeOf(first(item, 0x0062000F)),
			}
			if v := us(item, 0x00620004); len(v) == 1 {
				info.Number = v[0]
			}
			s.Segments = append(s.Segments, info)
		}
	}

	pixels := find(ds, tagPixelData)
	if pixels == nil {
		return nil, errors.New("no pixel data")
	}
	size := s.Rows * s.Columns
	perByte := 1
	if bits == 1 {
		perByte = 8
	}
	// Checked before multiplying, so hostile sizes cannot overflow or allocate without bound.
	if frames > len(pixels.value)*perByte/size {
		return nil, fmt.Errorf("pixel data has %d bytes, too few for %d frames of %dx%d", len(pixels.value), frames, s.Columns, s.Rows)
	}
	if need := (frames*size + perByte - 1) / perByte; len(pixels.value) < need {
		return nil, fmt.Errorf("pixel data has %d bytes; %d frames of %dx%d need %d", len(pixels.value), frames, s.Columns, s.Rows, need)
	}

	shared := first(ds, 0x52009229)
	var perFrame [][]rawElement
	if e := find(ds, 0x52009230); e != nil {
		perFrame = e.items
	}
	if len(perFrame) != 0 && len(perFrame) != frames {
		return nil, fmt.Errorf("%d per-frame functional groups for %d frames", len(perFrame), frames)
	}
	// A functional group is looked up in the frame's item first, then in the shared item.
	group := func(f int, tag uint32) []rawElement {
		if f < len(perFrame) {
			if g := first(perFrame[f], tag); g != nil {
				return g
			}
		}
		return first(shared, tag)
	}
	s.Frames = make([]Frame, frames)
	for f := range s.Frames {
		fr := &s.Frames[f]
		if v := us(group(f, 0x0062000A), 0x0062000B); len(v) == 1 {
			fr.SegmentNumber = v[0]
		}
		fr.DimensionIndexValues = ul(group(f, 0x00209111), 0x00209157)
		fr.Position = floats(group(f, 0x00209113), 0x00200032)
		if e := find(group(f, 0x00089124), 0x00082112); e != nil {
			for _, item := range e.items {
				src := FrameSource{SOPClassUID: text(item, 0x00081150), SOPInstanceUID: text(item, 0x00081155)}
				if v := integers(item, 0x00081160); len(v) > 0 {
					src.FrameNumber = v[0]
				}
				fr.Sources = append(fr.Sources, src)
			}
		}
		fr.Pixels = make([]byte, size)
		if bits == 1 {
			// Frames follow each other bit by bit, least significant bit first.
			for p, k := 0, f*size; p < size; p, k = p+1, k+1 {
				fr.Pixels[p] = pixels.value[k>>3] >> (k & 7) & 1
			}
		} else {
			copy(fr.Pixels, pixels.value[f*size:])
		}
	}
	return s, nil
}

func codeOf(item []rawElement) channel.Code {
	return channel.Code{Value: text(item, 0x00080100), Scheme: text(item, 0x00080102), Meaning: text(item, 0x00080104)}
}

// Mask returns the pixels of the frame holding segment over a source frame (0 for a
// single-frame source), or nil when the SEG has no such frame.
func (s *Segmentation) Mask(segment int, sourceUID string, sourceFrame int) []byte {
	for _, f := range s.Frames {
		if f.SegmentNumber != segment {
			continue
		}
		for _, src := range f.Sources {
			if src.SOPInstanceUID == sourceUID && src.FrameNumber == sourceFrame {
				return f.Pixels
			}
		}
	}
	return nil
}
