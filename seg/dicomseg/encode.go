package dicomseg

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/espnode/espnode/seg/channel"
)

// SegmentationStorage is the SOP class of what Encode makes.
const SegmentationStorage = "1.2.840.10008.5.1.4.1.1.66.4"

// SegmentationType selects how mask values are stored.
type SegmentationType int

const (
	// Binary stores one bit per pixel; masks hold 0 or 1.
	Binary SegmentationType = iota
	// Fractional stores one byte per pixel as a probability; masks hold 0..255, where 255 means 1.
	Fractional
)

func (t SegmentationType) String() string {
	switch t {
	case Binary:
		return "BINARY"
	case Fractional:
		return "FRACTIONAL"
	}
	return fmt.Sprintf("SegmentationType(%d)", int(t))
}

// maxFractional is the Maximum Fractional Value: a byte's full range.
const maxFractional = 255

// Segment is one segmented property and its masks.
type Segment struct {
	Label       string // Segment Label (LO)
	Description string // Segment Description (ST); optional
	Category    channel.Code
	Type        channel.Code
	// Masks holds one mask per source frame, in frame order. Each is Rows*Columns values in
	// row-major order: 0 or 1 for Binary, 0..255 for Fractional. A nil mask means the frame was
	// not segmented (say, one tile of a slide) and gets no SEG frame; an all-zero mask is an
	// empty result and is kept unless Options.OmitEmptyFrames.
	Masks [][]byte
}

// SegmentForChannel makes a Segment carrying a model channel's label and codes.
func SegmentForChannel(ch channel.Channel, masks [][]byte) Segment {
	return Segment{
		Label:       ch.Label,
		Description: fmt.Sprintf("%s (ESP-MedSAM %s channel)", ch.Label, ch.Name),
		Category:    ch.Category,
		Type:        ch.Type,
		Masks:       masks,
	}
}

// Equipment describes the device that made the SEG: General and Enhanced General Equipment.
type Equipment struct {
	Manufacturer       string
	ModelName          string
	SoftwareVersions   string
	DeviceSerialNumber string
}

// Options are the SEG's configurable attributes. Zero values take the documented defaults.
type Options struct {
	Type              SegmentationType
	SeriesNumber      int    // default 300
	SeriesDescription string // default "ESP-MedSAM segmentation"
	InstanceNumber    int    // default 1
	// ContentLabel is a CS code string; default "SEGMENTATION".
	ContentLabel       string
	ContentDescription string
	ContentCreatorName string
	Equipment          Equipment // each field defaults to "espnode", "espnode", "0", "0"
	AlgorithmName      string    // default "ESP-MedSAM"
	AlgorithmVersion   string    // default "unknown"
	// OmitEmptyFrames leaves out frames whose mask is all zero. Off by default because viewers
	// misplace SEGs whose frames do not cover the source; the segment's description stays either way.
	OmitEmptyFrames bool
	// SOPInstanceUID and SeriesInstanceUID default to new UUID-derived UIDs. Setting them makes
	// re-encoding (say, a job retried after a crash) produce the same instance.
	SOPInstanceUID    string
	SeriesInstanceUID string
	// Time stamps the content and instance creation; default now.
	Time time.Time
}

// Defaults for Options.
const (
	DefaultSeriesNumber      = 300
	DefaultSeriesDescription = "ESP-MedSAM segmentation"
	DefaultContentLabel      = "SEGMENTATION"
	DefaultAlgorithmName     = "ESP-MedSAM"
	DefaultAlgorithmVersion  = "unknown"
)

func (o Options) withDefaults() Options {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	if o.SeriesNumber == 0 {
		o.SeriesNumber = DefaultSeriesNumber
	}
	if o.InstanceNumber == 0 {
		o.InstanceNumber = 1
	}
	def(&o.SeriesDescription, DefaultSeriesDescription)
	def(&o.ContentLabel, DefaultContentLabel)
	def(&o.Equipment.Manufacturer, "espnode")
	def(&o.Equipment.ModelName, "espnode")
	def(&o.Equipment.SoftwareVersions, "0")
	def(&o.Equipment.DeviceSerialNumber, "0")
	def(&o.AlgorithmName, DefaultAlgorithmName)
	def(&o.AlgorithmVersion, DefaultAlgorithmVersion)
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	return o
}

// Result is an encoded SEG.
type Result struct {
	// Bytes is the Part 10 file: preamble, file meta information, data set.
	Bytes             []byte
	SOPClassUID       string
	SOPInstanceUID    string
	SeriesInstanceUID string
	StudyInstanceUID  string
	// TransferSyntaxUID is the data set's transfer syntax.
	TransferSyntaxUID string
	// Frames is the number of frames written.
	Frames int

	dataSetOffset int
}

// DataSet returns the encoded data set, after the file meta information, without parsing
// anything: the encoder knows where the meta it wrote ends.
func (r *Result) DataSet() []byte { return r.Bytes[r.dataSetOffset:] }

// frameRef is one SEG frame: a segment's mask over one source frame.
type frameRef struct {
	segment int // 1-based segment number
	source  int // index into the encoder's sourceFrames
}

// Encode makes a Segmentation Storage instance for src with the given segments.
func Encode(src *Source, segments []Segment, opts Options) (*Result, error) {
	return EncodeSeries([]*Source{src}, segments, opts)
}

// EncodeSeries makes one Segmentation Storage instance for several source instances of a
// study, such as the slices of a CT series. Each segment's Masks run over the sources' frames in
// order: every frame of sources[0], then of sources[1], and so on. With more than one source,
// all must share a frame of reference and plane geometry (spacing and orientation), and their
// frames must lie at distinct positions: that is how the SEG's frames are told apart.
func EncodeSeries(sources []*Source, segments []Segment, opts Options) (*Result, error) {
	frames, geometry, err := combine(sources)
	if err != nil {
		return nil, fmt.Errorf("encode SEG: %w", err)
	}
	opts = opts.withDefaults()
	if err := checkSegments(sources[0].Rows, sources[0].Columns, len(frames), segments, opts.Type); err != nil {
		return nil, fmt.Errorf("encode SEG: %w", err)
	}
	if err := checkOptions(opts); err != nil {
		return nil, fmt.Errorf("encode SEG: %w", err)
	}
	sopUID, seriesUID := opts.SOPInstanceUID, opts.SeriesInstanceUID
	for _, p := range []*string{&sopUID, &seriesUID} {
		if *p == "" {
			if *p, err = NewUID(); err != nil {
				return nil, fmt.Errorf("encode SEG: %w", err)
			}
		}
	}
	dimOrgUID, err := NewUID()
	if err != nil {
		return nil, fmt.Errorf("encode SEG: %w", err)
	}

	e := encoder{
		sources:      sources,
		sourceFrames: frames,
		geometry:     geometry,
		segments:     segments,
		opts:         opts,
		frames:       selectFrames(segments, opts.OmitEmptyFrames),
		dimOrgUID:    dimOrgUID,
	}
	pixels := e.pixelData()
	ds := e.dataset(sopUID, seriesUID, pixels)

	var buf bytes.Buffer
	buf.Grow(len(pixels) + 64*1024)
	if err := writeFile(&buf, SegmentationStorage, sopUID, ds); err != nil {
		return nil, fmt.Errorf("encode SEG: %w", err)
	}
	b := buf.Bytes()
	// writeFile put the meta's group length, a 4-byte value, at bytes 140..143 (after the
	// preamble, "DICM" and that element's header); the data set follows the group.
	return &Result{Bytes: b, SOPClassUID: SegmentationStorage, SOPInstanceUID: sopUID, SeriesInstanceUID: seriesUID,
		StudyInstanceUID: sources[0].Study.InstanceUID, TransferSyntaxUID: explicitVRLittleEndian, Frames: len(e.frames),
		dataSetOffset: 144 + int(binary.LittleEndian.Uint32(b[140:144]))}, nil
}

// sourceFrame is one frame of one source instance.
type sourceFrame struct {
	src    *Source
	number int // 1-based within src
}

// combine checks the sources and lists their frames, with the plane geometry they share
// (nil when unknown).
func combine(sources []*Source) ([]sourceFrame, *Geometry, error) {
	if len(sources) == 0 {
		return nil, nil, errors.New("no source")
	}
	var frames []sourceFrame
	for i, src := range sources {
		if src == nil {
			return nil, nil, fmt.Errorf("source %d is nil", i+1)
		}
		if err := src.validate(); err != nil {
			return nil, nil, fmt.Errorf("source %d: %w", i+1, err)
		}
		for n := range src.Frames {
			frames = append(frames, sourceFrame{src: src, number: n + 1})
		}
	}
	first := sources[0]
	if len(sources) == 1 {
		return frames, first.Geometry, nil
	}
	g := &Geometry{}
	sameThickness := true
	for i, src := range sources {
		switch {
		case src.Study.InstanceUID != first.Study.InstanceUID:
			return nil, nil, fmt.Errorf("source %d is in study %s, source 1 in %s", i+1, src.Study.InstanceUID, first.Study.InstanceUID)
		case src.Rows != first.Rows || src.Columns != first.Columns:
			return nil, nil, fmt.Errorf("source %d is %dx%d, source 1 %dx%d", i+1, src.Columns, src.Rows, first.Columns, first.Rows)
		case src.FrameOfReferenceUID != first.FrameOfReferenceUID:
			return nil, nil, fmt.Errorf("source %d has frame of reference %q, source 1 %q", i+1, src.FrameOfReferenceUID, first.FrameOfReferenceUID)
		case src.Geometry == nil:
			return nil, nil, fmt.Errorf("source %d has no plane geometry, which several sources need", i+1)
		case src.Geometry.PixelSpacing != first.Geometry.PixelSpacing || src.Geometry.Orientation != first.Geometry.Orientation:
			return nil, nil, fmt.Errorf("source %d differs from source 1 in pixel spacing or orientation", i+1)
		}
		g.Positions = append(g.Positions, src.Geometry.Positions...)
		sameThickness = sameThickness && src.Geometry.SliceThickness == first.Geometry.SliceThickness
	}
	if !distinct(g.Positions) {
		return nil, nil, errors.New("two source frames lie at the same position")
	}
	g.PixelSpacing, g.Orientation = first.Geometry.PixelSpacing, first.Geometry.Orientation
	if sameThickness {
		// Otherwise it stays 0, unknown, and is left out.
		g.SliceThickness = first.Geometry.SliceThickness
	}
	return frames, g, nil
}

func checkSegments(rows, columns, frames int, segments []Segment, typ SegmentationType) error {
	if typ != Binary && typ != Fractional {
		return fmt.Errorf("unknown segmentation type %v", typ)
	}
	if len(segments) == 0 {
		return errors.New("no segments")
	}
	if len(segments) > 0xFFFF {
		return fmt.Errorf("%d segments; at most 65535 fit Segment Number", len(segments))
	}
	size := rows * columns
	masks := 0
	for i, s := range segments {
		if s.Label == "" || len(s.Label) > 64 {
			return fmt.Errorf("segment %d: label must be 1..64 characters, got %q", i+1, s.Label)
		}
		if len(s.Description) > 1024 {
			return fmt.Errorf("segment %d: description longer than 1024 characters", i+1)
		}
		for _, c := range []struct {
			what string
			code channel.Code
		}{{"category", s.Category}, {"type", s.Type}} {
			if err := c.code.Validate(); err != nil {
				return fmt.Errorf("segment %d %s: %w", i+1, c.what, err)
			}
		}
		if len(s.Masks) != frames {
			return fmt.Errorf("segment %d: %d masks for %d source frames", i+1, len(s.Masks), frames)
		}
		for f, m := range s.Masks {
			if m == nil {
				continue
			}
			masks++
			if len(m) != size {
				return fmt.Errorf("segment %d frame %d: mask has %d values, want %dx%d=%d", i+1, f+1, len(m), columns, rows, size)
			}
			if typ == Binary {
				if j := slices.IndexFunc(m, func(v byte) bool { return v > 1 }); j >= 0 {
					return fmt.Errorf("segment %d frame %d: value %d at pixel %d; BINARY masks hold 0 or 1", i+1, f+1, m[j], j)
				}
			}
		}
	}
	if masks == 0 {
		return errors.New("every mask is nil: no frame was segmented")
	}
	return nil
}

func checkOptions(o Options) error {
	for _, f := range []struct{ name, v string }{
		{"SOP instance UID", o.SOPInstanceUID},
		{"series instance UID", o.SeriesInstanceUID},
	} {
		if f.v != "" && !validUID(f.v) {
			return fmt.Errorf("%s %q is not a valid UID", f.name, f.v)
		}
	}
	if o.SeriesNumber < 0 || o.InstanceNumber < 0 {
		return fmt.Errorf("series number %d and instance number %d must not be negative", o.SeriesNumber, o.InstanceNumber)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"series description", o.SeriesDescription, 64},
		{"content label", o.ContentLabel, 16},
		{"content description", o.ContentDescription, 64},
		{"manufacturer", o.Equipment.Manufacturer, 64},
		{"model name", o.Equipment.ModelName, 64},
		{"software versions", o.Equipment.SoftwareVersions, 64},
		{"device serial number", o.Equipment.DeviceSerialNumber, 64},
		{"algorithm name", o.AlgorithmName, 64},
		{"algorithm version", o.AlgorithmVersion, 64},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("%s is longer than %d characters", f.name, f.max)
		}
	}
	for _, r := range o.ContentLabel {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ' ') {
			return fmt.Errorf("content label %q: only upper-case letters, digits, space and underscore are allowed (CS)", o.ContentLabel)
		}
	}
	return nil
}

// selectFrames lists the SEG's frames, segment by segment. With omitEmpty, all-zero masks are
// left out, but never every frame: a SEG needs at least one, so the first segmented frame of
// the first segment that has one is then kept.
func selectFrames(segments []Segment, omitEmpty bool) []frameRef {
	var frames []frameRef
	for s, seg := range segments {
		for f, m := range seg.Masks {
			if m == nil || omitEmpty && !slices.ContainsFunc(m, func(v byte) bool { return v != 0 }) {
				continue
			}
			frames = append(frames, frameRef{segment: s + 1, source: f})
		}
	}
	if len(frames) == 0 {
		for s, seg := range segments {
			for f, m := range seg.Masks {
				if m != nil {
					return []frameRef{{segment: s + 1, source: f}}
				}
			}
		}
	}
	return frames
}

type encoder struct {
	sources      []*Source
	sourceFrames []sourceFrame
	geometry     *Geometry
	segments     []Segment
	opts         Options
	frames       []frameRef
	dimOrgUID    string
}

// pixelData packs the frames: for Binary one bit per pixel, least significant bit first, with
// no gap between frames (PS3.5 8.1.1 and 8.2), the whole padded to even length.
func (e *encoder) pixelData() []byte {
	size := e.sources[0].Rows * e.sources[0].Columns
	if e.opts.Type == Fractional {
		out := make([]byte, 0, len(e.frames)*size+1)
		for _, f := range e.frames {
			out = append(out, e.segments[f.segment-1].Masks[f.source]...)
		}
		if len(out)%2 == 1 {
			out = append(out, 0)
		}
		return out
	}
	bits := len(e.frames) * size
	out := make([]byte, (bits+15)/16*2)
	k := 0
	for _, f := range e.frames {
		for _, v := range e.segments[f.segment-1].Masks[f.source] {
			if v != 0 {
				out[k>>3] |= 1 << (k & 7)
			}
			k++
		}
	}
	return out
}

func code(c channel.Code) dataset {
	return dataset{
		str(tagOf(0x0008, 0x0100), "SH", c.Value),
		str(tagOf(0x0008, 0x0102), "SH", c.Scheme),
		str(tagOf(0x0008, 0x0104), "LO", c.Meaning),
	}
}

// DCM codes from PS3.16 Annex D: the purpose of a source image reference (CID 7202), the
// derivation (CID 7203) and the algorithm family (CID 7162).
func purposeSourceImage() channel.Code {
	return channel.Code{Scheme: "DCM", Value: "121322", Meaning: "Source image for image processing operation"}
}

func derivationSegmentation() channel.Code {
	return channel.Code{Scheme: "DCM", Value: "113076", Meaning: "Segmentation"}
}

func familyAI() channel.Code {
	return channel.Code{Scheme: "DCM", Value: "123110", Meaning: "Artificial Intelligence"}
}

// Tags used more than once.
const (
	tagReferencedSegmentNumber  = 0x0062000B
	tagSegmentIdentificationSeq = 0x0062000A
	tagImagePositionPatient     = 0x00200032
	tagPlanePositionSeq         = 0x00209113
	tagReferencedFrameNumber    = 0x00081160
	tagDerivationImageSeq       = 0x00089124
)

func (e *encoder) dataset(sopUID, seriesUID string, pixels []byte) dataset {
	src, o := e.sources[0], e.opts
	date, tm := o.Time.Format("20060102"), o.Time.Format("150405.000000")
	ds := dataset{
		// SOP Common
		str(tagOf(0x0008, 0x0016), "UI", SegmentationStorage),
		str(tagOf(0x0008, 0x0018), "UI", sopUID),
		str(tagOf(0x0008, 0x0012), "DA", date),
		str(tagOf(0x0008, 0x0013), "TM", tm),
		// Patient
		str(tagOf(0x0010, 0x0010), "PN", src.Patient.Name),
		str(tagOf(0x0010, 0x0020), "LO", src.Patient.ID),
		str(tagOf(0x0010, 0x0030), "DA", src.Patient.BirthDate),
		str(tagOf(0x0010, 0x0040), "CS", src.Patient.Sex),
		// General Study
		str(tagOf(0x0020, 0x000D), "UI", src.Study.InstanceUID),
		str(tagOf(0x0008, 0x0020), "DA", src.Study.Date),
		str(tagOf(0x0008, 0x0030), "TM", src.Study.Time),
		str(tagOf(0x0008, 0x0090), "PN", src.Study.ReferringPhysicianName),
		str(tagOf(0x0020, 0x0010), "SH", src.Study.ID),
		str(tagOf(0x0008, 0x0050), "SH", src.Study.AccessionNumber),
		// General Series and Segmentation Series
		str(tagOf(0x0008, 0x0060), "CS", "SEG"),
		str(tagOf(0x0020, 0x000E), "UI", seriesUID),
		is(tagOf(0x0020, 0x0011), o.SeriesNumber),
		str(tagOf(0x0008, 0x103E), "LO", o.SeriesDescription),
		str(tagOf(0x0008, 0x0021), "DA", date),
		str(tagOf(0x0008, 0x0031), "TM", tm),
		// General Equipment and Enhanced General Equipment
		str(tagOf(0x0008, 0x0070), "LO", o.Equipment.Manufacturer),
		str(tagOf(0x0008, 0x1090), "LO", o.Equipment.ModelName),
		str(tagOf(0x0018, 0x1020), "LO", o.Equipment.SoftwareVersions),
		str(tagOf(0x0018, 0x1000), "LO", o.Equipment.DeviceSerialNumber),
		// General Image, Multi-frame Functional Groups
		is(tagOf(0x0020, 0x0013), o.InstanceNumber),
		str(tagOf(0x0008, 0x0023), "DA", date),
		str(tagOf(0x0008, 0x0033), "TM", tm),
		is(tagOf(0x0028, 0x0008), len(e.frames)),
		// Image Pixel and Segmentation Image
		str(tagOf(0x0008, 0x0008), "CS", "DERIVED", "PRIMARY"),
		u16(tagOf(0x0028, 0x0002), 1),
		str(tagOf(0x0028, 0x0004), "CS", "MONOCHROME2"),
		u16(tagOf(0x0028, 0x0010), uint16(src.Rows)),
		u16(tagOf(0x0028, 0x0011), uint16(src.Columns)),
		u16(tagOf(0x0028, 0x0103), 0),
		str(tagOf(0x0028, 0x2110), "CS", "00"),
		str(tagOf(0x0062, 0x0001), "CS", o.Type.String()),
		str(tagOf(0x0062, 0x0013), "CS", e.overlap()),
		str(tagOf(0x0070, 0x0080), "CS", o.ContentLabel),
		str(tagOf(0x0070, 0x0081), "LO", o.ContentDescription),
		str(tagOf(0x0070, 0x0084), "PN", o.ContentCreatorName),
		e.segmentSequence(),
		ob(tagOf(0x7FE0, 0x0010), pixels),
		e.referencedSeries(),
	}
	if o.Type == Binary {
		ds = append(ds, u16(tagOf(0x0028, 0x0100), 1), u16(tagOf(0x0028, 0x0101), 1), u16(tagOf(0x0028, 0x0102), 0))
	} else {
		ds = append(ds,
			u16(tagOf(0x0028, 0x0100), 8), u16(tagOf(0x0028, 0x0101), 8), u16(tagOf(0x0028, 0x0102), 7),
			str(tagOf(0x0062, 0x0010), "CS", "PROBABILITY"),
			u16(tagOf(0x0062, 0x000E), maxFractional))
	}
	if src.Patient.IssuerOfID != "" {
		ds = append(ds, str(tagOf(0x0010, 0x0021), "LO", src.Patient.IssuerOfID))
	}
	if src.Study.Description != "" {
		ds = append(ds, str(tagOf(0x0008, 0x1030), "LO", src.Study.Description))
	}
	if e.geometry == nil {
		// General Image: Type 2C, required when Image Orientation (Patient) is absent.
		ds = append(ds, str(tagOf(0x0020, 0x0020), "CS", src.PatientOrientation))
	}
	if src.FrameOfReferenceUID != "" {
		ds = append(ds,
			str(tagOf(0x0020, 0x0052), "UI", src.FrameOfReferenceUID),
			str(tagOf(0x0020, 0x1040), "LO", src.PositionReferenceIndicator))
	}
	if !isASCII(ds) {
		// Values copied from the source arrive as UTF-8 whatever the source's character set was.
		ds = append(ds, str(tagOf(0x0008, 0x0005), "CS", "ISO_IR 192"))
	}
	ds = append(ds, e.dimensions()...)
	ds = append(ds, e.functionalGroups()...)
	return ds
}

// referencedSeries is the Common Instance Reference: every source, grouped by series.
func (e *encoder) referencedSeries() element {
	var series []string
	instances := map[string][]dataset{}
	for _, src := range e.sources {
		if _, ok := instances[src.SeriesInstanceUID]; !ok {
			series = append(series, src.SeriesInstanceUID)
		}
		instances[src.SeriesInstanceUID] = append(instances[src.SeriesInstanceUID], dataset{
			str(tagOf(0x0008, 0x1150), "UI", src.SOPClassUID),
			str(tagOf(0x0008, 0x1155), "UI", src.SOPInstanceUID),
		})
	}
	items := make([]dataset, len(series))
	for i, uid := range series {
		items[i] = dataset{
			str(tagOf(0x0020, 0x000E), "UI", uid),
			seq(tagOf(0x0008, 0x114A), instances[uid]...),
		}
	}
	return seq(tagOf(0x0008, 0x1115), items...)
}

func isASCII(ds dataset) bool {
	for _, e := range ds {
		if e.vr == "SQ" {
			for _, item := range e.items {
				if !isASCII(item) {
					return false
				}
			}
			continue
		}
		switch e.vr {
		case "PN", "LO", "SH", "ST", "LT", "UT", "UC":
			for _, b := range e.value {
				if b >= 0x80 {
					return false
				}
			}
		}
	}
	return true
}

func (e *encoder) segmentSequence() element {
	items := make([]dataset, len(e.segments))
	for i, s := range e.segments {
		item := dataset{
			u16(tagOf(0x0062, 0x0004), uint16(i+1)),
			str(tagOf(0x0062, 0x0005), "LO", s.Label),
			str(tagOf(0x0062, 0x0008), "CS", "AUTOMATIC"),
			str(tagOf(0x0062, 0x0009), "LO", e.opts.AlgorithmName),
			seq(tagOf(0x0062, 0x0003), code(s.Category)),
			seq(tagOf(0x0062, 0x000F), code(s.Type)),
			seq(tagOf(0x0062, 0x0007), dataset{
				seq(tagOf(0x0066, 0x002F), code(familyAI())),
				str(tagOf(0x0066, 0x0036), "LO", e.opts.AlgorithmName),
				str(tagOf(0x0066, 0x0031), "LO", e.opts.AlgorithmVersion),
			}),
		}
		if s.Description != "" {
			item = append(item, str(tagOf(0x0062, 0x0006), "ST", s.Description))
		}
		items[i] = item
	}
	return seq(tagOf(0x0062, 0x0002), items...)
}

// overlap says whether any pixel belongs to two segments in the same source frame.
func (e *encoder) overlap() string {
	if len(e.segments) < 2 {
		return "NO"
	}
	size := e.sources[0].Rows * e.sources[0].Columns
	count := make([]uint8, size)
	for f := range e.sourceFrames {
		clear(count)
		for _, s := range e.segments {
			for p, v := range s.Masks[f] { // a nil mask ranges over nothing
				if v != 0 {
					if count[p] == 1 {
						return "YES"
					}
					count[p] = 1
				}
			}
		}
	}
	return "NO"
}

// The second dimension locates a frame within the source: the image position when the
// geometry is known, else the source frame number for a multi-frame source (several sources
// always have geometry: combine makes sure). A single-frame source without geometry needs no
// second dimension.
type secondDimension int

const (
	dimNone secondDimension = iota
	dimPosition
	dimFrameNumber
)

func (e *encoder) second() secondDimension {
	switch {
	case e.geometry != nil && distinct(e.geometry.Positions):
		return dimPosition
	case len(e.sourceFrames) > 1:
		return dimFrameNumber
	}
	return dimNone
}

func (e *encoder) dimensions() dataset {
	index := func(pointer, group uint32, label string) dataset {
		return dataset{
			str(tagOf(0x0020, 0x9164), "UI", e.dimOrgUID),
			at(tagOf(0x0020, 0x9165), pointer),
			at(tagOf(0x0020, 0x9167), group),
			str(tagOf(0x0020, 0x9421), "LO", label),
		}
	}
	items := []dataset{index(tagReferencedSegmentNumber, tagSegmentIdentificationSeq, "Segment Number")}
	switch e.second() {
	case dimPosition:
		items = append(items, index(tagImagePositionPatient, tagPlanePositionSeq, "Image Position Patient"))
	case dimFrameNumber:
		items = append(items, index(tagReferencedFrameNumber, tagDerivationImageSeq, "Referenced Frame Number"))
	}
	return dataset{
		seq(tagOf(0x0020, 0x9221), dataset{str(tagOf(0x0020, 0x9164), "UI", e.dimOrgUID)}),
		seq(tagOf(0x0020, 0x9222), items...),
	}
}

func distinct(positions [][3]float64) bool {
	seen := make(map[[3]float64]bool, len(positions))
	for _, p := range positions {
		if seen[p] {
			return false
		}
		seen[p] = true
	}
	return true
}

// positionIndices numbers the distinct frame positions 1..n in order along the slice normal,
// so Dimension Index Values follow anatomy rather than acquisition order.
func positionIndices(g *Geometry) []int {
	r, c := g.Orientation[:3], g.Orientation[3:]
	normal := [3]float64{r[1]*c[2] - r[2]*c[1], r[2]*c[0] - r[0]*c[2], r[0]*c[1] - r[1]*c[0]}
	dist := func(p [3]float64) float64 { return p[0]*normal[0] + p[1]*normal[1] + p[2]*normal[2] }
	distinct := slices.Clone(g.Positions)
	slices.SortFunc(distinct, func(a, b [3]float64) int {
		if d := cmp.Compare(dist(a), dist(b)); d != 0 {
			return d
		}
		return slices.Compare(a[:], b[:])
	})
	distinct = slices.Compact(distinct)
	out := make([]int, len(g.Positions))
	for i, p := range g.Positions {
		out[i] = slices.Index(distinct, p) + 1
	}
	return out
}

func (e *encoder) functionalGroups() dataset {
	shared := dataset{}
	var posIndex []int
	if g := e.geometry; g != nil {
		measures := dataset{ds(tagOf(0x0028, 0x0030), g.PixelSpacing[0], g.PixelSpacing[1])}
		if g.SliceThickness > 0 {
			measures = append(measures, ds(tagOf(0x0018, 0x0050), g.SliceThickness))
		}
		shared = append(shared,
			seq(tagOf(0x0028, 0x9110), measures),
			seq(tagOf(0x0020, 0x9116), dataset{ds(tagOf(0x0020, 0x0037), g.Orientation[:]...)}))
		posIndex = positionIndices(g)
	}
	second := e.second()
	perFrame := make([]dataset, len(e.frames))
	for i, f := range e.frames {
		sf := e.sourceFrames[f.source]
		src := sf.src
		sourceImage := dataset{
			str(tagOf(0x0008, 0x1150), "UI", src.SOPClassUID),
			str(tagOf(0x0008, 0x1155), "UI", src.SOPInstanceUID),
			str(tagOf(0x0028, 0x135A), "CS", "YES"),
			seq(tagOf(0x0040, 0xA170), code(purposeSourceImage())),
		}
		if src.Frames > 1 {
			sourceImage = append(sourceImage, is(tagReferencedFrameNumber, sf.number))
		}
		dimValues := []uint32{uint32(f.segment)}
		switch second {
		case dimPosition:
			dimValues = append(dimValues, uint32(posIndex[f.source]))
		case dimFrameNumber:
			dimValues = append(dimValues, uint32(sf.number))
		}
		item := dataset{
			seq(tagDerivationImageSeq, dataset{
				seq(tagOf(0x0008, 0x2112), sourceImage),
				seq(tagOf(0x0008, 0x9215), code(derivationSegmentation())),
			}),
			seq(tagOf(0x0020, 0x9111), dataset{u32(tagOf(0x0020, 0x9157), dimValues...)}),
			seq(tagSegmentIdentificationSeq, dataset{u16(tagReferencedSegmentNumber, uint16(f.segment))}),
		}
		if g := e.geometry; g != nil {
			p := g.Positions[f.source]
			item = append(item, seq(tagPlanePositionSeq, dataset{ds(tagImagePositionPatient, p[0], p[1], p[2])}))
		}
		perFrame[i] = item
	}
	return dataset{
		seq(tagOf(0x5200, 0x9229), shared),
		seq(tagOf(0x5200, 0x9230), perFrame...),
	}
}
