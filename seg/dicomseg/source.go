package dicomseg

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Source describes the image instance a segmentation is derived from: the attributes the SEG
// copies or references, and the pixel geometry its frames inherit. Build it from a parsed data
// set with SourceFromDataset, or fill it in directly.
type Source struct {
	SOPClassUID       string
	SOPInstanceUID    string
	SeriesInstanceUID string

	Patient Patient
	Study   Study

	// FrameOfReferenceUID is empty when the source has no Frame of Reference module.
	FrameOfReferenceUID        string
	PositionReferenceIndicator string

	// PatientOrientation (row and column directions, such as A\F) is copied for sources
	// without Geometry, where the General Image module needs it; it may be empty.
	PatientOrientation string

	Rows, Columns int
	// Frames is the number of frames in the source instance (1 for a single-frame image).
	Frames int

	// Geometry is nil when the source's plane geometry is unknown or incomplete.
	Geometry *Geometry
}

// Patient holds the Patient module attributes copied into the SEG.
type Patient struct {
	Name, ID, IssuerOfID, BirthDate, Sex string
}

// Study holds the General Study module attributes copied into the SEG.
type Study struct {
	InstanceUID, Date, Time, ReferringPhysicianName, ID, AccessionNumber, Description string
}

// Geometry is where the source's frames lie in the patient coordinate system.
type Geometry struct {
	// PixelSpacing is the row spacing then the column spacing, in mm.
	PixelSpacing [2]float64
	// SliceThickness in mm; 0 when unknown.
	SliceThickness float64
	// Orientation is the row then column direction cosines, shared by all frames.
	Orientation [6]float64
	// Positions holds each frame's Image Position (Patient), in frame order.
	Positions [][3]float64
}

// ReadSource parses a DICOM file's attributes (not its pixel data) into a Source.
func ReadSource(path string) (*Source, error) {
	ds, err := parseSourceFile(path)
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", path, err)
	}
	src, err := SourceFromDataset(&ds)
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", path, err)
	}
	return src, nil
}

// parseSourceFile runs suyashkumar/dicom, which panics on some inputs (a transfer syntax it
// does not know, such as HTJ2K or JPEG XL, leaves it without a byte order): a file a peer sent
// must cost an error, not the process.
func parseSourceFile(path string) (ds dicom.Dataset, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parser failed: %v", p)
		}
	}()
	return dicom.ParseFile(path, nil, dicom.SkipPixelData())
}

// SourceFromDataset collects a Source from a data set parsed by suyashkumar/dicom. Geometry
// comes from the classic attributes or from the enhanced multi-frame functional groups, and is
// left nil unless the spacing, orientation and every frame's position are all present.
func SourceFromDataset(ds *dicom.Dataset) (*Source, error) {
	e := elems(ds.Elements)
	src := &Source{
		SOPClassUID:       e.str(tag.SOPClassUID),
		SOPInstanceUID:    e.str(tag.SOPInstanceUID),
		SeriesInstanceUID: e.str(tag.SeriesInstanceUID),
		Patient: Patient{
			Name:       e.str(tag.PatientName),
			ID:         e.str(tag.PatientID),
			IssuerOfID: e.str(tag.IssuerOfPatientID),
			BirthDate:  legacyDate(e.str(tag.PatientBirthDate)),
			Sex:        e.str(tag.PatientSex),
		},
		Study: Study{
			InstanceUID:            e.str(tag.StudyInstanceUID),
			Date:                   legacyDate(e.str(tag.StudyDate)),
			Time:                   legacyTime(e.str(tag.StudyTime)),
			ReferringPhysicianName: e.str(tag.ReferringPhysicianName),
			ID:                     e.str(tag.StudyID),
			AccessionNumber:        e.str(tag.AccessionNumber),
			Description:            e.str(tag.StudyDescription),
		},
		FrameOfReferenceUID:        e.str(tag.FrameOfReferenceUID),
		PositionReferenceIndicator: e.str(tag.PositionReferenceIndicator),
		PatientOrientation:         e.str(tag.PatientOrientation),
		Rows:                       e.int(tag.Rows),
		Columns:                    e.int(tag.Columns),
		Frames:                     1,
	}
	if s := e.str(tag.NumberOfFrames); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("number of frames %q is not a positive integer", s)
		}
		src.Frames = n
	}
	if src.FrameOfReferenceUID != "" {
		src.Geometry = geometryOf(e, src.Frames)
	}
	if err := src.validate(); err != nil {
		return nil, err
	}
	return src, nil
}

func (s *Source) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"SOP Class UID", s.SOPClassUID},
		{"SOP Instance UID", s.SOPInstanceUID},
		{"Series Instance UID", s.SeriesInstanceUID},
		{"Study Instance UID", s.Study.InstanceUID},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("source lacks %s", strings.Join(missing, ", "))
	}
	if s.Rows <= 0 || s.Columns <= 0 || s.Rows > 0xFFFF || s.Columns > 0xFFFF {
		return fmt.Errorf("source size %dx%d is not valid", s.Columns, s.Rows)
	}
	if s.Frames < 1 {
		return fmt.Errorf("source has %d frames", s.Frames)
	}
	if g := s.Geometry; g != nil {
		if len(g.Positions) != s.Frames {
			return fmt.Errorf("source geometry has %d positions for %d frames", len(g.Positions), s.Frames)
		}
		if g.PixelSpacing[0] <= 0 || g.PixelSpacing[1] <= 0 {
			return fmt.Errorf("source pixel spacing %v is not positive", g.PixelSpacing)
		}
		if s.FrameOfReferenceUID == "" {
			return errors.New("source geometry without a frame of reference UID")
		}
	}
	return nil
}

func geometryOf(e elems, frames int) *Geometry {
	// Enhanced multi-frame images keep the attributes inside functional groups: a per-frame
	// group overrides the shared one, which overrides the top level of classic images.
	var shared elems
	if items := e.items(tag.SharedFunctionalGroupsSequence); len(items) == 1 {
		shared = items[0]
	}
	perFrame := e.items(tag.PerFrameFunctionalGroupsSequence)
	if len(perFrame) != 0 && len(perFrame) != frames {
		return nil
	}
	lookup := func(frame int, seqTag, t tag.Tag) []float64 {
		if frame < len(perFrame) {
			if items := perFrame[frame].items(seqTag); len(items) > 0 {
				if v := items[0].floats(t); v != nil {
					return v
				}
			}
		}
		if items := shared.items(seqTag); len(items) > 0 {
			if v := items[0].floats(t); v != nil {
				return v
			}
		}
		return e.floats(t)
	}
	var g Geometry
	spacing := lookup(0, tag.PixelMeasuresSequence, tag.PixelSpacing)
	thickness := lookup(0, tag.PixelMeasuresSequence, tag.SliceThickness)
	orientation := lookup(0, tag.PlaneOrientationSequence, tag.ImageOrientationPatient)
	if len(spacing) != 2 || len(orientation) != 6 {
		return nil
	}
	for f := range frames {
		// The SEG shares one orientation and spacing, so frames that differ leave it unknown.
		if !slices.Equal(lookup(f, tag.PixelMeasuresSequence, tag.PixelSpacing), spacing) ||
			!slices.Equal(lookup(f, tag.PlaneOrientationSequence, tag.ImageOrientationPatient), orientation) {
			return nil
		}
		p := lookup(f, tag.PlanePositionSequence, tag.ImagePositionPatient)
		if len(p) != 3 {
			return nil
		}
		g.Positions = append(g.Positions, [3]float64{p[0], p[1], p[2]})
	}
	g.PixelSpacing = [2]float64{spacing[0], spacing[1]}
	if len(thickness) == 1 {
		g.SliceThickness = thickness[0]
	}
	copy(g.Orientation[:], orientation)
	return &g
}

// legacyDate rewrites the ACR-NEMA date form YYYY.MM.DD, which old sources still carry and
// validators reject in a DA, as YYYYMMDD; other values pass unchanged.
func legacyDate(s string) string {
	if len(s) == 10 && s[4] == '.' && s[7] == '.' {
		return s[:4] + s[5:7] + s[8:]
	}
	return s
}

// legacyTime rewrites the ACR-NEMA time form HH:MM:SS(.frac) as HHMMSS(.frac).
func legacyTime(s string) string {
	if len(s) >= 8 && s[2] == ':' && s[5] == ':' {
		return s[:2] + s[3:5] + s[6:]
	}
	return s
}

// elems is a data set or item as suyashkumar/dicom hands it out.
type elems []*dicom.Element

func (e elems) find(t tag.Tag) *dicom.Element {
	for _, el := range e {
		if el.Tag == t {
			return el
		}
	}
	return nil
}

// str returns an attribute's values joined with backslashes, or "" when absent or not text.
func (e elems) str(t tag.Tag) string {
	el := e.find(t)
	if el == nil || el.Value == nil || el.Value.ValueType() != dicom.Strings {
		return ""
	}
	return strings.TrimRight(strings.Join(dicom.MustGetStrings(el.Value), `\`), " \x00")
}

func (e elems) int(t tag.Tag) int {
	el := e.find(t)
	if el == nil || el.Value == nil {
		return 0
	}
	switch el.Value.ValueType() {
	case dicom.Ints:
		if v := dicom.MustGetInts(el.Value); len(v) > 0 {
			return v[0]
		}
	case dicom.Strings:
		n, _ := strconv.Atoi(strings.TrimSpace(e.str(t)))
		return n
	}
	return 0
}

// floats parses a DS or FD attribute; nil when absent or malformed.
func (e elems) floats(t tag.Tag) []float64 {
	el := e.find(t)
	if el == nil || el.Value == nil {
		return nil
	}
	switch el.Value.ValueType() {
	case dicom.Floats:
		return dicom.MustGetFloats(el.Value)
	case dicom.Strings:
		var out []float64
		for _, s := range dicom.MustGetStrings(el.Value) {
			for _, part := range strings.Split(s, `\`) {
				f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
				if err != nil {
					return nil
				}
				out = append(out, f)
			}
		}
		return out
	}
	return nil
}

func (e elems) items(t tag.Tag) []elems {
	el := e.find(t)
	if el == nil || el.Value == nil || el.Value.ValueType() != dicom.Sequences {
		return nil
	}
	var out []elems
	for _, item := range el.Value.GetValue().([]*dicom.SequenceItemValue) {
		out = append(out, elems(item.GetValue().([]*dicom.Element)))
	}
	return out
}
