package dicomseg

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/espnode/espnode/dcm"
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

// Result is an encoded SEG, with what a store or a sender needs to know of it, so that nothing
// has to parse it again.
type Result struct {
	// Bytes is the Part 10 file: preamble, file meta information, data set.
	Bytes             []byte
	SOPClassUID       string
	SOPInstanceUID    string
	SeriesInstanceUID string
	StudyInstanceUID  string
	// TransferSyntaxUID is the encoding of the data set (explicit VR little endian).
	TransferSyntaxUID string
	// Frames is the number of frames written.
	Frames int
	// SkippedSourceFrames counts source frames left out because their instance's SOP class is a
	// single-frame one (frames after the first of such an instance; see firstFrameOfSingleFrameClasses).
	SkippedSourceFrames int
	// dataSetStart is where the data set starts in Bytes, after the file meta.
	dataSetStart int
}

// DataSet returns the data set without the file meta information: what a C-STORE sends and
// what store.Put takes, in TransferSyntaxUID.
func (r *Result) DataSet() []byte { return r.Bytes[r.dataSetStart:] }

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
	sources, segments, skipped := firstFrameOfSingleFrameClasses(sources, segments)
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
	start, err := writeFile(&buf, sopUID, ds)
	if err != nil {
		return nil, fmt.Errorf("encode SEG: %w", err)
	}
	return &Result{
		Bytes:               buf.Bytes(),
		SOPClassUID:         SegmentationStorage,
		SOPInstanceUID:      sopUID,
		SeriesInstanceUID:   seriesUID,
		StudyInstanceUID:    sources[0].Study.InstanceUID,
		TransferSyntaxUID:   dcm.ExplicitVRLittleEndian,
		Frames:              len(e.frames),
		SkippedSourceFrames: skipped,
		dataSetStart:        start,
	}, nil
}

// firstFrameOfSingleFrameClasses keeps only the first frame of every source whose SOP class is a
// single-frame one but which carries several frames (US Image Storage files with Number of Frames
// 2 exist), with its masks. A SEG frame can name a source frame only with Referenced Frame Number,
// which PS3.3 (Image SOP Instance Reference Macro, Table 10-3) allows for multi-frame SOP classes
// alone: an instance of a single-frame class is one image, so the SEG references it without a
// frame number, as the image its class defines, which is its first frame. The other frames are
// counted and left out rather than referenced ambiguously. Sources or masks that do not add up
// are passed on unchanged for combine and checkSegments to report.
func firstFrameOfSingleFrameClasses(sources []*Source, segments []Segment) ([]*Source, []Segment, int) {
	total, affected := 0, false
	for _, src := range sources {
		if src == nil || src.Frames < 1 {
			return sources, segments, 0
		}
		total += src.Frames
		affected = affected || src.Frames > 1 && singleFrameClass(src.SOPClassUID)
	}
	if !affected {
		return sources, segments, 0
	}
	for _, s := range segments {
		if len(s.Masks) != total {
			return sources, segments, 0
		}
	}
	kept := make([]*Source, len(sources))
	var keep []int // indices of the masks kept
	skipped, offset := 0, 0
	for i, src := range sources {
		kept[i] = src
		switch {
		case src.Frames > 1 && singleFrameClass(src.SOPClassUID):
			c := *src
			c.Frames = 1
			if g := src.Geometry; g != nil && len(g.Positions) > 0 {
				first := *g
				first.Positions = g.Positions[:1]
				c.Geometry = &first
			}
			kept[i] = &c
			keep = append(keep, offset)
			skipped += src.Frames - 1
		default:
			for f := range src.Frames {
				keep = append(keep, offset+f)
			}
		}
		offset += src.Frames
	}
	out := make([]Segment, len(segments))
	for i, s := range segments {
		out[i] = s
		out[i].Masks = make([][]byte, len(keep))
		for j, k := range keep {
			out[i].Masks[j] = s.Masks[k]
		}
	}
	return kept, out, skipped
}

// singleFrameClass says whether an image storage SOP class is a single-frame one (its IOD in
// PS3.3 Annex A has no Multi-frame Module): an instance of it is one image. The list holds the
// single-frame classes the node may be given to segment; any other class is taken for a
// multi-frame one, whose frames Referenced Frame Number can name.
func singleFrameClass(uid string) bool {
	switch uid {
	case "1.2.840.10008.5.1.4.1.1.1", // Computed Radiography
		"1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1", // Digital X-Ray, for presentation and processing
		"1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1", // Digital Mammography X-Ray
		"1.2.840.10008.5.1.4.1.1.1.3", "1.2.840.10008.5.1.4.1.1.1.3.1", // Digital Intra-Oral X-Ray
		"1.2.840.10008.5.1.4.1.1.2",      // CT Image
		"1.2.840.10008.5.1.4.1.1.4",      // MR Image
		"1.2.840.10008.5.1.4.1.1.6.1",    // Ultrasound Image
		"1.2.840.10008.5.1.4.1.1.6",      // Ultrasound Image (retired)
		"1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture Image
		"1.2.840.10008.5.1.4.1.1.128",    // PET Image
		"1.2.840.10008.5.1.4.1.1.77.1.1", // VL Endoscopic Image
		"1.2.840.10008.5.1.4.1.1.77.1.2", // VL Microscopic Image
		"1.2.840.10008.5.1.4.1.1.77.1.3", // VL Slide-Coordinates Microscopic Image
		"1.2.840.10008.5.1.4.1.1.77.1.4": // VL Photographic Image
		return true
	}
	return false
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
		if f.v != "" && dcm.CheckUID(f.v) != nil {
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

// dataset is a data set or item being built: encoding sorts it.
type dataset = []dcm.Element

func seq(t dcm.Tag, items ...dataset) dcm.Element {
	out := make([]*dcm.DataSet, len(items))
	for i, item := range items {
		out[i] = dcm.NewDataSet(item...)
	}
	return dcm.NewSequence(t, out...)
}

// writeFile encodes a Part 10 file, the data set in explicit VR little endian, and returns where
// the data set starts.
func writeFile(buf *bytes.Buffer, sopInstance string, ds dataset) (int, error) {
	if err := dcm.WriteFileMeta(buf, dcm.FileMeta{
		MediaStorageSOPClassUID:    SegmentationStorage,
		MediaStorageSOPInstanceUID: sopInstance,
		TransferSyntaxUID:          dcm.ExplicitVRLittleEndian,
		ImplementationClassUID:     ImplementationClassUID,
		ImplementationVersionName:  ImplementationVersionName,
	}); err != nil {
		return 0, err
	}
	start := buf.Len()
	w, err := dcm.NewWriter(buf, dcm.ExplicitVRLittleEndian)
	if err != nil {
		return 0, err
	}
	if err := w.WriteDataSet(dcm.NewDataSet(ds...)); err != nil {
		return 0, err
	}
	return start, w.Close()
}

func code(c channel.Code) dataset {
	return dataset{
		dcm.NewText(dcm.CodeValue, "SH", c.Value),
		dcm.NewText(dcm.CodingSchemeDesignator, "SH", c.Scheme),
		dcm.NewText(dcm.CodeMeaning, "LO", c.Meaning),
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

func (e *encoder) dataset(sopUID, seriesUID string, pixels []byte) dataset {
	src, o := e.sources[0], e.opts
	date, tm := o.Time.Format("20060102"), o.Time.Format("150405.000000")
	ds := dataset{
		// SOP Common
		dcm.NewText(dcm.SOPClassUID, "UI", SegmentationStorage),
		dcm.NewText(dcm.SOPInstanceUID, "UI", sopUID),
		dcm.NewText(dcm.InstanceCreationDate, "DA", date),
		dcm.NewText(dcm.InstanceCreationTime, "TM", tm),
		// Patient
		dcm.NewText(dcm.PatientName, "PN", src.Patient.Name),
		dcm.NewText(dcm.PatientID, "LO", src.Patient.ID),
		dcm.NewText(dcm.PatientBirthDate, "DA", src.Patient.BirthDate),
		dcm.NewText(dcm.PatientSex, "CS", src.Patient.Sex),
		// General Study
		dcm.NewText(dcm.StudyInstanceUID, "UI", src.Study.InstanceUID),
		dcm.NewText(dcm.StudyDate, "DA", src.Study.Date),
		dcm.NewText(dcm.StudyTime, "TM", src.Study.Time),
		dcm.NewText(dcm.ReferringPhysicianName, "PN", src.Study.ReferringPhysicianName),
		dcm.NewText(dcm.StudyID, "SH", src.Study.ID),
		dcm.NewText(dcm.AccessionNumber, "SH", src.Study.AccessionNumber),
		// General Series and Segmentation Series
		dcm.NewText(dcm.Modality, "CS", "SEG"),
		dcm.NewText(dcm.SeriesInstanceUID, "UI", seriesUID),
		dcm.NewIS(dcm.SeriesNumber, o.SeriesNumber),
		dcm.NewText(dcm.SeriesDescription, "LO", o.SeriesDescription),
		dcm.NewText(dcm.SeriesDate, "DA", date),
		dcm.NewText(dcm.SeriesTime, "TM", tm),
		// General Equipment and Enhanced General Equipment
		dcm.NewText(dcm.Manufacturer, "LO", o.Equipment.Manufacturer),
		dcm.NewText(dcm.ManufacturerModelName, "LO", o.Equipment.ModelName),
		dcm.NewText(dcm.SoftwareVersions, "LO", o.Equipment.SoftwareVersions),
		dcm.NewText(dcm.DeviceSerialNumber, "LO", o.Equipment.DeviceSerialNumber),
		// General Image, Multi-frame Functional Groups
		dcm.NewIS(dcm.InstanceNumber, o.InstanceNumber),
		dcm.NewText(dcm.ContentDate, "DA", date),
		dcm.NewText(dcm.ContentTime, "TM", tm),
		dcm.NewIS(dcm.NumberOfFrames, len(e.frames)),
		// Image Pixel and Segmentation Image
		dcm.NewText(dcm.ImageType, "CS", "DERIVED", "PRIMARY"),
		dcm.NewUS(dcm.SamplesPerPixel, 1),
		dcm.NewText(dcm.PhotometricInterpretation, "CS", "MONOCHROME2"),
		dcm.NewUS(dcm.Rows, uint16(src.Rows)),
		dcm.NewUS(dcm.Columns, uint16(src.Columns)),
		dcm.NewUS(dcm.PixelRepresentation, 0),
		dcm.NewText(dcm.LossyImageCompression, "CS", "00"),
		dcm.NewText(dcm.SegmentationType, "CS", o.Type.String()),
		dcm.NewText(dcm.SegmentsOverlap, "CS", e.overlap()),
		dcm.NewText(dcm.ContentLabel, "CS", o.ContentLabel),
		dcm.NewText(dcm.ContentDescription, "LO", o.ContentDescription),
		dcm.NewText(dcm.ContentCreatorName, "PN", o.ContentCreatorName),
		e.segmentSequence(),
		dcm.NewBytes(dcm.PixelData, "OB", pixels),
		e.referencedSeries(),
	}
	if o.Type == Binary {
		ds = append(ds, dcm.NewUS(dcm.BitsAllocated, 1), dcm.NewUS(dcm.BitsStored, 1), dcm.NewUS(dcm.HighBit, 0))
	} else {
		ds = append(ds,
			dcm.NewUS(dcm.BitsAllocated, 8), dcm.NewUS(dcm.BitsStored, 8), dcm.NewUS(dcm.HighBit, 7),
			dcm.NewText(dcm.SegmentationFractionalType, "CS", "PROBABILITY"),
			dcm.NewUS(dcm.MaximumFractionalValue, maxFractional))
	}
	if src.Patient.IssuerOfID != "" {
		ds = append(ds, dcm.NewText(dcm.IssuerOfPatientID, "LO", src.Patient.IssuerOfID))
	}
	if src.Study.Description != "" {
		ds = append(ds, dcm.NewText(dcm.StudyDescription, "LO", src.Study.Description))
	}
	if e.geometry == nil {
		// General Image: Type 2C, required when Image Orientation (Patient) is absent.
		ds = append(ds, dcm.NewText(dcm.PatientOrientation, "CS", src.PatientOrientation))
	}
	if src.FrameOfReferenceUID != "" {
		ds = append(ds,
			dcm.NewText(dcm.FrameOfReferenceUID, "UI", src.FrameOfReferenceUID),
			dcm.NewText(dcm.PositionReferenceIndicator, "LO", src.PositionReferenceIndicator))
	}
	if !isASCII(ds) {
		// Values copied from the source arrive as UTF-8 whatever the source's character set was.
		ds = append(ds, dcm.NewText(dcm.SpecificCharacterSet, "CS", "ISO_IR 192"))
	}
	ds = append(ds, e.dimensions()...)
	ds = append(ds, e.functionalGroups()...)
	return ds
}

// referencedSeries is the Common Instance Reference: every source, grouped by series.
func (e *encoder) referencedSeries() dcm.Element {
	var series []string
	instances := map[string][]dataset{}
	for _, src := range e.sources {
		if _, ok := instances[src.SeriesInstanceUID]; !ok {
			series = append(series, src.SeriesInstanceUID)
		}
		instances[src.SeriesInstanceUID] = append(instances[src.SeriesInstanceUID], dataset{
			dcm.NewText(dcm.ReferencedSOPClassUID, "UI", src.SOPClassUID),
			dcm.NewText(dcm.ReferencedSOPInstanceUID, "UI", src.SOPInstanceUID),
		})
	}
	items := make([]dataset, len(series))
	for i, uid := range series {
		items[i] = dataset{
			dcm.NewText(dcm.SeriesInstanceUID, "UI", uid),
			seq(dcm.ReferencedInstanceSequence, instances[uid]...),
		}
	}
	return seq(dcm.ReferencedSeriesSequence, items...)
}

func isASCII(ds dataset) bool {
	for _, e := range ds {
		if e.VR == "SQ" {
			for _, item := range e.Items {
				if !isASCII(item.Elements) {
					return false
				}
			}
			continue
		}
		switch e.VR {
		case "PN", "LO", "SH", "ST", "LT", "UT", "UC":
			for _, b := range e.Value {
				if b >= 0x80 {
					return false
				}
			}
		}
	}
	return true
}

func (e *encoder) segmentSequence() dcm.Element {
	items := make([]dataset, len(e.segments))
	for i, s := range e.segments {
		item := dataset{
			dcm.NewUS(dcm.SegmentNumber, uint16(i+1)),
			dcm.NewText(dcm.SegmentLabel, "LO", s.Label),
			dcm.NewText(dcm.SegmentAlgorithmType, "CS", "AUTOMATIC"),
			dcm.NewText(dcm.SegmentAlgorithmName, "LO", e.opts.AlgorithmName),
			seq(dcm.SegmentedPropertyCategoryCodeSequence, code(s.Category)),
			seq(dcm.SegmentedPropertyTypeCodeSequence, code(s.Type)),
			seq(dcm.SegmentationAlgorithmIdentificationSequence, dataset{
				seq(dcm.AlgorithmFamilyCodeSequence, code(familyAI())),
				dcm.NewText(dcm.AlgorithmName, "LO", e.opts.AlgorithmName),
				dcm.NewText(dcm.AlgorithmVersion, "LO", e.opts.AlgorithmVersion),
			}),
		}
		if s.Description != "" {
			item = append(item, dcm.NewText(dcm.SegmentDescription, "ST", s.Description))
		}
		items[i] = item
	}
	return seq(dcm.SegmentSequence, items...)
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
	index := func(pointer, group dcm.Tag, label string) dataset {
		return dataset{
			dcm.NewText(dcm.DimensionOrganizationUID, "UI", e.dimOrgUID),
			dcm.NewAT(dcm.DimensionIndexPointer, pointer),
			dcm.NewAT(dcm.FunctionalGroupPointer, group),
			dcm.NewText(dcm.DimensionDescriptionLabel, "LO", label),
		}
	}
	items := []dataset{index(dcm.ReferencedSegmentNumber, dcm.SegmentIdentificationSequence, "Segment Number")}
	switch e.second() {
	case dimPosition:
		items = append(items, index(dcm.ImagePositionPatient, dcm.PlanePositionSequence, "Image Position Patient"))
	case dimFrameNumber:
		items = append(items, index(dcm.ReferencedFrameNumber, dcm.DerivationImageSequence, "Referenced Frame Number"))
	}
	return dataset{
		seq(dcm.DimensionOrganizationSequence, dataset{dcm.NewText(dcm.DimensionOrganizationUID, "UI", e.dimOrgUID)}),
		seq(dcm.DimensionIndexSequence, items...),
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
		measures := dataset{dcm.NewDS(dcm.PixelSpacing, g.PixelSpacing[0], g.PixelSpacing[1])}
		if g.SliceThickness > 0 {
			measures = append(measures, dcm.NewDS(dcm.SliceThickness, g.SliceThickness))
		}
		shared = append(shared,
			seq(dcm.PixelMeasuresSequence, measures),
			seq(dcm.PlaneOrientationSequence, dataset{dcm.NewDS(dcm.ImageOrientationPatient, g.Orientation[:]...)}))
		posIndex = positionIndices(g)
	} else if e.sources[0].FrameOfReferenceUID == "" {
		// No Frame of Reference (photographs, ultrasound, projection radiographs): the SEG's
		// grid is the source's own, which an empty Pixel Measures item and the identity
		// orientation say. Both are allowed without a Frame of Reference, and viewers built on
		// cornerstone3D (OHIF) need them to place a SEG at all: they align its frames by the
		// shared orientation, which they default to the identity for images that have none.
		shared = append(shared,
			seq(dcm.PixelMeasuresSequence, dataset{}),
			seq(dcm.PlaneOrientationSequence, dataset{dcm.NewDS(dcm.ImageOrientationPatient, 1, 0, 0, 0, 1, 0)}))
	}
	second := e.second()
	perFrame := make([]dataset, len(e.frames))
	for i, f := range e.frames {
		sf := e.sourceFrames[f.source]
		src := sf.src
		sourceImage := dataset{
			dcm.NewText(dcm.ReferencedSOPClassUID, "UI", src.SOPClassUID),
			dcm.NewText(dcm.ReferencedSOPInstanceUID, "UI", src.SOPInstanceUID),
			dcm.NewText(dcm.SpatialLocationsPreserved, "CS", "YES"),
			seq(dcm.PurposeOfReferenceCodeSequence, code(purposeSourceImage())),
		}
		if src.Frames > 1 {
			sourceImage = append(sourceImage, dcm.NewIS(dcm.ReferencedFrameNumber, sf.number))
		}
		dimValues := []uint32{uint32(f.segment)}
		switch second {
		case dimPosition:
			dimValues = append(dimValues, uint32(posIndex[f.source]))
		case dimFrameNumber:
			dimValues = append(dimValues, uint32(sf.number))
		}
		item := dataset{
			seq(dcm.DerivationImageSequence, dataset{
				seq(dcm.SourceImageSequence, sourceImage),
				seq(dcm.DerivationCodeSequence, code(derivationSegmentation())),
			}),
			seq(dcm.FrameContentSequence, dataset{dcm.NewUL(dcm.DimensionIndexValues, dimValues...)}),
			seq(dcm.SegmentIdentificationSequence, dataset{dcm.NewUS(dcm.ReferencedSegmentNumber, uint16(f.segment))}),
		}
		if g := e.geometry; g != nil {
			p := g.Positions[f.source]
			item = append(item, seq(dcm.PlanePositionSequence, dataset{dcm.NewDS(dcm.ImagePositionPatient, p[0], p[1], p[2])}))
		}
		perFrame[i] = item
	}
	return dataset{
		seq(dcm.SharedFunctionalGroupsSequence, shared),
		seq(dcm.PerFrameFunctionalGroupsSequence, perFrame...),
	}
}
