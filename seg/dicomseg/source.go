package dicomseg

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/espnode/espnode/dcm"
)

// Source describes the image instance a segmentation is derived from: the attributes the SEG
// copies or references, and the pixel geometry its frames inherit. Build it from a parsed data
// set with SourceFromDataSet, or fill it in directly.
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

// ReadSource reads a DICOM file's attributes (not its pixel data) into a Source.
func ReadSource(path string) (*Source, error) {
	// The pixel data comes last: stopping before it spares reading it.
	f, err := dcm.ReadFile(path, dcm.ParseOptions{StopAfter: dcm.PixelData - 1})
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", path, err)
	}
	src, err := SourceFromDataSet(f.DataSet)
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", path, err)
	}
	return src, nil
}

// SourceFromDataSet collects a Source from a data set. Text the SEG copies is decoded to UTF-8
// from the source's Specific Character Set. Geometry comes from the classic attributes or from
// the enhanced multi-frame functional groups, and is left nil unless the spacing, orientation
// and every frame's position are all present.
func SourceFromDataSet(ds *dcm.DataSet) (*Source, error) {
	num := func(t dcm.Tag) int {
		n, _ := ds.Int(t)
		return int(n)
	}
	src := &Source{
		SOPClassUID:       ds.String(dcm.SOPClassUID),
		SOPInstanceUID:    ds.String(dcm.SOPInstanceUID),
		SeriesInstanceUID: ds.String(dcm.SeriesInstanceUID),
		Patient: Patient{
			Name:       ds.Unicode(dcm.PatientName),
			ID:         ds.Unicode(dcm.PatientID),
			IssuerOfID: ds.Unicode(dcm.IssuerOfPatientID),
			BirthDate:  legacyDate(ds.String(dcm.PatientBirthDate)),
			Sex:        ds.Unicode(dcm.PatientSex),
		},
		Study: Study{
			InstanceUID:            ds.String(dcm.StudyInstanceUID),
			Date:                   legacyDate(ds.String(dcm.StudyDate)),
			Time:                   legacyTime(ds.String(dcm.StudyTime)),
			ReferringPhysicianName: ds.Unicode(dcm.ReferringPhysicianName),
			ID:                     ds.Unicode(dcm.StudyID),
			AccessionNumber:        ds.Unicode(dcm.AccessionNumber),
			Description:            ds.Unicode(dcm.StudyDescription),
		},
		FrameOfReferenceUID:        ds.String(dcm.FrameOfReferenceUID),
		PositionReferenceIndicator: ds.Unicode(dcm.PositionReferenceIndicator),
		PatientOrientation:         ds.Unicode(dcm.PatientOrientation),
		Rows:                       num(dcm.Rows),
		Columns:                    num(dcm.Columns),
		Frames:                     1,
	}
	if s := ds.String(dcm.NumberOfFrames); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("number of frames %q is not a positive integer", s)
		}
		src.Frames = n
	}
	if src.FrameOfReferenceUID != "" {
		src.Geometry = geometryOf(ds, src.Frames)
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

func geometryOf(ds *dcm.DataSet, frames int) *Geometry {
	// Enhanced multi-frame images keep the attributes inside functional groups: a per-frame
	// group overrides the shared one, which overrides the top level of classic images.
	var shared *dcm.DataSet
	if items := ds.Items(dcm.SharedFunctionalGroupsSequence); len(items) == 1 {
		shared = items[0]
	}
	perFrame := ds.Items(dcm.PerFrameFunctionalGroupsSequence)
	if len(perFrame) != 0 && len(perFrame) != frames {
		return nil
	}
	lookup := func(frame int, seqTag, t dcm.Tag) []float64 {
		if frame < len(perFrame) {
			if items := perFrame[frame].Items(seqTag); len(items) > 0 {
				if v := floats(items[0], t); v != nil {
					return v
				}
			}
		}
		if items := shared.Items(seqTag); len(items) > 0 {
			if v := floats(items[0], t); v != nil {
				return v
			}
		}
		return floats(ds, t)
	}
	var g Geometry
	spacing := lookup(0, dcm.PixelMeasuresSequence, dcm.PixelSpacing)
	thickness := lookup(0, dcm.PixelMeasuresSequence, dcm.SliceThickness)
	orientation := lookup(0, dcm.PlaneOrientationSequence, dcm.ImageOrientationPatient)
	if len(spacing) != 2 || len(orientation) != 6 {
		return nil
	}
	for f := range frames {
		// The SEG shares one orientation and spacing, so frames that differ leave it unknown.
		if !slices.Equal(lookup(f, dcm.PixelMeasuresSequence, dcm.PixelSpacing), spacing) ||
			!slices.Equal(lookup(f, dcm.PlaneOrientationSequence, dcm.ImageOrientationPatient), orientation) {
			return nil
		}
		p := lookup(f, dcm.PlanePositionSequence, dcm.ImagePositionPatient)
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

// floats returns the numbers of a DS or FD attribute; nil when absent or malformed.
func floats(ds *dcm.DataSet, t dcm.Tag) []float64 {
	v, err := ds.Floats(t)
	if err != nil {
		return nil
	}
	return v
}
