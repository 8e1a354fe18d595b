// Package dcmtest makes test fixtures out of real DICOM files: variants the shared files lack,
// written with dcm's one writer.
package dcmtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/espnode/espnode/dcm"
)

// TruncatedCodestream writes a copy of src, a file with encapsulated pixel data, whose first
// frame's codestream is cut to half its length (one fragment), into a temporary folder, and
// returns its path: a structurally valid instance whose pixels no decoder can read, which the
// node stores and answers Success for but cannot segment or decompress.
func TruncatedCodestream(t testing.TB, src string) string {
	t.Helper()
	f := read(t, src)
	pd := f.DataSet.Find(dcm.PixelData)
	if pd == nil || len(pd.Fragments) < 2 {
		t.Fatalf("%s has no encapsulated pixel data", src)
	}
	frag := pd.Fragments[1]
	pd.Fragments = [][]byte{pd.Fragments[0], frag[:len(frag)/2&^1]}
	return write(t, f, "truncated_"+filepath.Base(src))
}

// Relabelled writes a copy of src, a file with encapsulated pixel data, that says it is in the
// encapsulated transfer syntax ts, and returns its path: with ts one this build has no decoder
// for (JPEG 2000 Part 2, 1.2.840.10008.1.2.4.92, say), an instance the node can store and send
// as it is but never decode, whatever codecs it gains.
func Relabelled(t testing.TB, src, ts string) string {
	t.Helper()
	f := read(t, src)
	if s, ok := dcm.LookupTransferSyntax(ts); !ok || !s.Encapsulated {
		t.Fatalf("%s is not an encapsulated transfer syntax", ts)
	}
	if pd := f.DataSet.Find(dcm.PixelData); pd == nil || pd.Fragments == nil {
		t.Fatalf("%s has no encapsulated pixel data", src)
	}
	f.Meta.TransferSyntaxUID = ts
	return write(t, f, "relabelled_"+filepath.Base(src))
}

func read(t testing.TB, src string) *dcm.File {
	t.Helper()
	f, err := dcm.ReadFile(src, dcm.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func write(t testing.TB, f *dcm.File, name string) string {
	t.Helper()
	var b bytes.Buffer
	meta := f.Meta
	meta.SourceApplicationEntityTitle = ""
	if err := dcm.WriteFileMeta(&b, meta); err != nil {
		t.Fatal(err)
	}
	w, err := dcm.NewWriter(&b, meta.TransferSyntaxUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDataSet(f.DataSet); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
