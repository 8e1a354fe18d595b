package dcm

import (
	"bytes"
	"strings"
	"testing"
)

// equalDataSets is used by tests: same tags, VRs and padded values.
func equalDataSets(a, b []Element) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Tag != b[i].Tag || a[i].VR != b[i].VR || a[i].Str() != b[i].Str() || len(a[i].Items) != len(b[i].Items) {
			return false
		}
		if !bytes.Equal(bytes.TrimRight(a[i].Value, " \x00"), bytes.TrimRight(b[i].Value, " \x00")) {
			return false
		}
		for j := range a[i].Items {
			if !equalDataSets(a[i].Items[j], b[i].Items[j]) {
				return false
			}
		}
	}
	return true
}

func sampleIdentifier() []Element {
	return []Element{
		StrElement(QueryRetrieveLevel, "STUDY"),
		StrElement(PatientName, "DOE^J*"),
		StrElement(PatientID, ""),
		StrElement(StudyDate, "20200101-20201231"),
		StrElement(StudyInstanceUID, "1.2.3", "1.2.4"),
		StrElement(ModalitiesInStudy, "CT", "MR"),
		{Tag: ReferencedStudySequence, VR: "SQ", Items: [][]Element{{StrElement(SOPClassUID, "1.2.840.10008.3.1.2.3.1"), StrElement(SOPInstanceUID, "1.2.5")}}},
		{Tag: Rows, VR: "US", Value: []byte{0, 2}},
	}
}

func TestDataSetRoundTrip(t *testing.T) {
	for _, ts := range []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian} {
		in := sampleIdentifier()
		b := AppendDataSet(nil, in, ts)
		if len(b)%2 != 0 {
			t.Errorf("%s: odd length %d", ts, len(b))
		}
		out, err := ParseDataSet(b, ts)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		sorted := AppendDataSet(nil, out, ts)
		if !bytes.Equal(sorted, b) {
			t.Errorf("%s: re-encoding differs", ts)
		}
		if got, _ := Find(out, StudyInstanceUID); got.Str() != "1.2.3\\1.2.4" {
			t.Errorf("%s: StudyInstanceUID %q", ts, got.Str())
		}
		sq, _ := Find(out, ReferencedStudySequence)
		if len(sq.Items) != 1 || len(sq.Items[0]) != 2 {
			t.Errorf("%s: sequence %+v", ts, sq)
		}
		if ts == ExplicitVRLittleEndian {
			if !equalDataSets(out, mustSorted(in)) {
				t.Errorf("explicit round trip changed elements")
			}
		}
	}
}

func mustSorted(in []Element) []Element {
	out, _ := ParseDataSet(AppendDataSet(nil, in, ExplicitVRLittleEndian), ExplicitVRLittleEndian)
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
	out, err := ParseDataSet(b, ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || len(out[0].Items) != 1 || out[0].Items[0][0].Str() != "1.2" || out[1].Tag != PatientName {
		t.Fatalf("parsed %+v", out)
	}
}

func TestParseDataSetErrors(t *testing.T) {
	good := AppendDataSet(nil, sampleIdentifier(), ExplicitVRLittleEndian)
	tests := []struct {
		name string
		in   []byte
		ts   string
		want string
	}{
		{"truncated", good[:len(good)-3], ExplicitVRLittleEndian, "truncated"},
		{"bad VR", []byte{0x10, 0, 0x10, 0, 'p', 'n', 0, 0}, ExplicitVRLittleEndian, "invalid VR"},
		{"big endian", good, "1.2.840.10008.1.2.2", "not supported"},
		{"huge value", []byte{0x10, 0, 0x10, 0, 'O', 'B', 0, 0, 0xF0, 0xFF, 0xFF, 0x7F}, ExplicitVRLittleEndian, "truncated"},
		{"open sequence", []byte{0x08, 0x00, 0x10, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, ExplicitVRLittleEndian, "delimiter"},
	}
	for _, tt := range tests {
		_, err := ParseDataSet(tt.in, tt.ts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func FuzzParseDataSet(f *testing.F) {
	f.Add(AppendDataSet(nil, sampleIdentifier(), ExplicitVRLittleEndian), true)
	f.Add(AppendDataSet(nil, sampleIdentifier(), ImplicitVRLittleEndian), false)
	f.Fuzz(func(t *testing.T, b []byte, explicit bool) {
		ts := ImplicitVRLittleEndian
		if explicit {
			ts = ExplicitVRLittleEndian
		}
		elems, err := ParseDataSet(b, ts)
		if err != nil {
			return
		}
		again, err := ParseDataSet(AppendDataSet(nil, elems, ts), ts)
		if err != nil {
			t.Fatalf("re-encoded data set does not parse: %v", err)
		}
		if len(again) != len(elems) {
			t.Fatalf("%d elements after a round trip, had %d", len(again), len(elems))
		}
	})
}
