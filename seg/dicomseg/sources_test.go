package dicomseg

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/channel"
)

// Warnings dciodvfy gives on some SEGs, and why each is acceptable.
const (
	// The source leaves these Type 2 attributes empty, and the SEG copies the Patient and
	// General Study modules as they are; inventing values would misidentify the patient or study.
	warnNoPatientID = "Warning - Missing attribute or value that would be needed to build DICOMDIR - Patient ID"
	warnNoStudyDate = "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Date"
	warnNoStudyTime = "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Time"
	warnNoStudyID   = "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study ID"
	// The source's Patient's Name has no caret; dciodvfy takes that for the retired ACR-NEMA
	// form. The name is copied as it is, since rewriting it could change whom it names.
	warnPatientNameForm = "Warning - Value dubious for this VR - (0x0010,0x0010) PN Patient's Name  PN [1] = <PLA> - Retired Person Name form"
)

// TestEncodeRealSources makes SEGs from real images of every kind the node segments and checks
// them with dicom3tools, DCMTK, pydicom and this package's decoder.
func TestEncodeRealSources(t *testing.T) {
	tests := []struct {
		name    string
		path    string // under shared/data/dicom
		channel string
		typ     SegmentationType
		// segments is how many segments to encode; every segment after the first is empty.
		segments int
		// only, when set, lists the 0-based source frames that were segmented.
		only      []int
		omitEmpty bool
		geometry  bool
		// firstFrame: a multi-frame instance of a single-frame SOP class, of which the SEG covers
		// the first frame, referenced without a frame number.
		firstFrame bool
		warnings   []string
	}{
		{name: "CR MONOCHROME1 JPEG-LS", path: "CR/wg04_RG3_JLSN_mono1.dcm", channel: "xray", segments: 1},
		{name: "DX MONOCHROME1, 169x211 is not a multiple of 8", path: "DX/highdicom_dx_image_mono1_evrle.dcm", channel: "xray", segments: 2},
		{name: "US cine 34 frames YBR JPEG", path: "US_multiframe/orthanc_Issue16_34fr_jpegbaseline.dcm", channel: "ultrasound", segments: 1,
			warnings: []string{warnNoStudyID}},
		{name: "US cine 30 frames YBR JPEG, fractional", path: "US_multiframe/pydicom_examples_ybr_color_30fr_jpegbaseline.dcm", channel: "ultrasound", typ: Fractional, segments: 2,
			warnings: []string{warnPatientNameForm}},
		{name: "US Image Storage (single-frame class) with 2 frames, palette, explicit LE", path: "US_multiframe/pydicom_OBXXXX1A_2fr_evrle_palette.dcm", channel: "ultrasound", segments: 1, firstFrame: true},
		{name: "US Image Storage (single-frame class) with 2 frames, palette, explicit BE", path: "US_multiframe/pydicom_OBXXXX1A_2fr_evrbe_palette.dcm", channel: "ultrasound", segments: 1, firstFrame: true},
		{name: "US palette 16-bit single frame", path: "US/gdcm_US_ALOKA_16_ivrle_palette.dcm", channel: "ultrasound", segments: 1},
		{name: "RGB endoscopy photo, fractional", path: "VL_SC/wg04_VL1_endo_barrett_UNC.dcm", channel: "colonoscopy", typ: Fractional, segments: 2},
		{name: "ES colonoscopy YBR JPEG", path: "wrapped/ES_polypgen_130OLCV1_100H0002.dcm", channel: "colonoscopy", segments: 1},
		{name: "OP fundus photo", path: "wrapped/OP_drive_drive_05.dcm", channel: "fundus", segments: 1},
		{name: "XC dermoscopy photo", path: "wrapped/XC_ph2_IMD092.dcm", channel: "dermoscopy", segments: 1},
		{name: "CT slice with geometry", path: "CT/wg04_CT1_UNC.dcm", channel: "xray", segments: 2, geometry: true},
		{name: "Enhanced MR, 19 frames at one position", path: "MR/fodicom_EnhancedMR_MOVEKNEE_19fr.dcm", channel: "xray", segments: 1, geometry: true},
		{name: "SM one frame of 30", path: "SM/cmu1_pyramid/level-0-frames-0-30.dcm", channel: "microscopy", segments: 1, only: []int{4},
			warnings: []string{warnNoPatientID, warnNoStudyDate, warnNoStudyTime, warnNoStudyID}},
		{name: "SM 25 tiles of 10x10, empty frames omitted", path: "SM/highdicom_sm_image_rgb_evrle.dcm", channel: "microscopy", segments: 2, omitEmpty: true},
		{name: "GM microscopy photo", path: "wrapped/GM_gbm40_gbm40_25.dcm", channel: "microscopy", segments: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ReadSource(testutil.SharedData(t, "dicom", tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if got := src.Geometry != nil; got != tt.geometry {
				t.Fatalf("geometry found = %v, want %v", got, tt.geometry)
			}
			ch, ok := channel.ByName(tt.channel)
			if !ok {
				t.Fatalf("no channel %q", tt.channel)
			}
			segments := make([]Segment, tt.segments)
			for s := range segments {
				masks := make([][]byte, src.Frames)
				for f := range masks {
					if tt.only != nil && !slices.Contains(tt.only, f) {
						continue
					}
					masks[f] = make([]byte, src.Rows*src.Columns)
					if s == 0 && !(tt.omitEmpty && f%3 == 1) {
						masks[f] = pattern(src.Rows, src.Columns, s, f, tt.typ)
					}
				}
				segments[s] = SegmentForChannel(ch, masks)
			}
			res, err := Encode(src, segments, Options{
				Type:              tt.typ,
				SeriesNumber:      901,
				SeriesDescription: "test " + tt.channel,
				OmitEmptyFrames:   tt.omitEmpty,
				Equipment:         Equipment{Manufacturer: "espnode tests", ModelName: "dicomseg", SoftwareVersions: "test", DeviceSerialNumber: "42"},
				AlgorithmName:     "ESP-MedSAM",
				AlgorithmVersion:  "test",
				Time:              time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "seg.dcm")
			if err := os.WriteFile(path, res.Bytes, 0o600); err != nil {
				t.Fatal(err)
			}

			// The frames the SEG should hold, in order: segment by segment, source frame by frame.
			type want struct {
				segment, source int
				pixels          []byte
			}
			var wants []want
			for s, seg := range segments {
				for f, m := range seg.Masks {
					if tt.firstFrame && f > 0 {
						break
					}
					if m == nil || tt.omitEmpty && !slices.ContainsFunc(m, func(v byte) bool { return v != 0 }) {
						continue
					}
					wants = append(wants, want{s + 1, f, m})
				}
			}
			if res.Frames != len(wants) {
				t.Fatalf("encoded %d frames, want %d", res.Frames, len(wants))
			}
			if skipped := src.Frames - 1; tt.firstFrame != (res.SkippedSourceFrames > 0) || tt.firstFrame && res.SkippedSourceFrames != skipped {
				t.Errorf("%d source frames skipped, want %d", res.SkippedSourceFrames, map[bool]int{true: skipped}[tt.firstFrame])
			}

			errs, warnings := dciodvfy(t, path)
			for _, e := range errs {
				t.Errorf("dciodvfy: %s", e)
			}
			if !slices.Equal(warnings, tt.warnings) {
				t.Errorf("dciodvfy warnings:\n%q\nwant\n%q", warnings, tt.warnings)
			}
			dcmdump(t, path)

			seg, err := Decode(res.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if seg.SOPInstanceUID != res.SOPInstanceUID || seg.SeriesInstanceUID != res.SeriesInstanceUID ||
				seg.StudyInstanceUID != src.Study.InstanceUID || seg.PatientID != src.Patient.ID ||
				seg.FrameOfReferenceUID != src.FrameOfReferenceUID {
				t.Errorf("decoded instance %s series %s study %s patient %q frame of reference %q; want %s %s %s %q %q",
					seg.SOPInstanceUID, seg.SeriesInstanceUID, seg.StudyInstanceUID, seg.PatientID, seg.FrameOfReferenceUID,
					res.SOPInstanceUID, res.SeriesInstanceUID, src.Study.InstanceUID, src.Patient.ID, src.FrameOfReferenceUID)
			}
			if len(seg.Segments) != tt.segments {
				t.Errorf("decoded %d segments, want %d (empty segments keep their description)", len(seg.Segments), tt.segments)
			}
			for i, info := range seg.Segments {
				if info.Number != i+1 || info.Label != ch.Label || info.Category != ch.Category || info.Type != ch.Type || info.AlgorithmType != "AUTOMATIC" {
					t.Errorf("segment %d decoded as %+v", i+1, info)
				}
			}
			pyFrames, pySegments := pydicomFrames(t, path)
			if len(seg.Frames) != len(wants) || len(pyFrames) != len(wants) {
				t.Fatalf("decoded %d frames, pydicom %d, want %d", len(seg.Frames), len(pyFrames), len(wants))
			}
			for i, w := range wants {
				fr := seg.Frames[i]
				wantFrame := 0
				if src.Frames > 1 && !tt.firstFrame {
					wantFrame = w.source + 1
				}
				if fr.SegmentNumber != w.segment || pySegments[i] != w.segment ||
					len(fr.Sources) != 1 || fr.Sources[0].SOPInstanceUID != src.SOPInstanceUID || fr.Sources[0].FrameNumber != wantFrame {
					t.Errorf("frame %d: segment %d (pydicom %d), sources %+v; want segment %d of %s frame %d",
						i+1, fr.SegmentNumber, pySegments[i], fr.Sources, w.segment, src.SOPInstanceUID, wantFrame)
				}
				if d := diffPixels(fr.Pixels, w.pixels); d != "" {
					t.Errorf("frame %d, our decoder: %s", i+1, d)
				}
				if d := diffPixels(seg.Mask(w.segment, src.SOPInstanceUID, wantFrame), w.pixels); d != "" {
					t.Errorf("Mask(%d, source frame %d): %s", w.segment, wantFrame, d)
				}
				if d := diffPixels(pyFrames[i], w.pixels); d != "" {
					t.Errorf("frame %d, pydicom: %s", i+1, d)
				}
				if tt.geometry && len(fr.Position) != 3 {
					t.Errorf("frame %d has no image position", i+1)
				}
			}
		})
	}
}

func TestReadSourceRejects(t *testing.T) {
	// The attributes of a source in a transfer syntax newer than suyashkumar/dicom (which
	// panicked on it) read like any other: whether its pixels decode is seg/pixel's say.
	if _, err := ReadSource(testutil.SharedData(t, "dicom", "US_multiframe/dcm4che_will_27fr_jpegxl.dcm")); err != nil {
		t.Errorf("JPEG XL source: %v", err)
	}
	tests := []struct {
		path, wantErr string
	}{
		// This HTJ2K test file (which suyashkumar/dicom could not read at all) has no series
		// or study.
		{"OT/pydicom_SC_rgb_htj2k_lossless.dcm", "lacks Series Instance UID, Study Instance UID"},
		// A SEG belongs to its source's study; without the study's UID there is nowhere to put it.
		{"SM/fodicom_WSI_140fr_jpegbaseline_modalitySC.dcm", "lacks Study Instance UID"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := ReadSource(testutil.SharedData(t, "dicom", tt.path))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReadSource error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestReadSourceGeometry checks the geometry read from classic and enhanced images, in every
// byte order and VR encoding the library reads.
func TestReadSourceGeometry(t *testing.T) {
	tests := []struct {
		path      string
		frames    int
		spacing   [2]float64
		firstPos  [3]float64
		thickness float64
	}{
		{"CT/cornerstone_CT_evrle.dcm", 1, [2]float64{0.675781, 0.675781}, [3]float64{-161.399994, -148.800003, 4.7}, 5},
		{"CT/cornerstone_CT_evrbe.dcm", 1, [2]float64{0.675781, 0.675781}, [3]float64{-161.399994, -148.800003, 4.7}, 5},
		{"CT/cornerstone_CT_ivrle.dcm", 1, [2]float64{0.675781, 0.675781}, [3]float64{-161.399994, -148.800003, 4.7}, 5},
		{"MR/fodicom_EnhancedMR_MOVEKNEE_19fr.dcm", 19, [2]float64{0.625, 0.625}, [3]float64{-3, -80, 80}, 6},
	}
	var ct *Geometry
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			src, err := ReadSource(testutil.SharedData(t, "dicom", tt.path))
			if err != nil {
				t.Fatal(err)
			}
			g := src.Geometry
			if g == nil || src.Frames != tt.frames || len(g.Positions) != tt.frames || g.PixelSpacing != tt.spacing {
				t.Fatalf("frames %d, geometry %+v; want %d frames, spacing %v", src.Frames, g, tt.frames, tt.spacing)
			}
			if g.SliceThickness != tt.thickness || g.Positions[0] != tt.firstPos {
				t.Errorf("thickness %v, first position %v; want %v, %v", g.SliceThickness, g.Positions[0], tt.thickness, tt.firstPos)
			}
			// The same CT slice in three encodings must give the same geometry.
			if tt.frames == 1 {
				if ct == nil {
					ct = g
				} else if g.Positions[0] != ct.Positions[0] || g.Orientation != ct.Orientation {
					t.Errorf("geometry %+v differs from the little endian file's %+v", g, ct)
				}
			}
		})
	}
}
