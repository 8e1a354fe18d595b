package dicomseg

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/channel"
)

// ErrNotDICOM is returned for input without the Part 10 preamble and prefix.
var ErrNotDICOM = errors.New("not a DICOM Part 10 file")

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

// Decode reads a SEG file whose pixel data is native, in any transfer syntax.
func Decode(data []byte) (*Segmentation, error) {
	f, err := dcm.ReadPart10(bytes.NewReader(data), dcm.ParseOptions{})
	switch {
	case err != nil:
		return nil, fmt.Errorf("decode SEG: %w", err)
	case f.NoMeta:
		return nil, fmt.Errorf("decode SEG: %w", ErrNotDICOM)
	}
	seg, err := decode(f.DataSet)
	if err != nil {
		return nil, fmt.Errorf("decode SEG: %w", err)
	}
	return seg, nil
}

// ints returns the values of an integer attribute; nil when absent or malformed.
func ints(ds *dcm.DataSet, t dcm.Tag) []int {
	v, err := ds.Ints(t)
	if err != nil {
		return nil
	}
	out := make([]int, len(v))
	for i, n := range v {
		out[i] = int(n)
	}
	return out
}

// first returns the first item of a sequence, or nil.
func first(ds *dcm.DataSet, t dcm.Tag) *dcm.DataSet {
	if items := ds.Items(t); len(items) > 0 {
		return items[0]
	}
	return nil
}

func decode(ds *dcm.DataSet) (*Segmentation, error) {
	s := &Segmentation{
		SOPClassUID:         ds.String(dcm.SOPClassUID),
		SOPInstanceUID:      ds.String(dcm.SOPInstanceUID),
		SeriesInstanceUID:   ds.String(dcm.SeriesInstanceUID),
		StudyInstanceUID:    ds.String(dcm.StudyInstanceUID),
		FrameOfReferenceUID: ds.String(dcm.FrameOfReferenceUID),
		PatientID:           ds.String(dcm.PatientID),
		Type:                ds.String(dcm.SegmentationType),
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
	if s.Rows, err = one("rows", ints(ds, dcm.Rows)); err != nil {
		return nil, err
	}
	if s.Columns, err = one("columns", ints(ds, dcm.Columns)); err != nil {
		return nil, err
	}
	bits, err := one("bits allocated", ints(ds, dcm.BitsAllocated))
	if err != nil {
		return nil, err
	}
	frames := 1
	if v := ints(ds, dcm.NumberOfFrames); v != nil {
		if frames, err = one("number of frames", v); err != nil {
			return nil, err
		}
	}
	if v := ints(ds, dcm.MaximumFractionalValue); len(v) == 1 {
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

	for _, item := range ds.Items(dcm.SegmentSequence) {
		info := SegmentInfo{
			Label:         item.String(dcm.SegmentLabel),
			Description:   item.String(dcm.SegmentDescription),
			AlgorithmType: item.String(dcm.SegmentAlgorithmType),
			AlgorithmName: item.String(dcm.SegmentAlgorithmName),
			Category:      codeOf(first(item, dcm.SegmentedPropertyCategoryCodeSequence)),
			Type:          codeOf(first(item, dcm.SegmentedPropertyTypeCodeSequence)),
		}
		if v := ints(item, dcm.SegmentNumber); len(v) == 1 {
			info.Number = v[0]
		}
		s.Segments = append(s.Segments, info)
	}

	pixels := ds.Find(dcm.PixelData)
	switch {
	case pixels == nil:
		return nil, errors.New("no pixel data")
	case pixels.Fragments != nil:
		return nil, errors.New("encapsulated pixel data is not supported")
	}
	value := pixels.Value
	size := s.Rows * s.Columns
	perByte := 1
	if bits == 1 {
		perByte = 8
	}
	// Checked before multiplying, so hostile sizes cannot overflow or allocate without bound.
	if frames > len(value)*perByte/size {
		return nil, fmt.Errorf("pixel data has %d bytes, too few for %d frames of %dx%d", len(value), frames, s.Columns, s.Rows)
	}
	if need := (frames*size + perByte - 1) / perByte; len(value) < need {
		return nil, fmt.Errorf("pixel data has %d bytes; %d frames of %dx%d need %d", len(value), frames, s.Columns, s.Rows, need)
	}

	shared := first(ds, dcm.SharedFunctionalGroupsSequence)
	perFrame := ds.Items(dcm.PerFrameFunctionalGroupsSequence)
	if len(perFrame) != 0 && len(perFrame) != frames {
		return nil, fmt.Errorf("%d per-frame functional groups for %d frames", len(perFrame), frames)
	}
	// A functional group is looked up in the frame's item first, then in the shared item.
	group := func(f int, tag dcm.Tag) *dcm.DataSet {
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
		if v := ints(group(f, dcm.SegmentIdentificationSequence), dcm.ReferencedSegmentNumber); len(v) == 1 {
			fr.SegmentNumber = v[0]
		}
		fr.DimensionIndexValues = ints(group(f, dcm.FrameContentSequence), dcm.DimensionIndexValues)
		fr.Position = floats(group(f, dcm.PlanePositionSequence), dcm.ImagePositionPatient)
		for _, item := range group(f, dcm.DerivationImageSequence).Items(dcm.SourceImageSequence) {
			src := FrameSource{SOPClassUID: item.String(dcm.ReferencedSOPClassUID), SOPInstanceUID: item.String(dcm.ReferencedSOPInstanceUID)}
			if v := ints(item, dcm.ReferencedFrameNumber); len(v) > 0 {
				src.FrameNumber = v[0]
			}
			fr.Sources = append(fr.Sources, src)
		}
		fr.Pixels = make([]byte, size)
		if bits == 1 {
			// Frames follow each other bit by bit, least significant bit first.
			for p, k := 0, f*size; p < size; p, k = p+1, k+1 {
				fr.Pixels[p] = value[k>>3] >> (k & 7) & 1
			}
		} else {
			copy(fr.Pixels, value[f*size:])
		}
	}
	return s, nil
}

func codeOf(item *dcm.DataSet) channel.Code {
	return channel.Code{Value: item.String(dcm.CodeValue), Scheme: item.String(dcm.CodingSchemeDesignator), Meaning: item.String(dcm.CodeMeaning)}
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
