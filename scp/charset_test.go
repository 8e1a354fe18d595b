package scp

import (
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// PS3.5 H.3.1: the name of Example 1 in ISO 2022 IR 87, and in UTF-8 as the index holds it.
const (
	jisYamada  = "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
	utf8Yamada = "Yamada^Tarou=山田^太郎=やまだ^たろう"
)

// TestFindCharacterSets: a request's values are decoded from its character set for matching,
// and each response is in the request's character set when that holds its values, else in
// ISO_IR 192, with (0008,0005) in every response, in place when the request lists it.
func TestFindCharacterSets(t *testing.T) {
	s := &Services{opts: Options{AETitle: "ESPNODE"}}
	for _, tt := range []struct {
		name        string
		charset     string // of the request; "-": no (0008,0005) key
		queryName   string // PatientName in the request, in its character set
		wantMatch   string // the decoded match value or pattern
		recordName  string // UTF-8, as the index holds it
		wantCharset string
		wantName    string // in the response's character set
	}{
		{"Latin-1 request, Latin-1 name", "ISO_IR 100", "M\xfcller*", "Müller*", "Müller^Jürgen", "ISO_IR 100", "M\xfcller^J\xfcrgen"},
		{"UTF-8 request", "ISO_IR 192", "Müller*", "Müller*", "Müller^Jürgen", "ISO_IR 192", "Müller^Jürgen"},
		{"no character set, non-ASCII name: UTF-8", "-", "M*", "M*", "Müller^Jürgen", "ISO_IR 192", "Müller^Jürgen"},
		{"empty character set key, ASCII name", "", "Doe*", "Doe*", "Doe^John", "", "Doe^John"},
		{"Japanese request (Annex H)", `\ISO 2022 IR 87`, "Yamada^Tarou=\x1b$B;3ED\x1b(B*", "Yamada^Tarou=山田*", utf8Yamada, `\ISO 2022 IR 87`, jisYamada},
		{"Japanese name, Latin-1 request: UTF-8", "ISO_IR 100", "Yamada*", "Yamada*", utf8Yamada, "ISO_IR 192", utf8Yamada},
		{"Latin-1 name, Japanese request: UTF-8", `\ISO 2022 IR 87`, "M*", "M*", "Müller^Jürgen", "ISO_IR 192", "Müller^Jürgen"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			elems := []dcm.Element{
				dcm.StrElement(dcm.QueryRetrieveLevel, "STUDY"),
				{Tag: dcm.PatientName, VR: "PN", Value: []byte(tt.queryName)},
				{Tag: dcm.StudyDescription, VR: "LO"},
				dcm.StrElement(dcm.StudyInstanceUID, ""),
			}
			if tt.charset != "-" {
				elems = append(elems, dcm.Element{Tag: dcm.SpecificCharacterSet, VR: "CS", Value: []byte(tt.charset)})
			}
			sel, st, ok := parseSelection(dcm.NewDataSet(elems...), StudyRootFind)
			if !ok {
				t.Fatalf("parseSelection: %v", st)
			}
			if len(sel.query.Matches) != 1 || sel.query.Matches[0].Pattern != tt.wantMatch {
				t.Fatalf("matches %+v, want the pattern %q", sel.query.Matches, tt.wantMatch)
			}
			rec := store.Record{}
			rec.PatientName, rec.StudyDescription, rec.StudyInstanceUID = tt.recordName, "Schädel", "1.2.3"
			if tt.wantCharset != "ISO_IR 100" && tt.wantCharset != "ISO_IR 192" {
				rec.StudyDescription = "Head"
			}
			rsp := dcm.NewDataSet(s.response(sel, rec)...)
			cs := rsp.Find(dcm.SpecificCharacterSet)
			if cs == nil || string(cs.Value) != tt.wantCharset && strings.TrimSpace(string(cs.Value)) != tt.wantCharset {
				t.Fatalf("(0008,0005) %+v, want %q", cs, tt.wantCharset)
			}
			if got := rsp.String(dcm.PatientName); got != tt.wantName {
				t.Errorf("PatientName %q, want %q", got, tt.wantName)
			}
			if got := rsp.Unicode(dcm.StudyDescription); got != rec.StudyDescription {
				t.Errorf("StudyDescription decoded in the response's character set: %q, want %q", got, rec.StudyDescription)
			}
			if _, err := dcm.Encode(rsp, dcm.ExplicitVRLittleEndian); err != nil {
				t.Errorf("response does not encode: %v", err)
			}
		})
	}
}
