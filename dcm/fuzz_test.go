package dcm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"testing/iotest"
)

// fuzzSyntaxes are the encodings FuzzScan exercises, picked by the second
// fuzz argument.
var fuzzSyntaxes = []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}

func FuzzScan(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzScan.
	f.Add(le().str(SOPClassUID, "UI", "1.2.3\x00").elem(Rows, "US", []byte{0, 2}).bytes(), uint8(1))
	f.Add(ile().str(SOPClassUID, "", "1.2.3\x00").header(0x00081115, "", undefinedLength).
		header(Item, "", undefinedLength).str(PatientID, "", "X ").header(ItemDelimitationItem, "", 0).
		header(SequenceDelimitationItem, "", 0).bytes(), uint8(0))
	f.Add(be().str(PatientID, "LO", "AB").elem(Rows, "US", []byte{2, 0}).bytes(), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		ts := fuzzSyntaxes[int(which)%len(fuzzSyntaxes)]
		want := NewTagSet(SOPClassUID, PatientID, Rows, InstanceNumber, 0x00091001)
		cr := &countingReader{r: bytes.NewReader(data)}
		got, err := Scan(cr, ts, want)
		if err == nil && cr.n != int64(len(data)) {
			t.Fatalf("Scan succeeded after reading %d of %d bytes", cr.n, len(data))
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
		got1, err1 := Scan(iotest.OneByteReader(bytes.NewReader(data)), ts, want)
		if (err == nil) != (err1 == nil) || !reflect.DeepEqual(got, got1) {
			t.Fatalf("one-byte reads differ: %v %v / %v %v", got, err, got1, err1)
		}
	})
}
