package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// fixture is a server over a fresh data directory; the store itself is the Storer (no jobs).
type fixture struct {
	t      *testing.T
	store  *store.Store
	server *Server
	http   *httptest.Server
	base   string
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	st, err := datadir.Open(context.Background(), datadir.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(opts, st, st)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &fixture{t: t, store: st, server: s, http: hs, base: hs.URL + DefaultRoot}
}

// shared is the path of a shared DICOM file.
func shared(t testing.TB, rel ...string) string {
	return testutil.SharedData(t, append([]string{"dicom"}, rel...)...)
}

// put stores a Part-10 file as a C-STORE would and returns its index row.
func (f *fixture) put(path string) store.Instance {
	f.t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.putBytes(raw)
}

func (f *fixture) putBytes(raw []byte) store.Instance {
	f.t.Helper()
	in, err := f.tryPut(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	return in
}

// tryPut stores a Part-10 file, returning the store's error.
func (f *fixture) tryPut(raw []byte) (store.Instance, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		return store.Instance{}, err
	}
	return f.store.Put(context.Background(), store.PutRequest{
		SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID, Data: br,
	})
}

// putEach stores each file in a data directory of its own (shared files in several syntaxes
// share their UIDs) and returns its fixture and index row.
func putEach(t *testing.T, opts Options, paths ...string) ([]*fixture, []store.Instance) {
	t.Helper()
	var fs []*fixture
	var ins []store.Instance
	for _, p := range paths {
		f := newFixture(t, opts)
		fs = append(fs, f)
		ins = append(ins, f.put(p))
	}
	return fs, ins
}

// get sends a GET with the Accept header (none when empty) and returns the response with its body.
func (f *fixture) get(path, accept string) (*http.Response, []byte) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.base+path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rsp, err := f.http.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return rsp, b
}

// getJSON GETs a JSON model response and decodes it, failing unless the status is 200.
func (f *fixture) getJSON(path string) []map[string]any {
	f.t.Helper()
	rsp, b := f.get(path, "application/dicom+json")
	if rsp.StatusCode != http.StatusOK {
		f.t.Fatalf("GET %s: %s\n%s", path, rsp.Status, b)
	}
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		f.t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
	return out
}

// part is one part of a multipart/related response.
type part struct {
	contentType string
	body        []byte
}

// parts splits a multipart/related response.
func parts(t *testing.T, rsp *http.Response, body []byte) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(rsp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		t.Fatalf("Content-Type %q: %v\n%.300s", rsp.Header.Get("Content-Type"), err, body)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var out []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, part{p.Header.Get("Content-Type"), b})
	}
	return out
}

// value is the first value of an attribute of a JSON model object.
func value(ds map[string]any, tag string) any {
	a, _ := ds[tag].(map[string]any)
	vs, _ := a["Value"].([]any)
	if len(vs) == 0 {
		return nil
	}
	return vs[0]
}

// readFile reads a shared file whole.
func readFile(t testing.TB, path string) *dcm.File {
	t.Helper()
	f, err := dcm.ReadFile(path, dcm.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// instancePath is the WADO-RS path of a stored instance.
func instancePath(in store.Instance) string {
	return "/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID + "/instances/" + in.SOPInstanceUID
}

// sharedFiles lists the shared DICOM files with Part-10 meta, from the inventory.
func sharedFiles(t testing.TB) []string {
	t.Helper()
	inv, err := os.ReadFile(shared(t, "INVENTORY.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, line := range strings.Split(strings.TrimSpace(string(inv)), "\n") {
		f := strings.Split(line, ",")
		if i == 0 || len(f) < 4 || f[3] == "" {
			continue // header; ACR-NEMA files without meta
		}
		out = append(out, filepath.Join(testutil.SharedData(t, "dicom"), f[0]))
	}
	return out
}
