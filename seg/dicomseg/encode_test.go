package dicomseg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/channel"
)

// testSource is a small hand-made source: 3 frames of 5x3, 15 pixels each, so frames start
// in the middle of bytes.
func testSource() *Source {
	return &Source{
		SOPClassUID:       "1.2.840.10008.5.1.4.1.1.3.1",
		SOPInstanceUID:    "1.2.3.4.5",
		SeriesInstanceUID: "1.2.3.4",
		Patient:           Patient{Name: "Test^Patient", ID: "P1", Sex: "O"},
		Study:             Study{InstanceUID: "1.2.3", Date: "20260101", Time: "120000", ID: "S1"},
		Rows:              3,
		Columns:           5,
		Frames:            3,
	}
}

func testSegment(masks ...[]byte) Segment {
	ch, _ := channel.ByName("ultrasound")
	return SegmentForChannel(ch, masks)
}

func ones(n int) []byte { return bytes.Repeat([]byte{1}, n) }

func TestBitPacking(t *testing.T) {
	// Frame 1 all set, frame 2 empty, frame 3 only its last pixel: 45 bits, LSB first,
	// frames back to back, padded to 6 bytes (even length).
	frame3 := make([]byte, 15)
	frame3[14] = 1
	res, err := Encode(testSource(), []Segment{testSegment(ones(15), make([]byte, 15), frame3)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := parseFile(res.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pd := ds.Find(dcm.PixelData)
	if pd == nil || pd.VR != "OB" {
		t.Fatalf("pixel data %+v, want OB", pd)
	}
	// bits 0..14 set; bit 44 (byte 5, bit 4) set.
	want := []byte{0xFF, 0x7F, 0x00, 0x00, 0x00, 0x10}
	if !bytes.Equal(pd.Value, want) {
		t.Fatalf("pixel data % x, want % x", pd.Value, want)
	}
}

func TestFractionalPixelData(t *testing.T) {
	src := testSource()
	src.Frames = 1
	m := make([]byte, 15)
	for i := range m {
		m[i] = byte(i * 17)
	}
	res, err := Encode(src, []Segment{testSegment(m)}, Options{Type: Fractional})
	if err != nil {
		t.Fatal(err)
	}
	seg, err := Decode(res.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if seg.Type != "FRACTIONAL" || seg.MaxFractional != 255 || !bytes.Equal(seg.Frames[0].Pixels, m) {
		t.Fatalf("decoded %s max %d pixels %v, want FRACTIONAL 255 %v", seg.Type, seg.MaxFractional, seg.Frames[0].Pixels, m)
	}
	ds, _ := parseFile(res.Bytes)
	if got := len(ds.Bytes(dcm.PixelData)); got != 16 {
		t.Errorf("pixel data is %d bytes, want 15 padded to 16", got)
	}
	if got := ds.String(dcm.SegmentationFractionalType); got != "PROBABILITY" {
		t.Errorf("fractional type %q, want PROBABILITY", got)
	}
}

func TestEmptyMasks(t *testing.T) {
	empty := make([]byte, 15)
	tests := []struct {
		name       string
		segments   []Segment
		omit       bool
		wantFrames []int // segment number of each SEG frame
	}{
		{"kept by default", []Segment{testSegment(ones(15), empty, empty), testSegment(empty, empty, empty)}, false, []int{1, 1, 1, 2, 2, 2}},
		{"omitted on request", []Segment{testSegment(ones(15), empty, empty), testSegment(empty, empty, empty)}, true, []int{1}},
		{"all empty keeps one frame", []Segment{testSegment(empty, empty, empty)}, true, []int{1}},
		{"nil masks were not segmented", []Segment{testSegment(nil, empty, nil)}, false, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Encode(testSource(), tt.segments, Options{OmitEmptyFrames: tt.omit})
			if err != nil {
				t.Fatal(err)
			}
			seg, err := Decode(res.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(seg.Segments) != len(tt.segments) {
				t.Errorf("%d segments described, want %d: empty segments keep their description", len(seg.Segments), len(tt.segments))
			}
			var got []int
			for _, f := range seg.Frames {
				got = append(got, f.SegmentNumber)
			}
			if !equalInts(got, tt.wantFrames) {
				t.Errorf("frames of segments %v, want %v", got, tt.wantFrames)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEncodeRejects(t *testing.T) {
	good := func() []Segment { return []Segment{testSegment(ones(15), ones(15), ones(15))} }
	tests := []struct {
		name    string
		src     func(*Source)
		segs    func([]Segment) []Segment
		opts    Options
		wantErr string
	}{
		{name: "no segments", segs: func([]Segment) []Segment { return nil }, wantErr: "no segments"},
		{name: "mask count", segs: func(s []Segment) []Segment { s[0].Masks = s[0].Masks[:2]; return s }, wantErr: "2 masks for 3 source frames"},
		{name: "mask size", segs: func(s []Segment) []Segment { s[0].Masks[1] = ones(14); return s }, wantErr: "frame 2: mask has 14 values"},
		{name: "binary value", segs: func(s []Segment) []Segment { s[0].Masks[2][7] = 255; return s }, wantErr: "value 255 at pixel 7"},
		{name: "every mask nil", segs: func(s []Segment) []Segment { s[0].Masks = make([][]byte, 3); return s }, wantErr: "every mask is nil"},
		{name: "no label", segs: func(s []Segment) []Segment { s[0].Label = ""; return s }, wantErr: "label"},
		{name: "bad code", segs: func(s []Segment) []Segment { s[0].Type.Meaning = ""; return s }, wantErr: "segment 1 type: code meaning"},
		{name: "no study UID", src: func(s *Source) { s.Study.InstanceUID = "" }, wantErr: "Study Instance UID"},
		{name: "bad size", src: func(s *Source) { s.Columns = 0 }, wantErr: "size"},
		{name: "geometry positions", src: func(s *Source) {
			s.FrameOfReferenceUID = "1.2.3.9"
			s.Geometry = &Geometry{PixelSpacing: [2]float64{1, 1}, Positions: make([][3]float64, 2)}
		}, wantErr: "2 positions for 3 frames"},
		{name: "bad UID option", opts: Options{SOPInstanceUID: "1.02.3"}, wantErr: "not a valid UID"},
		{name: "content label", opts: Options{ContentLabel: "lower"}, wantErr: "content label"},
		{name: "type", opts: Options{Type: 7}, wantErr: "unknown segmentation type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, segs := testSource(), good()
			if tt.src != nil {
				tt.src(src)
			}
			if tt.segs != nil {
				segs = tt.segs(segs)
			}
			_, err := Encode(src, segs, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Encode error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOverlapAndDimensions(t *testing.T) {
	empty := make([]byte, 15)
	half := append(ones(8), make([]byte, 7)...)
	tests := []struct {
		name        string
		geometry    bool
		frames      int
		segs        []Segment
		wantOverlap string
		wantDims    []string // Dimension Index Pointer of each dimension
	}{
		{"disjoint, multi-frame", false, 3, []Segment{testSegment(half, empty, empty), testSegment(empty, half, empty)}, "NO", []string{"0062000b", "00081160"}},
		{"overlapping", false, 3, []Segment{testSegment(half, empty, empty), testSegment(half, empty, empty)}, "YES", []string{"0062000b", "00081160"}},
		{"single frame", false, 1, []Segment{testSegment(half)}, "NO", []string{"0062000b"}},
		{"geometry", true, 3, []Segment{testSegment(half, half, half)}, "NO", []string{"0062000b", "00200032"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := testSource()
			src.Frames = tt.frames
			for i := range tt.segs {
				tt.segs[i].Masks = tt.segs[i].Masks[:tt.frames]
			}
			if tt.geometry {
				src.FrameOfReferenceUID = "1.2.3.9"
				// Acquired out of order: index values follow the slice normal (+z), not frame order.
				src.Geometry = &Geometry{PixelSpacing: [2]float64{0.5, 0.5}, Orientation: [6]float64{1, 0, 0, 0, 1, 0},
					Positions: [][3]float64{{0, 0, 10}, {0, 0, 0}, {0, 0, 5}}}
			}
			res, err := Encode(src, tt.segs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ds, err := parseFile(res.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if got := ds.String(dcm.SegmentsOverlap); got != tt.wantOverlap {
				t.Errorf("segments overlap %q, want %q", got, tt.wantOverlap)
			}
			var dims []string
			for _, item := range ds.Items(dcm.DimensionIndexSequence) {
				v := item.Bytes(dcm.DimensionIndexPointer)
				dims = append(dims, fmtTag(binary.LittleEndian.Uint16(v), binary.LittleEndian.Uint16(v[2:])))
			}
			if strings.Join(dims, ",") != strings.Join(tt.wantDims, ",") {
				t.Errorf("dimensions %v, want %v", dims, tt.wantDims)
			}
			if tt.geometry {
				seg, err := Decode(res.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				var idx []int
				for _, f := range seg.Frames {
					idx = append(idx, f.DimensionIndexValues[1])
				}
				if !equalInts(idx, []int{3, 1, 2}) {
					t.Errorf("position index values %v, want [3 1 2]", idx)
				}
			}
		})
	}
}

func fmtTag(group, elem uint16) string { return fmt.Sprintf("%04x%04x", group, elem) }

// TestWellFormed walks an encoded SEG: every data set and item sorted, every value of even
// length, and complete file meta information.
func TestWellFormed(t *testing.T) {
	src := testSource()
	src.Patient.Name = "Müller^Jürgen"
	res, err := Encode(src, []Segment{testSegment(ones(15), ones(15), ones(15)), testSegment(ones(15), nil, nil)},
		Options{Time: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	// The file meta group is explicit VR little endian, and ends where group 0002 does.
	metaDS, err := dcm.ReadDataSet(bytes.NewReader(res.Bytes[132:]), dcm.ExplicitVRLittleEndian, dcm.ParseOptions{StopAfter: 0x0002FFFF})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[uint32]string{}
	for _, e := range metaDS.Elements {
		meta[uint32(e.Tag)] = strings.TrimRight(string(e.Value), " \x00")
	}
	for tag, want := range map[uint32]string{
		0x00020002: SegmentationStorage,
		0x00020003: res.SOPInstanceUID,
		0x00020010: dcm.ExplicitVRLittleEndian,
		0x00020012: ImplementationClassUID,
		0x00020013: ImplementationVersionName,
	} {
		if meta[tag] != want {
			t.Errorf("meta (%08x) = %q, want %q", tag, meta[tag], want)
		}
	}
	if _, ok := meta[0x00020000]; !ok {
		t.Error("no file meta group length")
	}
	ds, err := parseFile(res.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, ds *dcm.DataSet)
	count := 0
	walk = func(path string, ds *dcm.DataSet) {
		for i, e := range ds.Elements {
			count++
			if i > 0 && ds.Elements[i-1].Tag >= e.Tag {
				t.Errorf("%s: (%08x) follows (%08x)", path, uint32(e.Tag), uint32(ds.Elements[i-1].Tag))
			}
			if len(e.Value)%2 != 0 {
				t.Errorf("%s (%08x): odd length %d", path, uint32(e.Tag), len(e.Value))
			}
			for j, item := range e.Items {
				walk(fmt.Sprintf("%s>%08x[%d]", path, uint32(e.Tag), j+1), item)
			}
		}
	}
	walk("", ds)
	if count < 80 {
		t.Errorf("only %d elements walked", count)
	}
	if got := ds.String(dcm.SpecificCharacterSet); got != "ISO_IR 192" {
		t.Errorf("specific character set %q, want ISO_IR 192 for a non-ASCII name", got)
	}
	if got := ds.String(dcm.PatientName); got != "Müller^Jürgen" {
		t.Errorf("patient name %q", got)
	}
	if got := ds.String(dcm.ContentDate); got != "20260506" {
		t.Errorf("content date %q", got)
	}
}

func TestUIDs(t *testing.T) {
	a, err := NewUID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewUID()
	if a == b || dcm.CheckUID(a) != nil || !strings.HasPrefix(a, "2.25.") {
		t.Errorf("NewUID gave %q and %q", a, b)
	}
	for s, want := range map[string]bool{
		"1.2.840.10008.5.1.4.1.1.66.4": true, ImplementationClassUID: true, "": false, "1..2": false,
		"1.02": false, "1.2.": false, "1.a": false, strings.Repeat("1.", 32) + "1": false, "0.1": true,
	} {
		if (dcm.CheckUID(s) == nil) != want {
			t.Errorf("CheckUID(%q) accepts it: %v, want %v", s, !want, want)
		}
	}
}

func TestLegacyDateTime(t *testing.T) {
	for in, want := range map[string]string{"1994.01.30": "19940130", "20200101": "20200101", "": ""} {
		if got := legacyDate(in); got != want {
			t.Errorf("legacyDate(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"11:25:01": "112501", "11:25:01.5": "112501.5", "112501": "112501"} {
		if got := legacyTime(in); got != want {
			t.Errorf("legacyTime(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestResultSaysWhatItHolds: the typed result names the SEG the way its bytes do, and DataSet
// is the data set after the file meta, in the transfer syntax the result gives.
func TestResultSaysWhatItHolds(t *testing.T) {
	src := testSource()
	res, err := Encode(src, []Segment{testSegment(ones(15), ones(15), ones(15))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := dcm.ReadPart10(bytes.NewReader(res.Bytes), dcm.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dcm.Parse(res.DataSet(), res.TransferSyntaxUID)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][2]string{
		"SOP class":       {res.SOPClassUID, ds.String(dcm.SOPClassUID)},
		"SOP instance":    {res.SOPInstanceUID, ds.String(dcm.SOPInstanceUID)},
		"series":          {res.SeriesInstanceUID, ds.String(dcm.SeriesInstanceUID)},
		"study":           {res.StudyInstanceUID, ds.String(dcm.StudyInstanceUID)},
		"transfer syntax": {res.TransferSyntaxUID, f.Meta.TransferSyntaxUID},
		"meta class":      {res.SOPClassUID, f.Meta.MediaStorageSOPClassUID},
	} {
		if v[0] == "" || v[0] != v[1] {
			t.Errorf("%s: result %q, bytes %q", name, v[0], v[1])
		}
	}
	if len(ds.Elements) != len(f.DataSet.Elements) || !bytes.HasSuffix(res.Bytes, res.DataSet()) || len(res.DataSet()) >= len(res.Bytes)-132 {
		t.Error("DataSet is not the data set after the file meta")
	}
	if res.StudyInstanceUID != src.Study.InstanceUID {
		t.Errorf("study %q, the source's %q", res.StudyInstanceUID, src.Study.InstanceUID)
	}
}

// TestSingleFrameClassWithFrames: an instance of a single-frame SOP class that carries several
// frames gets a SEG of its first frame, referenced without a frame number and without a frame
// dimension, whatever the other frames' masks hold; a multi-frame class keeps every frame.
func TestSingleFrameClassWithFrames(t *testing.T) {
	frame := func(v byte) []byte { return bytes.Repeat([]byte{v}, 15) }
	for _, tt := range []struct {
		name, class          string
		wantFrames, wantSkip int
		wantFrameNumbers     []int
		wantDims             int
	}{
		{"US Image (single-frame class)", "1.2.840.10008.5.1.4.1.1.6.1", 1, 2, []int{0}, 1},
		{"Secondary Capture (single-frame class)", "1.2.840.10008.5.1.4.1.1.7", 1, 2, []int{0}, 1},
		{"US Multi-frame Image", "1.2.840.10008.5.1.4.1.1.3.1", 3, 0, []int{1, 2, 3}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := testSource()
			src.SOPClassUID = tt.class
			res, err := Encode(src, []Segment{testSegment(frame(1), frame(0), frame(1))}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Frames != tt.wantFrames || res.SkippedSourceFrames != tt.wantSkip {
				t.Errorf("%d frames, %d skipped; want %d, %d", res.Frames, res.SkippedSourceFrames, tt.wantFrames, tt.wantSkip)
			}
			seg, err := Decode(res.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			var numbers []int
			for _, f := range seg.Frames {
				for _, s := range f.Sources {
					numbers = append(numbers, s.FrameNumber)
				}
			}
			if !equalInts(numbers, tt.wantFrameNumbers) {
				t.Errorf("referenced frame numbers %v, want %v (0: none)", numbers, tt.wantFrameNumbers)
			}
			if !bytes.Equal(seg.Frames[0].Pixels, frame(1)) {
				t.Errorf("first frame pixels %v, want the first source frame's mask", seg.Frames[0].Pixels)
			}
			ds, err := parseFile(res.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(ds.Items(dcm.DimensionIndexSequence)); n != tt.wantDims {
				t.Errorf("%d dimensions, want %d", n, tt.wantDims)
			}
			if src.Frames != 3 {
				t.Errorf("Encode changed the caller's source: %d frames", src.Frames)
			}
		})
	}
}
