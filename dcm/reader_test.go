package dcm

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// undefinedLength is the length value that means "until a delimiter".
const undefinedLength = UndefinedLength

// indexValueLimit is the longest value the store's ingest holds; longer ones are skipped.
const indexValueLimit = 64 << 10

// attr is what the store's ingest reads of a top-level attribute: its VR (the dictionary's
// for values read as UN), its text, and its first number for integer VRs.
type attr struct {
	VR     string
	Str    string
	Int    int64
	HasInt bool
}

type attrs map[Tag]attr

func (a attrs) String(t Tag) string { return a[t].Str }

func (a attrs) Int(t Tag) (int64, bool) {
	v, ok := a[t]
	return v.Int, ok && v.HasInt
}

// scan reads a data set the way the store's ingest does (the attributes in want, values up to
// indexValueLimit) and returns what it kept as attrs; an empty value is as good as absent.
func scan(r io.Reader, ts string, want TagSet) (attrs, error) {
	ds, err := ReadDataSet(r, ts, ParseOptions{Keep: want, SkipValuesOver: indexValueLimit})
	return attrsOf(ds), err
}

// scanHead is scan up to the last wanted tag.
func scanHead(r io.Reader, ts string, want TagSet) (attrs, error) {
	var last Tag
	for t := range want {
		last = max(last, t)
	}
	ds, err := ReadDataSet(r, ts, ParseOptions{Keep: want, SkipValuesOver: indexValueLimit, StopAfter: last})
	return attrsOf(ds), err
}

func attrsOf(ds *DataSet) attrs {
	out := attrs{}
	if ds == nil {
		return out
	}
	for i := range ds.Elements {
		e := &ds.Elements[i]
		if e.Skipped || e.VR == "SQ" {
			continue
		}
		a := attr{VR: e.valueVR(), Str: e.Text()}
		switch a.VR {
		case "US", "SS", "UL", "SL", "IS":
			if n, err := e.Int(); err == nil {
				a.Int, a.HasInt = n, true
			}
		}
		if a.Str == "" && !a.HasInt {
			continue
		}
		out[e.Tag] = a
	}
	return out
}

// scanTags are the attributes compared with dcmdump: what the store indexes
// and a few of every kind of VR.
var scanTags = []Tag{
	SpecificCharacterSet, ImageType, SOPClassUID, SOPInstanceUID, StudyDate, SeriesDate, StudyTime,
	SeriesTime, AccessionNumber, Modality, Manufacturer, ReferringPhysicianName, StudyDescription,
	SeriesDescription, PatientName, PatientID, PatientBirthDate, PatientSex, BodyPartExamined,
	StudyInstanceUID, SeriesInstanceUID, StudyID, SeriesNumber, InstanceNumber, SamplesPerPixel,
	PhotometricInterpretation, NumberOfFrames, Rows, Columns, BitsAllocated, BitsStored, PixelRepresentation,
}

// dataSetOf returns a shared file's data set bytes and transfer syntax.
func dataSetOf(t testing.TB, path string) ([]byte, string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	m, err := ReadFileMeta(br)
	if errors.Is(err, ErrNoFileMeta) {
		return raw, ImplicitVRLittleEndian
	}
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return rest, m.TransferSyntaxUID
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestReadAttributesMatchDcmdump(t *testing.T) {
	tsSeen := make(map[string]bool)
	for _, path := range sharedFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, ts := dataSetOf(t, path)
			tsSeen[ts] = true
			cr := &countingReader{r: bytes.NewReader(data)}
			got, err := scan(cr, ts, NewTagSet(scanTags...))
			if err != nil {
				t.Fatalf("read (%s): %v", ts, err)
			}
			if cr.n != int64(len(data)) {
				t.Errorf("read %d of %d bytes", cr.n, len(data))
			}
			want, _ := dcmdumpTop(t, path)
			for _, tag := range scanTags {
				w, inDump := want[tag]
				v, inScan := got[tag]
				if leadingSpaceInsignificant(v.VR) || leadingSpaceInsignificant(VROf(tag)) {
					w = strings.TrimSpace(w)
				} else {
					w = strings.TrimRight(w, " ")
				}
				switch {
				case !inDump && inScan:
					t.Errorf("%s: we found %q, dcmdump nothing", tag, v.Str)
				case inDump && w != v.Str:
					t.Errorf("%s: we read %q, dcmdump %q", tag, v.Str, w)
				}
			}
			for _, tag := range []Tag{SOPClassUID, SOPInstanceUID} {
				if got.String(tag) == "" {
					t.Errorf("%s missing", tag)
				}
			}
			if rows, ok := got.Int(Rows); !ok || rows <= 0 {
				t.Errorf("Rows = %d, %v", rows, ok)
			}
		})
	}
	for _, ts := range []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
		DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5"} {
		if !tsSeen[ts] {
			t.Errorf("no shared file in transfer syntax %s", ts)
		}
	}
}

func TestReadTruncatedSharedFiles(t *testing.T) {
	for _, name := range []string{
		"MR/pydicom_MR_small_ivrle.dcm", "MR/pydicom_MR_small_evrbe.dcm", "CT/cornerstone_CT_deflate.dcm",
		"CT/cornerstone_CT_jpegbaseline_8bit.dcm", "SEG/dcmqi_liver/liver_seg.dcm",
	} {
		data, ts := dataSetOf(t, testutil.SharedData(t, "dicom", name))
		// Cuts inside the last element (pixel data, or the sequence
		// delimiter that ends it) can never be a valid data set.
		for _, cut := range []int{1, 3, 5, 7, 1000} {
			_, err := scan(bytes.NewReader(data[:len(data)-cut]), ts, NewTagSet(scanTags...))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s cut by %d: err = %v, want ErrMalformed", name, cut, err)
			}
			if ts != DeflatedExplicitVRLittleEndian && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s cut by %d: err = %v, want io.ErrUnexpectedEOF", name, cut, err)
			}
		}
		// Every other cut must not panic or hang.
		for cut := 0; cut < len(data); cut += 1 + len(data)/97 {
			scan(bytes.NewReader(data[:cut]), ts, NewTagSet(scanTags...))
		}
	}
}

var errPeerAborted = errors.New("peer aborted")

// failingReader returns data, then err instead of io.EOF.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReadPassesReaderErrorsThrough(t *testing.T) {
	for _, name := range []string{"CT/cornerstone_CT_evrle.dcm", "CT/cornerstone_CT_deflate.dcm"} {
		data, ts := dataSetOf(t, testutil.SharedData(t, "dicom", name))
		_, err := scan(&failingReader{data[:len(data)/2], errPeerAborted}, ts, nil)
		if !errors.Is(err, errPeerAborted) || errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want the reader's error, not ErrMalformed", name, err)
		}
	}
}

// ds builds a data set by hand.
type ds struct {
	bo       binary.AppendByteOrder
	explicit bool
	b        bytes.Buffer
}

func (d *ds) tag(t Tag) {
	d.b.Write(d.bo.AppendUint16(nil, t.Group()))
	d.b.Write(d.bo.AppendUint16(nil, t.Element()))
}

// header writes an element header; in implicit VR vr is ignored.
func (d *ds) header(t Tag, vr string, length uint32) *ds {
	d.tag(t)
	switch {
	case !d.explicit || t.Group() == 0xFFFE:
		d.b.Write(d.bo.AppendUint32(nil, length))
	case hasLongLength(vr):
		d.b.WriteString(vr + "\x00\x00")
		d.b.Write(d.bo.AppendUint32(nil, length))
	default:
		d.b.WriteString(vr)
		d.b.Write(d.bo.AppendUint16(nil, uint16(length)))
	}
	return d
}

func (d *ds) elem(t Tag, vr string, v []byte) *ds {
	d.header(t, vr, uint32(len(v)))
	d.b.Write(v)
	return d
}

func (d *ds) str(t Tag, vr, s string) *ds { return d.elem(t, vr, []byte(s)) }

func (d *ds) raw(b []byte) *ds { d.b.Write(b); return d }

func (d *ds) bytes() []byte { return bytes.Clone(d.b.Bytes()) }

func le() *ds  { return &ds{bo: binary.LittleEndian, explicit: true} }
func ile() *ds { return &ds{bo: binary.LittleEndian} }
func be() *ds  { return &ds{bo: binary.BigEndian, explicit: true} }

func TestReadHandMade(t *testing.T) {
	nested := le().
		str(SOPClassUID, "UI", "1.2.3\x00").
		// Undefined-length sequence whose item holds a wanted tag: not top
		// level, so not reported.
		header(0x00081115, "SQ", undefinedLength).
		header(Item, "", undefinedLength).
		str(PatientID, "LO", "NESTED").
		header(0x00081199, "SQ", undefinedLength). // nested again, empty item of defined length
		header(Item, "", 0).
		header(SequenceDelimitationItem, "", 0).
		header(ItemDelimitationItem, "", 0).
		header(Item, "", 8).str(PatientID, "LO", "").
		header(SequenceDelimitationItem, "", 0).
		// Defined-length sequence: skipped whole.
		header(0x00082112, "SQ", 18).header(Item, "", 10).str(Modality, "CS", "XX").
		str(PatientID, "LO", " ID 7  ").
		str(PatientName, "PN", "Doe^Jane ").
		elem(Rows, "US", []byte{0x00, 0x02}).
		elem(0x00280030, "DS", []byte("0.5\\0.5 ")).
		str(InstanceNumber, "IS", " 12 ").
		elem(0x00189219, "SS", []byte{0xFE, 0xFF}).
		elem(Columns, "UN", []byte{0x00, 0x01}). // UN of a known tag: decoded by the dictionary's VR
		// Undefined-length UN: contents are implicit VR LE.
		header(0x00291010, "UN", undefinedLength).
		header(Item, "", undefinedLength)
	nested.b.Write(ile().str(0x00291020, "", "ABCD").header(0x00291030, "", undefinedLength).
		header(Item, "", 0).header(SequenceDelimitationItem, "", 0).bytes())
	nested.header(ItemDelimitationItem, "", 0).header(SequenceDelimitationItem, "", 0).
		// Encapsulated pixel data: empty offset table, two fragments.
		header(PixelData, "OB", undefinedLength).
		header(Item, "", 0).
		header(Item, "", 4).raw([]byte{1, 2, 3, 4}).
		header(Item, "", 2).raw([]byte{5, 6}).
		header(SequenceDelimitationItem, "", 0)
	data := nested.bytes()

	big := be().str(SOPClassUID, "UI", "1.2.3\x00").
		elem(Rows, "US", []byte{0x02, 0x00}).
		elem(Columns, "US", []byte{0x01, 0x00, 0x00, 0x02}).
		elem(0x00280107, "UL", []byte{0, 0, 1, 0}).
		header(0x00081115, "SQ", undefinedLength).header(Item, "", undefinedLength).
		str(PatientID, "LO", "IN").header(ItemDelimitationItem, "", 0).header(SequenceDelimitationItem, "", 0).
		str(PatientID, "LO", "TOP ").bytes()

	implicit := ile().str(SOPClassUID, "", "1.2.3\x00").elem(Rows, "", []byte{0x00, 0x01}).
		str(NumberOfFrames, "", "3 ").str(0x00091001, "", "PRIV").
		header(0x00081115, "", undefinedLength).header(Item, "", undefinedLength).
		str(PatientID, "", "IN").header(ItemDelimitationItem, "", 0).header(SequenceDelimitationItem, "", 0).
		str(PatientID, "", "TOP ").bytes()

	tests := []struct {
		name string
		ts   string
		data []byte
		want attrs
	}{
		{"explicit LE", ExplicitVRLittleEndian, data, attrs{
			SOPClassUID:    {VR: "UI", Str: "1.2.3"},
			PatientID:      {VR: "LO", Str: "ID 7"},
			PatientName:    {VR: "PN", Str: "Doe^Jane"},
			Rows:           {VR: "US", Str: "512", Int: 512, HasInt: true},
			Columns:        {VR: "US", Str: "256", Int: 256, HasInt: true},
			InstanceNumber: {VR: "IS", Str: "12", Int: 12, HasInt: true},
			0x00189219:     {VR: "SS", Str: "-2", Int: -2, HasInt: true},
			0x00280030:     {VR: "DS", Str: `0.5\0.5`},
		}},
		{"explicit BE", ExplicitVRBigEndian, big, attrs{
			SOPClassUID: {VR: "UI", Str: "1.2.3"},
			Rows:        {VR: "US", Str: "512", Int: 512, HasInt: true},
			Columns:     {VR: "US", Str: `256\2`, Int: 256, HasInt: true},
			0x00280107:  {VR: "UL", Str: "256", Int: 256, HasInt: true},
			PatientID:   {VR: "LO", Str: "TOP"},
		}},
		{"implicit LE", ImplicitVRLittleEndian, implicit, attrs{
			SOPClassUID:    {VR: "UI", Str: "1.2.3"},
			Rows:           {VR: "US", Str: "256", Int: 256, HasInt: true},
			NumberOfFrames: {VR: "IS", Str: "3", Int: 3, HasInt: true},
			0x00091001:     {VR: "UN", Str: "PRIV"},
			PatientID:      {VR: "LO", Str: "TOP"},
		}},
		{"deflated", DeflatedExplicitVRLittleEndian, deflate(t, data), attrs{
			SOPClassUID:    {VR: "UI", Str: "1.2.3"},
			PatientID:      {VR: "LO", Str: "ID 7"},
			PatientName:    {VR: "PN", Str: "Doe^Jane"},
			Rows:           {VR: "US", Str: "512", Int: 512, HasInt: true},
			Columns:        {VR: "US", Str: "256", Int: 256, HasInt: true},
			InstanceNumber: {VR: "IS", Str: "12", Int: 12, HasInt: true},
			0x00189219:     {VR: "SS", Str: "-2", Int: -2, HasInt: true},
			0x00280030:     {VR: "DS", Str: `0.5\0.5`},
		}},
		{"empty", ExplicitVRLittleEndian, nil, attrs{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := NewTagSet(SOPClassUID, PatientID, PatientName, Rows, Columns, InstanceNumber, NumberOfFrames,
				0x00189219, 0x00280030, 0x00280107, 0x00091001, Modality)
			cr := &countingReader{r: bytes.NewReader(tt.data)}
			got, err := scan(cr, tt.ts, want)
			if err != nil {
				t.Fatal(err)
			}
			if cr.n != int64(len(tt.data)) {
				t.Errorf("read %d of %d bytes", cr.n, len(tt.data))
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d attributes %v, want %d %v", len(got), got, len(tt.want), tt.want)
			}
			for tag, w := range tt.want {
				if got[tag] != w {
					t.Errorf("%s = %+v, want %+v", tag, got[tag], w)
				}
			}
		})
	}
}

func deflate(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	b.WriteByte(0) // a pad byte after the deflate stream must be read too
	return b.Bytes()
}

func TestReadMalformed(t *testing.T) {
	deep := le()
	for range DefaultLimits().MaxDepth + 5 {
		deep.header(0x00081115, "SQ", undefinedLength).header(Item, "", undefinedLength)
	}
	tests := []struct {
		name string
		ts   string
		data []byte
	}{
		{"half a header", ExplicitVRLittleEndian, []byte{8, 0, 0x16, 0}},
		{"bad VR", ExplicitVRLittleEndian, []byte{8, 0, 0x16, 0, 'u', 'i', 2, 0, '1', 0}},
		{"value past end", ExplicitVRLittleEndian, le().header(PatientID, "LO", 10).bytes()},
		{"huge wanted length", ExplicitVRLittleEndian, le().header(PatientID, "UT", 0xFFFFFFF0).bytes()},
		{"huge skipped length", ImplicitVRLittleEndian, ile().header(0x00291010, "", 0xFFFFFFF0).bytes()},
		{"undefined length on LO", ExplicitVRLittleEndian, le().header(0x00081030, "UC", undefinedLength).bytes()},
		{"sequence without delimiter", ExplicitVRLittleEndian, le().header(0x00081115, "SQ", undefinedLength).header(Item, "", 0).bytes()},
		{"junk in sequence", ExplicitVRLittleEndian, le().header(0x00081115, "SQ", undefinedLength).str(PatientID, "LO", "XX").bytes()},
		{"item at top level", ExplicitVRLittleEndian, le().header(Item, "", 0).bytes()},
		{"delimiter inside item", ExplicitVRLittleEndian, le().header(0x00081115, "SQ", undefinedLength).header(Item, "", undefinedLength).header(SequenceDelimitationItem, "", 0).bytes()},
		{"too deep", ExplicitVRLittleEndian, deep.bytes()},
		{"not deflate", DeflatedExplicitVRLittleEndian, []byte{0xff, 0xff, 0xff, 0xff, 0xff}},
		{"deflate truncated", DeflatedExplicitVRLittleEndian, deflate(t, le().str(PatientID, "LO", "ABCDEFGH").bytes())[:6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scan(bytes.NewReader(tt.data), tt.ts, NewTagSet(PatientID, 0x00081030))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
			if _, ok := got[PatientID]; ok {
				t.Errorf("PatientID reported from a malformed element")
			}
		})
	}
	if _, err := scan(bytes.NewReader(nil), "", nil); err == nil {
		t.Error("an empty transfer syntax was accepted")
	}
}

// TestReadSkipsLongValues: a wanted value over the skip threshold is skipped, not
// read into memory, and the stream still read to its end.
func TestReadSkipsLongValues(t *testing.T) {
	long := bytes.Repeat([]byte("A"), indexValueLimit+2)
	data := le().elem(StudyDescription, "UT", long).str(PatientID, "LO", "ID").bytes()
	cr := &countingReader{r: bytes.NewReader(data)}
	got, err := scan(cr, ExplicitVRLittleEndian, NewTagSet(StudyDescription, PatientID))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[StudyDescription]; ok {
		t.Error("long value returned")
	}
	if got.String(PatientID) != "ID" || cr.n != int64(len(data)) {
		t.Errorf("got %v after reading %d of %d bytes", got, cr.n, len(data))
	}
	// The reader's own buffer is 32 KiB; a copy of the 64 KiB value would
	// show in the bytes allocated per call.
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for range 20 {
		scan(bytes.NewReader(data), ExplicitVRLittleEndian, NewTagSet(StudyDescription))
	}
	runtime.ReadMemStats(&ms1)
	if per := (ms1.TotalAlloc - ms0.TotalAlloc) / 20; per > indexValueLimit {
		t.Errorf("read allocated %d bytes per call skipping a %d-byte value", per, len(long))
	}
}

// BenchmarkIndexRead reads shared files for the store's attributes: throughput is
// what Put adds on top of writing the bytes.
func BenchmarkIndexRead(b *testing.B) {
	for _, name := range []string{"CT/cornerstone_CT_evrle.dcm", "CT/cornerstone_CT_deflate.dcm", "SEG/tcga_gbm_TCGA-08-0360_seg_96fr.dcm"} {
		data, ts := dataSetOf(b, testutil.SharedData(b, "dicom", name))
		b.Run(filepath.Base(name), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			want := NewTagSet(scanTags...)
			for b.Loop() {
				if _, err := scan(bytes.NewReader(data), ts, want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadHead: the same attributes as a full read, without reading the pixel data after them.
func TestReadHead(t *testing.T) {
	for _, rel := range [][]string{{"CT", "cornerstone_CT_evrle.dcm"}, {"CT", "cornerstone_CT_deflate.dcm"}, {"MR", "pydicom_MR_small_evrbe.dcm"}, {"US", "wg04_US1_RLE.dcm"}} {
		path := testutil.SharedData(t, append([]string{"dicom"}, rel...)...)
		want := NewTagSet(SOPClassUID, SOPInstanceUID, Modality)
		read := func(f func(io.Reader, string, TagSet) (attrs, error)) (attrs, int) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(b)
			br := bufio.NewReader(r)
			m, err := ReadFileMeta(br)
			if err != nil {
				t.Fatal(err)
			}
			a, err := f(br, m.TransferSyntaxUID, want)
			if err != nil {
				t.Fatalf("%s: %v", rel[1], err)
			}
			return a, r.Len() + br.Buffered()
		}
		full, _ := read(scan)
		head, left := read(scanHead)
		for tag := range want {
			if full.String(tag) == "" || head.String(tag) != full.String(tag) {
				t.Errorf("%s %s: head %q, full %q", rel[1], tag, head.String(tag), full.String(tag))
			}
		}
		if left == 0 {
			t.Errorf("%s: the head read the whole data set", rel[1])
		}
	}
}
