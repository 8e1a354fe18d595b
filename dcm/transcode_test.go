package dcm

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// normalizedDump is dcmdump's view of a file without what the length encoding changes: file meta,
// group lengths, delimiters and the sequence/item length notes.
func normalizedDump(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(testutil.Tool(t, "dcmdump", "dcmtk"), "-q", "-M", "+L", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", path, err, out)
	}
	lengthNote := regexp.MustCompile(`\((Sequence|Item) with (explicit|undefined) length #=\d+\)`)
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "(") || strings.HasPrefix(trimmed, "(0002,") ||
			strings.Contains(trimmed, ",0000)") || strings.HasPrefix(trimmed, "(fffe,e00d)") || strings.HasPrefix(trimmed, "(fffe,e0dd)") {
			continue
		}
		line = lengthNote.ReplaceAllString(line, "($1)")
		if i := strings.LastIndex(line, "#"); i > 0 {
			line = strings.TrimRight(line[:i], " ")
		}
		// Implicit VR hides what only explicit VR says: private VRs (dcmdump shows them as hex)
		// and OB versus OW. Compare the tag and value, and skip private elements' values.
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			indent := line[:strings.Index(line, "(")]
			tag := fields[0]
			value := strings.Join(fields[2:], " ")
			if group := tag[1:5]; group[3]%2 == 1 {
				value = "(private)"
			}
			line = indent + tag + " " + value
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

func TestExplicitToImplicit(t *testing.T) {
	files := []string{
		testutil.SharedData(t, "dicom", "CT", "cornerstone_CT_evrle.dcm"),
		testutil.SharedData(t, "dicom", "MR", "fodicom_EnhancedMR_MOVEKNEE_19fr.dcm"),
		testutil.SharedData(t, "dicom", "SEG", "dcmqi_liver", "liver_seg.dcm"),
		testutil.SharedData(t, "dicom", "SEG", "tcga_gbm_TCGA-08-0360_seg_96fr.dcm"),
		testutil.SharedData(t, "dicom", "US", "wg04_US1_UNC.dcm"),
	}
	for _, src := range files {
		t.Run(filepath.Base(src), func(t *testing.T) {
			f, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			br := bufio.NewReader(f)
			m, err := ReadFileMeta(br)
			if err != nil || m.TransferSyntaxUID != ExplicitVRLittleEndian {
				t.Fatalf("%s: meta %+v %v", src, m, err)
			}
			var out bytes.Buffer
			m.TransferSyntaxUID, m.SourceApplicationEntityTitle = ImplicitVRLittleEndian, ""
			if err := WriteFileMeta(&out, m); err != nil {
				t.Fatal(err)
			}
			if err := ExplicitToImplicit(&out, br); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "implicit.dcm")
			if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, want := normalizedDump(t, dst), normalizedDump(t, src); got != want {
				gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
				for i := 0; i < len(gl) && i < len(wl); i++ {
					if gl[i] != wl[i] {
						t.Fatalf("line %d differs:\n got %s\nwant %s", i, gl[i], wl[i])
					}
				}
				t.Fatalf("%d lines, want %d", len(gl), len(wl))
			}
		})
	}
}

func TestExplicitToImplicitErrors(t *testing.T) {
	tests := map[string][]byte{
		"truncated value":     {0x10, 0, 0x10, 0, 'P', 'N', 8, 0, 'A'},
		"implicit input":      {0x10, 0, 0x10, 0, 4, 0, 0, 0, 'A', 'B', 'C', 'D'},
		"open sequence":       {0x08, 0, 0x15, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF},
		"stray delimiter":     {0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0},
		"undefined OB value":  {0xE0, 0x7F, 0x10, 0, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF},
		"huge defined length": {0x08, 0, 0x15, 0x11, 'S', 'Q', 0, 0, 0xF0, 0xFF, 0xFF, 0x7F},
	}
	for name, in := range tests {
		if err := ExplicitToImplicit(&bytes.Buffer{}, bytes.NewReader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzExplicitToImplicit: any input converts or fails cleanly, output is never longer than input,
// and an input whose VRs agree with the dictionary converts to an implicit data set with the same
// top-level elements (implicit VR cannot carry a VR the dictionary contradicts).
func FuzzExplicitToImplicit(f *testing.F) {
	f.Add(encode(f, sampleIdentifier(), ExplicitVRLittleEndian))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		if err := ExplicitToImplicit(&out, bytes.NewReader(b)); err != nil {
			return
		}
		if out.Len() > len(b) {
			t.Fatalf("converted %d bytes into %d", len(b), out.Len())
		}
		in, err := Parse(b, ExplicitVRLittleEndian)
		if err != nil || !dictionaryConsistent(in) {
			return
		}
		got, err := Parse(out.Bytes(), ImplicitVRLittleEndian)
		if err != nil {
			t.Fatalf("converted data set does not parse: %v", err)
		}
		if want := countNonGroupLength(in); len(got.Elements) != want {
			t.Fatalf("%d top-level elements after conversion, want %d", len(got.Elements), want)
		}
	})
}

func dictionaryConsistent(ds *DataSet) bool {
	for _, e := range ds.Elements {
		if e.Tag.Element() == 0 || e.Tag.Group()%2 == 1 {
			return false
		}
		if vr := VROf(e.Tag); vr != e.VR && !(vr == "UN" && e.VR != "SQ") {
			return false
		}
		for _, item := range e.Items {
			if !dictionaryConsistent(item) {
				return false
			}
		}
	}
	return true
}

func countNonGroupLength(ds *DataSet) int {
	n := 0
	for _, e := range ds.Elements {
		if e.Tag.Element() != 0 {
			n++
		}
	}
	return n
}
