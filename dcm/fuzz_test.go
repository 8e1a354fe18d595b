package dcm

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"
	"testing/iotest"
)

// fuzzSyntaxes are the encodings FuzzReader exercises, picked by the second
// fuzz argument.
var fuzzSyntaxes = []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}

// FuzzReader reads any bytes as a data set in each encoding, as the store's ingest does and as a
// whole parse does: both must end in a data set or an ErrMalformed error, read all of the input
// on success, and agree whatever the sizes of the reads.
func FuzzReader(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzReader.
	f.Add(le().str(SOPClassUID, "UI", "1.2.3\x00").elem(Rows, "US", []byte{0, 2}).bytes(), uint8(1))
	f.Add(ile().str(SOPClassUID, "", "1.2.3\x00").header(0x00081115, "", undefinedLength).
		header(Item, "", undefinedLength).str(PatientID, "", "X ").header(ItemDelimitationItem, "", 0).
		header(SequenceDelimitationItem, "", 0).bytes(), uint8(0))
	f.Add(be().str(PatientID, "LO", "AB").elem(Rows, "US", []byte{2, 0}).bytes(), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		ts := fuzzSyntaxes[int(which)%len(fuzzSyntaxes)]
		want := NewTagSet(SOPClassUID, PatientID, Rows, InstanceNumber, 0x00091001)
		cr := &countingReader{r: bytes.NewReader(data)}
		got, err := scan(cr, ts, want)
		if err == nil && cr.n != int64(len(data)) {
			t.Fatalf("read succeeded after reading %d of %d bytes", cr.n, len(data))
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error from a bytes.Reader is not ErrMalformed: %v", err)
		}
		for tag := range got {
			if _, ok := want[tag]; !ok {
				t.Fatalf("unwanted tag %s returned", tag)
			}
		}
		// Reads of any size give the same answer.
		got1, err1 := scan(iotest.OneByteReader(bytes.NewReader(data)), ts, want)
		if (err == nil) != (err1 == nil) || !reflect.DeepEqual(got, got1) {
			t.Fatalf("one-byte reads differ: %v %v / %v %v", got, err, got1, err1)
		}
		// What a whole parse (the input's size known) takes, the streaming read takes too, with
		// the same attributes. (The streaming read may take more: it skips a defined-length
		// sequence it does not keep whole, without looking inside.)
		ds, errAll := ReadDataSet(bytes.NewReader(data), ts, ParseOptions{})
		if errAll == nil && err != nil {
			t.Fatalf("the whole parse succeeds, the streaming read says %v", err)
		}
		if errAll == nil {
			for tag, a := range got {
				if s := ds.String(tag); s != a.Str {
					t.Fatalf("%s: %q in the whole parse, %q streamed", tag, s, a.Str)
				}
			}
		}
	})
}

// FuzzReadFileMeta: any bytes give file meta, ErrNoFileMeta or ErrMalformed, and a reader left
// inside the input.
func FuzzReadFileMeta(f *testing.F) {
	var good bytes.Buffer
	if err := WriteFileMeta(&good, FileMeta{MediaStorageSOPClassUID: "1.2.3", MediaStorageSOPInstanceUID: "1.2.4",
		TransferSyntaxUID: ExplicitVRLittleEndian, ImplementationClassUID: "1.2.5", ImplementationVersionName: "X",
		SourceApplicationEntityTitle: "AE"}); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(append(bytes.Clone(good.Bytes()), 8, 0, 0x16, 0, 'U', 'I', 2, 0, '1', 0))
	f.Add([]byte("DICM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadFileMeta(bufio.NewReader(bytes.NewReader(data)))
		switch {
		case err == nil:
			if m.TransferSyntaxUID == "" {
				t.Fatal("file meta without a transfer syntax accepted")
			}
		case errors.Is(err, ErrNoFileMeta), errors.Is(err, ErrMalformed):
		default:
			t.Fatalf("error from a bytes.Reader is neither ErrNoFileMeta nor ErrMalformed: %v", err)
		}
	})
}

// FuzzParseFragments: any value splits into an offset table and fragments or fails cleanly,
// and what it gives encodes back to a value that splits the same way.
func FuzzParseFragments(f *testing.F) {
	item := func(b ...byte) []byte { return append([]byte{0xFE, 0xFF, 0x00, 0xE0, byte(len(b)), 0, 0, 0}, b...) }
	f.Add(bytes.Join([][]byte{item(0, 0, 0, 0, 10, 0, 0, 0), item(1, 2), item(0xFF, 0xD8), {0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}}, nil))
	f.Add(append(item(), item(0xFF, 0xD8, 0xFF, 0xD9)...))
	f.Fuzz(func(t *testing.T, value []byte) {
		offsets, frags, err := ParseFragments(value)
		if err != nil {
			return
		}
		var bot []byte
		for _, o := range offsets {
			bot = append(bot, byte(o), byte(o>>8), byte(o>>16), byte(o>>24))
		}
		e := Element{Tag: PixelData, VR: "OB", Fragments: append([][]byte{bot}, frags...)}
		b, err := Encode(NewDataSet(e), ExplicitVRLittleEndian)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		ds, err := Parse(b, ExplicitVRLittleEndian)
		if err != nil {
			t.Fatalf("re-encoded fragments do not parse: %v", err)
		}
		got := ds.Find(PixelData)
		if got == nil || len(got.Fragments) != len(frags)+1 {
			t.Fatalf("%d fragments after a round trip, had %d", len(got.Fragments)-1, len(frags))
		}
	})
}
