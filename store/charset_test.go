package store_test

import (
	"bytes"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// TestIndexHoldsUTF8: the index values of the text keys are decoded from the instance's
// Specific Character Set, so names sent in ISO_IR 100, ISO_IR 192 and ISO 2022 IR 87 (PS3.5
// H.3.1) are indexed in one form; the character set itself is kept as declared.
func TestIndexHoldsUTF8(t *testing.T) {
	for _, tt := range []struct {
		charset, name, description string
		wantName, wantDescription  string
	}{
		{`ISO_IR 100`, "M\xfcller^J\xfcrgen", "Sch\xe4del", "Müller^Jürgen", "Schädel"},
		{`ISO_IR 192`, "Müller^Jürgen", "Schädel", "Müller^Jürgen", "Schädel"},
		{`\ISO 2022 IR 87`, "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B", "CT",
			"Yamada^Tarou=山田^太郎=やまだ^たろう", "CT"},
		{``, "Doe^John", "Head", "Doe^John", "Head"},
	} {
		t.Run(tt.charset, func(t *testing.T) {
			elems := []dcm.Element{
				{Tag: dcm.PatientName, VR: "PN", Value: []byte(tt.name)},
				{Tag: dcm.StudyDescription, VR: "LO", Value: []byte(tt.description)},
				dcm.StrElement(dcm.SOPInstanceUID, "1.2.3.4"),
			}
			if tt.charset != "" {
				elems = append(elems, dcm.Element{Tag: dcm.SpecificCharacterSet, VR: "CS", Value: []byte(tt.charset)})
			}
			b, err := dcm.Encode(dcm.NewDataSet(elems...), dcm.ExplicitVRLittleEndian)
			if err != nil {
				t.Fatal(err)
			}
			in, err := store.Describe(bytes.NewReader(b), dcm.ExplicitVRLittleEndian)
			if err != nil {
				t.Fatal(err)
			}
			if in.PatientName != tt.wantName || in.StudyDescription != tt.wantDescription || in.SpecificCharacterSet != tt.charset {
				t.Errorf("indexed %q %q %q, want %q %q %q", in.PatientName, in.StudyDescription, in.SpecificCharacterSet,
					tt.wantName, tt.wantDescription, tt.charset)
			}
		})
	}
}
