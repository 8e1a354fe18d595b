package dcm

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

func TestWriterValues(t *testing.T) {
	tests := []struct {
		e    Element
		want []byte
	}{
		{NewText(SOPInstanceUID, "UI", "1.23"), []byte{0x08, 0, 0x18, 0, 'U', 'I', 4, 0, '1', '.', '2', '3'}},
		{NewText(SOPInstanceUID, "UI", "1.2"), []byte{0x08, 0, 0x18, 0, 'U', 'I', 4, 0, '1', '.', '2', 0}},
		{NewText(PatientName, "PN", "A^B"), []byte{0x10, 0, 0x10, 0, 'P', 'N', 4, 0, 'A', '^', 'B', ' '}},
		{NewBytes(PixelData, "OB", []byte{1, 2, 3}), []byte{0xE0, 0x7F, 0x10, 0, 'O', 'B', 0, 0, 4, 0, 0, 0, 1, 2, 3, 0}},
		{NewUS(Rows, 512), []byte{0x28, 0, 0x10, 0, 'U', 'S', 2, 0, 0, 2}},
		{NewAT(DimensionIndexPointer, ReferencedSegmentNumber), []byte{0x20, 0, 0x65, 0x91, 'A', 'T', 4, 0, 0x62, 0, 0x0B, 0}},
		{NewSequence(SegmentIdentificationSequence, NewDataSet(NewUS(ReferencedSegmentNumber, 1))),
			[]byte{0x62, 0, 0x0A, 0, 'S', 'Q', 0, 0, 18, 0, 0, 0, 0xFE, 0xFF, 0, 0xE0, 10, 0, 0, 0, 0x62, 0, 0x0B, 0, 'U', 'S', 2, 0, 1, 0}},
	}
	for _, tt := range tests {
		got, err := Encode(NewDataSet(tt.e), ExplicitVRLittleEndian)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("(%08x %s) encoded as % x, want % x", uint32(tt.e.Tag), tt.e.VR, got, tt.want)
		}
	}
	if _, err := Encode(NewDataSet(NewUS(1, 1), NewUS(1, 2)), ExplicitVRLittleEndian); err == nil {
		t.Error("a duplicate element was written")
	}
	if _, err := Encode(NewDataSet(NewText(CodeMeaning, "LO", strings.Repeat("x", 70000))), ExplicitVRLittleEndian); err == nil {
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
		got := FormatDS(tt.in)
		if got != tt.want || len(got) > 16 {
			t.Errorf("FormatDS(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// sample holds an element of each kind the node writes or reads: text of several VRs, binary
// numbers of every width, AT, a private value, empty values, sequences three deep with an
// empty sequence and an empty item, and native pixel data.
func sample() *DataSet {
	f32 := func(v float32) []byte { return le32(math.Float32bits(v)) }
	f64 := func(v float64) []byte { return le64(math.Float64bits(v)) }
	inner := NewDataSet(NewText(CodeValue, "SH", "121322"), NewText(CodingSchemeDesignator, "SH", "DCM"),
		NewText(CodeMeaning, "LO", "Source image for image processing operation"))
	return NewDataSet(
		NewText(SpecificCharacterSet, "CS", "ISO_IR 100"),
		NewText(ImageType, "CS", "DERIVED", "PRIMARY"),
		NewText(SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		NewText(SOPInstanceUID, "UI", "1.2.3.4.5"),
		NewText(StudyDate, "DA", "20240102"),
		NewText(PatientName, "PN", "M\xfcller^J"),
		NewText(PatientID, "LO", ""),
		NewText(ImageComments, "LT", `a\b is one value`),
		NewIS(InstanceNumber, 7),
		NewDS(PixelSpacing, 0.5, 0.25),
		NewUS(Rows, 2), NewUS(Columns, 3), NewUS(BitsAllocated, 16), NewUS(BitsStored, 12),
		Element{Tag: TagAngleSecondAxis, VR: "SS", Value: []byte{0xFE, 0xFF}},
		NewUL(DimensionIndexValues, 1, 70000),
		Element{Tag: RationalNumeratorValue, VR: "SL", Value: le32(0xFFFFFFFE)},
		Element{Tag: RealWorldValueSlope, VR: "FD", Value: f64(-1.5)},
		Element{Tag: GraphicData, VR: "FL", Value: append(f32(0.25), f32(-2)...)},
		NewAT(FunctionalGroupPointer, PlanePositionSequence, FrameContentSequence),
		NewBytes(0x00091010, "OB", []byte{1, 2, 3, 4}),
		NewSequence(ReferencedSeriesSequence,
			NewDataSet(NewText(SeriesInstanceUID, "UI", "1.2.3"),
				NewSequence(ReferencedInstanceSequence,
					NewDataSet(NewText(ReferencedSOPClassUID, "UI", "1.2.4"), NewText(ReferencedSOPInstanceUID, "UI", "1.2.5"),
						NewSequence(PurposeOfReferenceCodeSequence, inner)),
					NewDataSet())),
			NewDataSet(NewText(SeriesInstanceUID, "UI", "1.2.6"))),
		NewSequence(ReferencedStudySequence),
		NewBytes(PixelData, "OW", []byte{1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0}),
	)
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func le64(v uint64) []byte { return append(le32(uint32(v)), le32(uint32(v>>32))...) }

// sameContent compares two data sets value by value, whatever their byte orders.
func sameContent(t *testing.T, path string, a, b *DataSet) {
	t.Helper()
	if len(a.Elements) != len(b.Elements) {
		t.Fatalf("%s: %d elements, want %d", path, len(b.Elements), len(a.Elements))
	}
	for i := range a.Elements {
		x, y := &a.Elements[i], &b.Elements[i]
		textual := unitSize(x.valueVR()) == 0
		if x.Tag != y.Tag || textual && x.Text() != y.Text() || len(x.Items) != len(y.Items) {
			t.Fatalf("%s: %s %q (%d items), want %s %q (%d items)", path, y.Tag, y.Text(), len(y.Items), x.Tag, x.Text(), len(x.Items))
		}
		if vr := x.valueVR(); unitSize(vr) > 0 {
			xs, _ := x.Floats()
			ys, _ := y.Floats()
			if !slices.Equal(xs, ys) && vr != "AT" {
				t.Fatalf("%s %s: values %v, want %v", path, x.Tag, ys, xs)
			}
			if vr == "OW" {
				if len(x.Value) != len(y.Value) || x.order().Uint16(x.Value) != y.order().Uint16(y.Value) {
					t.Fatalf("%s %s: OW words differ", path, x.Tag)
				}
			}
		}
		for j := range x.Items {
			sameContent(t, path+">"+x.Tag.String(), x.Items[j], y.Items[j])
		}
	}
}

// TestRoundTripEverySyntax writes a data set in each encoding, reads it back, checks every
// value, writes it again (the same bytes), and has DCMTK read the file without a complaint.
func TestRoundTripEverySyntax(t *testing.T) {
	for _, ts := range []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian} {
		t.Run(TransferSyntaxName(ts), func(t *testing.T) {
			in := sample()
			b := encode(t, in, ts)
			if len(b)%2 != 0 && ts != DeflatedExplicitVRLittleEndian {
				t.Errorf("odd length %d", len(b))
			}
			out, err := Parse(b, ts)
			if err != nil {
				t.Fatal(err)
			}
			sameContent(t, "", in, out)
			if again := encode(t, out, ts); !bytes.Equal(again, b) && ts != DeflatedExplicitVRLittleEndian {
				t.Error("writing what was read gives other bytes")
			}
			if ts == ExplicitVRBigEndian {
				if e := out.Find(Rows); !e.BigEndian || !bytes.Equal(e.Value, []byte{0, 2}) {
					t.Errorf("big endian Rows read as %+v", e)
				}
			}
			dcmtkReads(t, ts, b)
		})
	}
}

// dcmtkReads has dcmdump read a data set in the syntax, behind file meta: no warning allowed.
func dcmtkReads(t *testing.T, ts string, data []byte) map[Tag]string {
	t.Helper()
	var f bytes.Buffer
	if err := WriteFileMeta(&f, FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: "1.2.3.4.5",
		TransferSyntaxUID: ts, ImplementationClassUID: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	path := filepath.Join(t.TempDir(), "x.dcm")
	if err := os.WriteFile(path, f.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	vals, stderr := dcmdumpTop(t, path)
	if stderr != "" {
		t.Errorf("dcmdump complained: %s", stderr)
	}
	if vals[SOPInstanceUID] != "1.2.3.4.5" || vals[InstanceNumber] != "7" {
		t.Errorf("dcmdump read SOP instance %q, instance number %q", vals[SOPInstanceUID], vals[InstanceNumber])
	}
	return vals
}

// TestEncapsulatedRoundTrip writes encapsulated pixel data (offset table, odd fragment padded)
// and reads it back.
func TestEncapsulatedRoundTrip(t *testing.T) {
	in := NewDataSet(NewText(SOPInstanceUID, "UI", "1.2.3.4.5"), NewIS(InstanceNumber, 7),
		Element{Tag: PixelData, VR: "OB", Fragments: [][]byte{le32(0), {0xFF, 0xD8, 1, 2}, {3, 4, 0xFF}}})
	b := encode(t, in, JPEGBaseline8Bit)
	out, err := Parse(b, JPEGBaseline8Bit)
	if err != nil {
		t.Fatal(err)
	}
	pd := out.Find(PixelData)
	if pd == nil || len(pd.Fragments) != 3 || !bytes.Equal(pd.Fragments[2], []byte{3, 4, 0xFF, 0}) || pd.Length != UndefinedLength {
		t.Fatalf("pixel data read back as %+v", pd)
	}
	if bot, err := pd.OffsetTable(); err != nil || !slices.Equal(bot, []uint32{0}) {
		t.Errorf("offset table %v, %v", bot, err)
	}
	offsets, frags, err := ParseFragments(b[bytes.Index(b, []byte{0xFE, 0xFF, 0x00, 0xE0}):])
	if err != nil || len(offsets) != 1 || len(frags) != 2 {
		t.Errorf("ParseFragments: %v %d fragments, %v", offsets, len(frags), err)
	}
	dcmtkReads(t, JPEGBaseline8Bit, b)
}

// TestStreamedSequences writes sequences and items of undefined length, and one item of
// defined length among them.
func TestStreamedSequences(t *testing.T) {
	for _, ts := range []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian} {
		var b bytes.Buffer
		w, err := NewWriter(&b, ts)
		if err != nil {
			t.Fatal(err)
		}
		steps := []func() error{
			func() error { return w.WriteElement(ptr(NewText(SOPInstanceUID, "UI", "1.2.3.4.5"))) },
			func() error { return w.BeginSequence(ReferencedSeriesSequence) },
			w.BeginItem,
			func() error { return w.BeginSequence(ReferencedInstanceSequence) },
			func() error { return w.WriteItem(NewDataSet(NewText(ReferencedSOPInstanceUID, "UI", "1.2.5"))) },
			w.BeginItem, w.EndItem,
			w.EndSequence,
			func() error { return w.WriteElement(ptr(NewText(SeriesInstanceUID, "UI", "1.2.3"))) },
			w.EndItem,
			w.EndSequence,
			func() error { return w.WriteElement(ptr(NewIS(InstanceNumber, 7))) },
			func() error {
				return w.WriteValueFrom(ImageComments, "LT", 3, strings.NewReader("abc"))
			},
			w.Close,
		}
		for i, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("%s: step %d: %v", ts, i, err)
			}
		}
		ds, err := Parse(b.Bytes(), ts)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		series := ds.Items(ReferencedSeriesSequence)
		if len(series) != 1 || len(series[0].Items(ReferencedInstanceSequence)) != 2 ||
			series[0].Items(ReferencedInstanceSequence)[0].String(ReferencedSOPInstanceUID) != "1.2.5" ||
			ds.String(ImageComments) != "abc" || ds.Find(ReferencedSeriesSequence).Length != UndefinedLength {
			t.Fatalf("%s: read back %+v", ts, ds)
		}
		dcmtkReads(t, ts, b.Bytes())
	}
}

func TestWriterRejects(t *testing.T) {
	newW := func() *Writer {
		w, _ := NewWriter(io.Discard, ExplicitVRLittleEndian)
		return w
	}
	tests := []struct {
		name string
		do   func(w *Writer) error
		want string
	}{
		{"out of order", func(w *Writer) error {
			w.WriteElement(ptr(NewUS(Columns, 1)))
			return w.WriteElement(ptr(NewUS(Rows, 1)))
		}, "ascending tag order"},
		{"twice", func(w *Writer) error {
			w.WriteElement(ptr(NewUS(Rows, 1)))
			return w.WriteElement(ptr(NewUS(Rows, 1)))
		}, "given twice"},
		{"twice in an item", func(w *Writer) error {
			return w.WriteElement(ptr(NewSequence(ReferencedSeriesSequence, &DataSet{Elements: []Element{NewUS(Rows, 1), NewUS(Rows, 2)}})))
		}, "given twice"},
		{"too long for its VR", func(w *Writer) error {
			return w.WriteElement(ptr(NewText(PatientID, "LO", strings.Repeat("x", 1<<16))))
		}, "too long for VR LO"},
		{"skipped value", func(w *Writer) error { return w.WriteElement(&Element{Tag: PixelData, VR: "OW", Skipped: true}) }, "skipped"},
		{"item tag", func(w *Writer) error { return w.WriteElement(&Element{Tag: Item}) }, "not an element"},
		{"item outside a sequence", func(w *Writer) error { return w.BeginItem() }, "outside a sequence"},
		{"element in a sequence", func(w *Writer) error {
			w.BeginSequence(ReferencedSeriesSequence)
			return w.WriteElement(ptr(NewUS(Rows, 1)))
		}, "outside any item"},
		{"open sequence", func(w *Writer) error {
			w.BeginSequence(ReferencedSeriesSequence)
			return w.Close()
		}, "still open"},
		{"short value", func(w *Writer) error {
			return w.WriteValueFrom(ImageComments, "LT", 10, strings.NewReader("abc"))
		}, "unexpected EOF"},
	}
	for _, tt := range tests {
		if err := tt.do(newW()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := NewWriter(io.Discard, ""); err == nil {
		t.Error("a writer without a transfer syntax")
	}
	w, _ := NewWriter(io.Discard, ExplicitVRBigEndian)
	if err := w.WriteValueFrom(PixelData, "OW", 2, strings.NewReader("ab")); err == nil {
		t.Error("OW streamed as it comes into big endian")
	}
}

// TestOddLengths: the reader takes odd lengths as some writers make them (one of the shared
// files has odd pixel data); the writer pads every value to even length with its VR's pad
// byte; ExplicitToImplicit, whose output must not grow, refuses odd values.
func TestOddLengths(t *testing.T) {
	odd := le().str(PatientID, "LO", "ABC").str(SOPInstanceUID, "UI", "1.2.3").elem(0x00091010, "OB", []byte{1, 2, 3}).bytes()
	ds, err := Parse(odd, ExplicitVRLittleEndian)
	if err != nil || ds.String(PatientID) != "ABC" {
		t.Fatalf("odd values read as %+v, %v", ds, err)
	}
	b := encode(t, ds, ExplicitVRLittleEndian)
	for _, want := range [][]byte{[]byte("ABC "), []byte("1.2.3\x00"), {1, 2, 3, 0}} {
		if !bytes.Contains(b, want) {
			t.Errorf("written without the padded value % x", want)
		}
	}
	if len(b) != len(odd)+3 {
		t.Errorf("%d bytes written for %d read with three odd values", len(b), len(odd))
	}
	if err := ExplicitToImplicit(io.Discard, bytes.NewReader(odd)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "odd length") {
		t.Errorf("ExplicitToImplicit of odd values: %v", err)
	}
	inItem := le().header(ReferencedSeriesSequence, "SQ", 8+8+3).header(Item, "", 8+3).str(PatientID, "LO", "ABC").bytes()
	if err := ExplicitToImplicit(io.Discard, bytes.NewReader(inItem)); !errors.Is(err, ErrMalformed) {
		t.Errorf("ExplicitToImplicit of an odd value in a sequence: %v", err)
	}
}

// TestLimits: each limit, when hit, gives an error that says which and wraps ErrLimit and
// ErrMalformed.
func TestLimits(t *testing.T) {
	deep := le()
	for range 4 {
		deep.header(ReferencedSeriesSequence, "SQ", undefinedLength).header(Item, "", undefinedLength)
	}
	for range 4 {
		deep.header(ItemDelimitationItem, "", 0).header(SequenceDelimitationItem, "", 0)
	}
	frags := le().header(PixelData, "OB", undefinedLength)
	for range 4 {
		frags.header(Item, "", 2).raw([]byte{1, 2})
	}
	frags.header(SequenceDelimitationItem, "", 0)
	many := le()
	for i := range 6 {
		many.str(NewTag(0x0009, uint16(0x1000+i)), "LO", "AB")
	}
	var bomb bytes.Buffer
	fw, _ := flate.NewWriter(&bomb, flate.BestCompression)
	fw.Write(le().elem(0x00091010, "OB", make([]byte, 1<<20)).bytes())
	fw.Close()
	tests := []struct {
		name string
		lim  Limits
		ts   string
		data []byte
		want string
	}{
		{"depth", Limits{MaxDepth: 3}, ExplicitVRLittleEndian, deep.bytes(), "nested deeper than 3"},
		{"value length", Limits{MaxValueLength: 100}, ExplicitVRLittleEndian, le().elem(0x00091010, "OB", make([]byte, 200)).bytes(), "longer than the limit of 100"},
		{"fragments", Limits{MaxFragments: 3}, ExplicitVRLittleEndian, frags.bytes(), "more than 3 fragments"},
		{"elements", Limits{MaxElements: 5}, ExplicitVRLittleEndian, many.bytes(), "more than 5 elements, items and fragments"},
		{"inflated size", Limits{MaxInflated: 64 << 10}, DeflatedExplicitVRLittleEndian, bomb.Bytes(), "inflates past 65536 bytes"},
	}
	for _, tt := range tests {
		_, err := ReadDataSet(bytes.NewReader(tt.data), tt.ts, ParseOptions{Limits: tt.lim})
		if !errors.Is(err, ErrLimit) || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrLimit saying %q", tt.name, err, tt.want)
		}
		// Within the default limits the same data reads.
		if _, err := ReadDataSet(bytes.NewReader(tt.data), tt.ts, ParseOptions{}); err != nil {
			t.Errorf("%s: within the default limits: %v", tt.name, err)
		}
	}
	// The file meta group has its own bound.
	var meta bytes.Buffer
	WriteFileMeta(&meta, FileMeta{MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: ExplicitVRLittleEndian,
		ImplementationClassUID: "1.2", ImplementationVersionName: "LONGNAME"})
	if _, err := readFileMeta(bufioReader(meta.Bytes()), Limits{MaxFileMeta: 64}); !errors.Is(err, ErrMalformed) {
		t.Errorf("file meta over its limit: %v", err)
	}
	// ExplicitToImplicit holds a defined-length sequence only up to its bound.
	huge := le().header(ReferencedSeriesSequence, "SQ", 17<<20).bytes()
	if err := ExplicitToImplicit(io.Discard, io.MultiReader(bytes.NewReader(huge))); !errors.Is(err, ErrLimit) {
		t.Errorf("a 17 MiB sequence to convert: %v", err)
	}
	if d := (Limits{}).withDefaults(); d != DefaultLimits() || d.MaxDepth != 64 || d.MaxInflated != 1<<30 {
		t.Errorf("zero limits give %+v", d)
	}
}

// TestDictionary: the generated table is dictionary.txt, sorted, and agrees with pydicom's
// data dictionary on every keyword and VR.
func TestDictionary(t *testing.T) {
	src, err := os.ReadFile("dictionary.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(src), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) != len(dictionary) {
		t.Fatalf("dictionary.txt has %d entries, dictionary.go %d: run go generate ./dcm", len(lines), len(dictionary))
	}
	var script strings.Builder
	script.WriteString("from pydicom.datadict import dictionary_VR, keyword_for_tag\n")
	for i, e := range dictionary {
		vr := e.vr
		if vr == "" {
			vr = "--"
		}
		if want := e.tag.String() + " " + vr + " " + e.keyword; strings.Join(strings.Fields(lines[i]), " ") != want {
			t.Fatalf("dictionary.go entry %d is %q, dictionary.txt says %q: run go generate ./dcm", i, want, lines[i])
		}
		if i > 0 && dictionary[i-1].tag >= e.tag {
			t.Fatalf("%s is out of order", e.tag)
		}
		fmt.Fprintf(&script, "print(dictionary_VR(0x%08x) + '|' + keyword_for_tag(0x%08x))\n", uint32(e.tag), uint32(e.tag))
	}
	out, err := exec.Command(testutil.Python(t), "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("pydicom (install Debian's python3-pydicom): %v", err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		e := dictionary[i]
		vrs, keyword, _ := strings.Cut(line, "|")
		if keyword != e.keyword || e.vr != "" && !slices.Contains(strings.Split(vrs, " or "), e.vr) {
			t.Errorf("%s %s %s: pydicom says %s %s", e.tag, e.vr, e.keyword, vrs, keyword)
		}
	}
	if VROf(Rows) != "US" || VROf(0x00091010) != "UN" || VROf(0x00090000) != "UL" || Rows.Name() != "Rows" {
		t.Error("lookups of the dictionary are wrong")
	}
	if tg, ok := TagByName("patientname"); !ok || tg != PatientName {
		t.Errorf("TagByName(patientname) = %s, %v", tg, ok)
	}
}

// TestTransferSyntaxTable checks the table against pydicom's list of transfer syntaxes (every
// one it knows must be there, with its name and retirement), and the facts PS3.5 fixes.
func TestTransferSyntaxTable(t *testing.T) {
	script := `from pydicom._uid_dict import UID_dictionary as d
for k, v in sorted(d.items()):
    if v[1] == "Transfer Syntax":
        print(k + "|" + v[0] + "|" + v[3])`
	out, err := exec.Command(testutil.Python(t), "-c", script).Output()
	if err != nil {
		t.Fatalf("pydicom (install Debian's python3-pydicom): %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		ts, ok := LookupTransferSyntax(f[0])
		if !ok {
			t.Errorf("%s (%s) is missing", f[0], f[1])
			continue
		}
		n++
		// PS3.6 has written "Process 2 & 4" since 2021; pydicom 2.3 still has "and".
		if strings.ReplaceAll(ts.Name, "&", "and") != f[1] || ts.Retired != (f[2] == "Retired") {
			t.Errorf("%s: %q retired %v, pydicom %q %q", f[0], ts.Name, ts.Retired, f[1], f[2])
		}
	}
	if n < 45 {
		t.Errorf("only %d syntaxes compared", n)
	}
	for _, ts := range TransferSyntaxes() {
		jpegFamily := strings.HasPrefix(ts.UID, "1.2.840.10008.1.2.4.") && !strings.Contains(ts.Name, "JPIP")
		switch {
		case ts.BigEndian != (ts.UID == ExplicitVRBigEndian):
			t.Errorf("%s: big endian %v", ts.UID, ts.BigEndian)
		case jpegFamily && !ts.Encapsulated, ts.UID == RLELossless && !ts.Encapsulated:
			t.Errorf("%s (%s) is not encapsulated", ts.UID, ts.Name)
		case ts.Deflated != slices.Contains([]string{DeflatedExplicitVRLittleEndian, JPIPReferencedDeflate, JPIPHTJ2KReferencedDeflate}, ts.UID):
			t.Errorf("%s: deflated %v", ts.UID, ts.Deflated)
		case ts.Lossless && strings.Contains(ts.Name, "Lossy"):
			t.Errorf("%s (%s) is called lossless", ts.UID, ts.Name)
		case ts.Storable && strings.HasPrefix(ts.Name, "SMPTE"):
			t.Errorf("%s is storable", ts.Name)
		}
	}
	if TransferSyntaxName("1.2.3") != "unknown" || TransferSyntaxName(HTJ2KLossless) != "High-Throughput JPEG 2000 Image Compression (Lossless Only)" {
		t.Error("TransferSyntaxName")
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
