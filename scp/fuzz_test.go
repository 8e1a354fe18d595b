package scp

import (
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// FuzzFindIdentifier reads any bytes as a C-FIND identifier in explicit VR little endian, as
// find does, and answers it from a record holding names in Latin-1, Japanese and ASCII: a
// response always carries one Specific Character Set, and every name in it decodes in that
// character set to the record's UTF-8. Seeds (identifiers in ISO_IR 100, ISO_IR 192, ISO 2022
// IR 87, unknown terms, wildcards inside two-byte codes) live in testdata/fuzz/FuzzFindIdentifier.
func FuzzFindIdentifier(f *testing.F) {
	s := &Services{opts: Options{AETitle: "ESPNODE"}}
	rec := store.Record{}
	rec.PatientName, rec.ReferringPhysicianName, rec.StudyDescription = utf8Yamada, "Müller^Jürgen", "CT"
	rec.StudyInstanceUID, rec.PatientID = "1.2.3", "P1"
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := dcm.Parse(data, dcm.ExplicitVRLittleEndian)
		if err != nil {
			return
		}
		sel, _, ok := parseSelection(ds, StudyRootFind)
		if !ok {
			return
		}
		rsp := dcm.NewDataSet(s.response(sel, rec)...)
		n := 0
		for _, e := range rsp.Elements {
			if e.Tag == dcm.SpecificCharacterSet {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d Specific Character Set elements in the response", n)
		}
		cs := rsp.Strings(dcm.SpecificCharacterSet)
		for _, tag := range []dcm.Tag{dcm.PatientName, dcm.ReferringPhysicianName} {
			e := rsp.Find(tag)
			if e == nil || !charsetVR(e.VR) {
				continue
			}
			want := rec.Value(tag, sel.level)
			if got, _ := dcm.DecodeText([]byte(e.Text()), cs); got != want {
				t.Fatalf("%s in %q: %q decodes to %q, want %q", tag, cs, e.Value, got, want)
			}
		}
	})
}
