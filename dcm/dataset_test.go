package dcm

import (
	"bytes"
	"strings"
	"testing"
)

// equalDataSets is used by tests: same tags, VRs and padded values.
func equalDataSets(a, b *DataSet) bool {
	if len(a.Elements) != len(b.Elements) {
		return false
	}
	for i := range a.Elements {
		x, y := &a.Elements[i], &b.Elements[i]
		if x.Tag != y.Tag || x.VR != y.VR || x.Text() != y.Text() || len(x.Items) != len(y.Items) {
			return false
		}
		if !bytes.Equal(bytes.TrimRight(x.Value, " \x00"), bytes.TrimRight(y.Value, " \x00")) {
			return false
		}
		for j := range x.Items {
			if !equalDataSets(x.Items[j], y.Items[j]) {
				return false
			}
		}
	}
	return true
}

// encode is Encode for data the tests build right.
func encode(t testing.TB, ds *DataSet, ts string) []byte {
	t.Helper()
	b, err := Encode(ds, ts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleIdentifier() *DataSet {
	return NewDataSet(
		StrElement(QueryRetrieveLevel, "STUDY"),
		StrElement(PatientName, "DOE^J*"),
		StrElement(PatientID, ""),
		StrElement(StudyDate, "20200101-20201231"),
		StrElement(StudyInstanceUID, "1.2.3", "1.2.4"),
		StrElement(ModalitiesInStudy, "CT", "MR"),
		NewSequence(ReferencedStudySequence, NewDataSet(StrElement(SOPClassUID, "1.2.840.10008.3.1.2.3.1"), StrElement(SOPInstanceUID, "1.2.5"))),
		Element{Tag: Rows, VR: "US", Value: []byte{0, 2}},
	)
}

func TestDataSetRoundTrip(t *testing.T) {
	for _, ts := range []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian} {
		in := sampleIdentifier()
		b := encode(t, in, ts)
		if len(b)%2 != 0 {
			t.Errorf("%s: odd length %d", ts, len(b))
		}
		out, err := Parse(b, ts)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		sorted := encode(t, out, ts)
		if !bytes.Equal(sorted, b) {
			t.Errorf("%s: re-encoding differs", ts)
		}
		if got := out.String(StudyInstanceUID); got != "1.2.3\\1.2.4" {
			t.Errorf("%s: StudyInstanceUID %q", ts, got)
		}
		sq := out.Find(ReferencedStudySequence)
		if sq == nil || len(sq.Items) != 1 || len(sq.Items[0].Elements) != 2 {
			t.Errorf("%s: sequence %+v", ts, sq)
		}
		if ts == ExplicitVRLittleEndian {
			if !equalDataSets(out, mustSorted(t, in)) {
				t.Errorf("explicit round trip changed elements")
			}
		}
	}
}

func mustSorted(t *testing.T, in *DataSet) *DataSet {
	out, _ := Parse(encode(t, in, ExplicitVRLittleEndian), ExplicitVRLittleEndian)
	return out
}

func TestParseDataSetUndefinedLengths(t *testing.T) {
	// An undefined-length sequence with an undefined-length item, as DCMTK's findscu may send.
	var b []byte
	b = append(b, 0x08, 0x00, 0x10, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF)
	b = append(b, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF)
	b = append(b, 0x08, 0x00, 0x50, 0x11, 'U', 'I', 4, 0, '1', '.', '2', 0)
	b = append(b, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0)
	b = append(b, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
	b = append(b, 0x10, 0x00, 0x10, 0x00, 'P', 'N', 0, 0)
	out, err := Parse(b, ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	if e := out.Elements; len(e) != 2 || len(e[0].Items) != 1 || e[0].Items[0].Elements[0].Text() != "1.2" || e[1].Tag != PatientName {
		t.Fatalf("parsed %+v", out)
	}
}

func TestParseDataSetErrors(t *testing.T) {
	good := encode(t, sampleIdentifier(), ExplicitVRLittleEndian)
	tests := []struct {
		name string
		in   []byte
		ts   string
		want string
	}{
		{"truncated", good[:len(good)-3], ExplicitVRLittleEndian, "truncated"},
		{"bad VR", []byte{0x10, 0, 0x10, 0, 'p', 'n', 0, 0}, ExplicitVRLittleEndian, "invalid VR"},
		{"no transfer syntax", good, "", "no transfer syntax"},
		{"huge value", []byte{0x10, 0, 0x10, 0, 'O', 'B', 0, 0, 0xF0, 0xFF, 0xFF, 0x7F}, ExplicitVRLittleEndian, "truncated"},
		{"open sequence", []byte{0x08, 0x00, 0x10, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, ExplicitVRLittleEndian, "delimiter"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in, tt.ts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// FuzzParseDataSet: whatever parses encodes again (the writer takes all the reader gives) and
// parses back to as many elements.
func FuzzParseDataSet(f *testing.F) {
	f.Add(encode(f, sampleIdentifier(), ExplicitVRLittleEndian), true)
	f.Add(encode(f, sampleIdentifier(), ImplicitVRLittleEndian), false)
	f.Fuzz(func(t *testing.T, b []byte, explicit bool) {
		ts := ImplicitVRLittleEndian
		if explicit {
			ts = ExplicitVRLittleEndian
		}
		ds, err := Parse(b, ts)
		if err != nil {
			return
		}
		re, err := Encode(ds, ts)
		if err != nil {
			t.Fatalf("a parsed data set does not encode: %v", err)
		}
		again, err := Parse(re, ts)
		if err != nil {
			t.Fatalf("re-encoded data set does not parse: %v", err)
		}
		if len(again.Elements) != len(ds.Elements) {
			t.Fatalf("%d elements after a round trip, had %d", len(again.Elements), len(ds.Elements))
		}
	})
}
