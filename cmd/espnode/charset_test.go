package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
)

// Patients of the character set tests: the same name in Latin-1 and in UTF-8, and PS3.5 H.3.1's
// Japanese name in ISO 2022 IR 87, as the files carry them and in UTF-8.
var charsetPatients = []struct {
	study, charset, raw, utf8 string
}{
	{"1.2.826.0.1.3680043.10.1.17.1", "ISO_IR 100", "M\xfcller^J\xfcrgen", "Müller^Jürgen"},
	{"1.2.826.0.1.3680043.10.1.17.2", "ISO_IR 192", "Müller^Jürgen", "Müller^Jürgen"},
	{"1.2.826.0.1.3680043.10.1.17.3", `\ISO 2022 IR 87`, "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
		"Yamada^Tarou=山田^太郎=やまだ^たろう"},
}

// writeCharsetInstances writes one small Secondary Capture instance per patient of
// charsetPatients, in its character set, and returns the folder.
func writeCharsetInstances(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, p := range charsetPatients {
		uid := p.study + ".1.1"
		ds := dcm.NewDataSet(
			dcm.Element{Tag: dcm.SpecificCharacterSet, VR: "CS", Value: []byte(p.charset)},
			dcm.StrElement(dcm.SOPClassUID, "1.2.840.10008.5.1.4.1.1.7"),
			dcm.StrElement(dcm.SOPInstanceUID, uid),
			dcm.StrElement(dcm.StudyDate, "20260101"),
			dcm.StrElement(dcm.Modality, "OT"),
			dcm.Element{Tag: dcm.PatientName, VR: "PN", Value: []byte(p.raw)},
			dcm.StrElement(dcm.PatientID, "CHARSET"+string(rune('1'+i))),
			dcm.StrElement(dcm.StudyInstanceUID, p.study),
			dcm.StrElement(dcm.SeriesInstanceUID, p.study+".1"),
		)
		body, err := dcm.Encode(ds, dcm.ExplicitVRLittleEndian)
		if err != nil {
			t.Fatal(err)
		}
		var f bytes.Buffer
		if err := dcm.WriteFileMeta(&f, dcm.FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: uid,
			TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.826.0.1.3680043.10.1"}); err != nil {
			t.Fatal(err)
		}
		f.Write(body)
		if err := os.WriteFile(filepath.Join(dir, uid+".dcm"), f.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestFindCharacterSetsWithPeers: names stored in ISO_IR 100, ISO_IR 192 and ISO 2022 IR 87 are
// matched across character sets and answered in one that holds them, with (0008,0005) in every
// response, through DCMTK's findscu, Orthanc as a Q/R client and espnode find.
func TestFindCharacterSetsWithPeers(t *testing.T) {
	orthancDICOM := freePort(t)
	n := startNode(t, func(c *config.Config) {
		c.Peers = []config.Peer{{AETitle: "ORTHANC", Host: "127.0.0.1", Port: orthancDICOM}}
	})
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"store", "--called-ae", "ESPNODE", n.addr, writeCharsetInstances(t)}); code != 0 {
		t.Fatalf("load: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	latin1, utf8Name, jis := charsetPatients[0], charsetPatients[1], charsetPatients[2]

	t.Run("findscu", func(t *testing.T) {
		for _, tt := range []struct {
			name        string
			args        []string
			wantStudies int
			wantCharset string
			wantName    string // as the response carries it
		}{
			{"Latin-1 request matches the Latin-1 and the UTF-8 name", []string{"-k", "SpecificCharacterSet=ISO_IR 100", "-k", "PatientName=M\xfcller*"},
				2, "ISO_IR 100", latin1.raw},
			{"UTF-8 request matches both", []string{"-k", "SpecificCharacterSet=ISO_IR 192", "-k", "PatientName=Müller*"}, 2, "ISO_IR 192", utf8Name.raw},
			{"no character set: UTF-8 answer", []string{"-k", "PatientName=M*"}, 2, "ISO_IR 192", utf8Name.raw},
			{"Japanese request (Annex H)", []string{"-k", `SpecificCharacterSet=\ISO 2022 IR 87`, "-k", "PatientName=Yamada^Tarou=\x1b$B;3ED\x1b(B*"}, 1, `\ISO 2022 IR 87`, jis.raw},
			{"Japanese name, Latin-1 request: UTF-8 answer", []string{"-k", "SpecificCharacterSet=ISO_IR 100", "-k", "PatientName=Yamada*"}, 1, "ISO_IR 192", jis.utf8},
		} {
			t.Run(tt.name, func(t *testing.T) {
				rsps, out := findscu(t, n.port, append([]string{"-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID"}, tt.args...)...)
				if len(rsps) != tt.wantStudies {
					t.Fatalf("%d responses, want %d\n%s", len(rsps), tt.wantStudies, out)
				}
				for _, r := range rsps {
					if got := strings.Join(r.Strings(dcm.SpecificCharacterSet), `\`); got != tt.wantCharset {
						t.Errorf("(0008,0005) %q, want %q", got, tt.wantCharset)
					}
					if got := r.String(dcm.PatientName); got != tt.wantName {
						t.Errorf("PatientName %q, want %q", got, tt.wantName)
					}
				}
			})
		}
		// SERIES level, (0008,0005) listed as a key: filled.
		rsps, out := findscu(t, n.port, "-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID="+jis.study, "-k", "SeriesInstanceUID",
			"-k", "SpecificCharacterSet", "-k", "PatientName")
		if len(rsps) != 1 || rsps[0].String(dcm.SpecificCharacterSet) != "ISO_IR 192" || rsps[0].String(dcm.PatientName) != jis.utf8 {
			t.Fatalf("series-level responses %v\n%s", rsps, out)
		}
	})

	t.Run("espnode find", func(t *testing.T) {
		stdout.Reset()
		if code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"find", "--called-ae", "ESPNODE", "--json",
			"-k", "PatientName=Müller*", "-k", "StudyInstanceUID", n.addr}); code != 0 {
			t.Fatalf("find: exit %d\n%s", code, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("find printed %d matches, want 2:\n%s", len(lines), stdout.String())
		}
		for _, l := range lines {
			var m map[string]string
			if err := json.Unmarshal([]byte(l), &m); err != nil || m["PatientName"] != "Müller^Jürgen" {
				t.Errorf("match %s (%v), want PatientName Müller^Jürgen", l, err)
			}
		}
		stdout.Reset()
		if code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"find", "--called-ae", "ESPNODE", "--json",
			"-k", "PatientName=*=山田*", "-k", "StudyInstanceUID", n.addr}); code != 0 {
			t.Fatalf("find: exit %d\n%s", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), jis.utf8) || strings.Count(stdout.String(), "\n") != 1 {
			t.Errorf("Japanese match:\n%s\nwant one, named %s", stdout.String(), jis.utf8)
		}
	})

	t.Run("Orthanc", func(t *testing.T) {
		o := startOrthanc(t, orthancDICOM, n.port)
		// Orthanc asks in its default encoding (Latin-1 as installed) and shows answers in it, so
		// it can show the Japanese name only in UTF-8: the last round sets that.
		for _, p := range charsetPatients {
			if p.charset == jis.charset {
				o.call("PUT", "/tools/default-encoding", "Utf8", nil)
			}
			var q struct{ ID string }
			o.call("POST", "/modalities/espnode/query", map[string]any{"Level": "Study", "Query": map[string]string{"StudyInstanceUID": p.study, "PatientName": ""}}, &q)
			var answers []string
			o.call("GET", "/queries/"+q.ID+"/answers", nil, &answers)
			if len(answers) != 1 {
				t.Fatalf("study %s: %d answers, want 1", p.study, len(answers))
			}
			var content map[string]any
			o.call("GET", "/queries/"+q.ID+"/answers/0/content?simplify", nil, &content)
			if content["PatientName"] != p.utf8 {
				t.Errorf("Orthanc shows %q for %s, want %q (answer %v)", content["PatientName"], p.charset, p.utf8, content)
			}
		}
	})
}
