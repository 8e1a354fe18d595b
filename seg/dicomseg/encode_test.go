package dicomseg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

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
	pd := find(ds, tagPixelData)
	if pd == nil || pd.vr != "OB" {
		t.Fatalf("pixel data %+v, want OB", pd)
	}
	// bits 0..14 set; bit 44 (byte 5, bit 4) set.
	want := []byte{0xFF, 0x7F, 0x00, 0x00, 0x00, 0x10}
	if !bytes.Equal(pd.value, want) {
		t.Fatalf("pixel data % x, want % x", pd.value, want)
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
	if got := len(find(ds, tagPixelData).value); got != 16 {
		t.Errorf("pixel data is %d bytes, want 15 padded to 16", got)
	}
	if got := text(ds, 0x00620010); got != "PROBABILITY" {
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
			if got := text(ds, 0x00620013); got != tt.wantOverlap {
				t.Errorf("segments overlap %q, want %q", got, tt.wantOverlap)
			}
			var dims []string
			for _, item := range find(ds, 0x00209222).items {
				v := find(item, 0x00209165).value
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
	p := &parser{buf: res.Bytes[132:], explicit: true}
	meta := map[uint32]string{}
	for len(p.buf) >= 4 && binary.LittleEndian.Uint16(p.buf) == 0x0002 {
		e, err := p.element(0)
		if err != nil {
			t.Fatal(err)
		}
		meta[e.tag] = strings.TrimRight(string(e.value), " \x00")
	}
	for tag, want := range map[uint32]string{
		0x00020002: SegmentationStorage,
		0x00020003: res.SOPInstanceUID,
		0x00020010: explicitVRLittleEndian,
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
	var walk func(path string, ds []rawElement)
	count := 0
	walk = func(path string, ds []rawElement) {
		for i, e := range ds {
			count++
			if i > 0 && ds[i-1].tag >= e.tag {
				t.Errorf("%s: (%08x) follows (%08x)", path, e.tag, ds[i-1].tag)
			}
			if len(e.value)%2 != 0 {
				t.Errorf("%s (%08x): odd length %d", path, e.tag, len(e.value))
			}
			for j, item := range e.items {
				walk(fmt.Sprintf("%s>%08x[%d]", path, e.tag, j+1), item)
			}
		}
	}
	walk("", ds)
	if count < 80 {
		t.Errorf("only %d elements walked", count)
	}
	if got := text(ds, 0x00080005); got != "ISO_IR 192" {
		t.Errorf("specific character set %q, want ISO_IR 192 for a non-ASCII name", got)
	}
	if got := text(ds, 0x00100010); got != "Müller^Jürgen" {
		t.Errorf("patient name %q", got)
	}
	if got := text(ds, 0x00080023); got != "20260506" {
		t.Errorf("content date %q", got)
	}
}

func TestWriterValues(t *testing.T) {
	tests := []struct {
		e    element
		want []byte
	}{
		{str(tagOf(0x0008, 0x0018), "UI", "1.23"), []byte{0x08, 0, 0x18, 0, 'U', 'I', 4, 0, '1', '.', '2', '3'}},
		{str(tagOf(0x0008, 0x0018), "UI", "1.2"), []byte{0x08, 0, 0x18, 0, 'U', 'I', 4, 0, '1', '.', '2', 0}},
		{str(tagOf(0x0010, 0x0010), "PN", "A^B"), []byte{0x10, 0, 0x10, 0, 'P', 'N', 4, 0, 'A', '^', 'B', ' '}},
		{ob(tagOf(0x7FE0, 0x0010), []byte{1, 2, 3}), []byte{0xE0, 0x7F, 0x10, 0, 'O', 'B', 0, 0, 4, 0, 0, 0, 1, 2, 3, 0}},
		{u16(tagOf(0x0028, 0x0010), 512), []byte{0x28, 0, 0x10, 0, 'U', 'S', 2, 0, 0, 2}},
		{at(tagOf(0x0020, 0x9165), tagOf(0x0062, 0x000B)), []byte{0x20, 0, 0x65, 0x91, 'A', 'T', 4, 0, 0x62, 0, 0x0B, 0}},
		{seq(tagOf(0x0062, 0x000A), dataset{u16(tagOf(0x0062, 0x000B), 1)}),
			[]byte{0x62, 0, 0x0A, 0, 'S', 'Q', 0, 0, 18, 0, 0, 0, 0xFE, 0xFF, 0, 0xE0, 10, 0, 0, 0, 0x62, 0, 0x0B, 0, 'U', 'S', 2, 0, 1, 0}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := tt.e.encode(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), tt.want) {
			t.Errorf("(%08x %s) encoded as % x, want % x", tt.e.tag, tt.e.vr, buf.Bytes(), tt.want)
		}
	}
	var buf bytes.Buffer
	if err := (dataset{u16(1, 1), u16(1, 2)}).encode(&buf); err == nil {
		t.Error("a duplicate element was written")
	}
	if err := str(tagOf(0x0008, 0x0104), "LO", strings.Repeat("x", 70000)).encode(&buf); err == nil {
		t.Error("a 70000-byte LO was written")
	}
}

func TestFormatDS(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{
		{0.5, "0.5"}, {-158.135803, "-158.135803"}, {1e-20, "1e-20"}, {0, "0"},
		{0.66146799999999997, "0.661468"}, {-123456.78901234567, "-123456.78901235"}, {1.0 / 3, "0.33333333333333"},
	} {
		got := formatDS(tt.in)
		if got != tt.want || len(got) > 16 {
			t.Errorf("formatDS(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUIDs(t *testing.T) {
	a, err := NewUID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewUID()
	if a == b || !validUID(a) || !strings.HasPrefix(a, "2.25.") {
		t.Errorf("NewUID gave %q and %q", a, b)
	}
	for s, want := range map[string]bool{
		"1.2.840.10008.5.1.4.1.1.66.4": true, ImplementationClassUID: true, "": false, "1..2": false,
		"1.02": false, "1.2.": false, "1.a": false, strings.Repeat("1.", 32) + "1": false, "0.1": true,
	} {
		if validUID(s) != want {
			t.Errorf("validUID(%q) = %v, want %v", s, !want, want)
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
