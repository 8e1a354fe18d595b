package dicomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// multipartBody is a multipart/related body of the parts (each with its Content-Type).
func multipartBody(boundary string, parts ...[2]string) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\n\r\n%s\r\n", boundary, p[0], p[1])
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

func (f *fixture) post(path, contentType string, body []byte) (*http.Response, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.base+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rsp, err := f.http.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return rsp, out
}

func sequence(ds map[string]any, tag string) []map[string]any {
	a, _ := ds[tag].(map[string]any)
	vs, _ := a["Value"].([]any)
	var out []map[string]any
	for _, v := range vs {
		out = append(out, v.(map[string]any))
	}
	return out
}

// rejecting is a Storer that refuses what the store would call a duplicate.
type rejecting struct{ Storer }

func (r rejecting) Put(ctx context.Context, req store.PutRequest) (store.Instance, error) {
	return store.Instance{}, fmt.Errorf("put: %w", store.ErrDuplicate)
}

// TestStow stores through the Storer and answers per instance (PS3.18 §10.5.3): 200 when all
// are stored, 202 when some are, 409 when none; failure reasons by cause; nothing stored that
// was refused.
func TestStow(t *testing.T) {
	const ct = `multipart/related; type="application/dicom"; boundary=xyz`
	read := func(rel ...string) string {
		b, err := os.ReadFile(shared(t, rel...))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	evrle, dx := read("CT", "cornerstone_CT_evrle.dcm"), read("DX", "highdicom_dx_image_mono1_evrle.dcm")
	ctFile := readFile(t, shared(t, "CT", "cornerstone_CT_evrle.dcm"))
	ctStudy := ctFile.DataSet.String(dcm.StudyInstanceUID)

	t.Run("all stored", func(t *testing.T) {
		f := newFixture(t, Options{})
		rsp, out := f.post("/studies", ct, multipartBody("xyz", [2]string{"application/dicom", evrle}, [2]string{"application/dicom", dx}))
		ok := sequence(out, "00081199")
		if rsp.StatusCode != 200 || len(ok) != 2 || out["00081198"] != nil || rsp.Header.Get("Content-Type") != "application/dicom+json" {
			t.Fatalf("%s: %v", rsp.Status, out)
		}
		for _, item := range ok {
			in, err := f.store.Get(t.Context(), value(item, "00081155").(string))
			if err != nil {
				t.Fatalf("reported stored, not in the store: %v", err)
			}
			if !strings.HasSuffix(value(item, "00081190").(string), instancePath(in)) {
				t.Errorf("RetrieveURL %v", value(item, "00081190"))
			}
		}
	})
	t.Run("to a study: the other study's instance fails", func(t *testing.T) {
		f := newFixture(t, Options{})
		rsp, out := f.post("/studies/"+ctStudy, ct, multipartBody("xyz", [2]string{"application/dicom", evrle}, [2]string{"application/dicom", dx}))
		failed := sequence(out, "00081198")
		if rsp.StatusCode != 202 || len(sequence(out, "00081199")) != 1 || len(failed) != 1 || value(failed[0], "00081197") != float64(reasonDoesNotMatch) {
			t.Fatalf("%s: %v", rsp.Status, out)
		}
		if !strings.HasSuffix(value(out, "00081190").(string), "/studies/"+ctStudy) {
			t.Errorf("RetrieveURL %v", value(out, "00081190"))
		}
		if _, err := f.store.Get(t.Context(), value(failed[0], "00081155").(string)); err == nil {
			t.Error("the refused instance was stored")
		}
		// The stored one arrived whole, with the bytes read before the check.
		in, _ := f.store.Get(t.Context(), ctFile.DataSet.String(dcm.SOPInstanceUID))
		if rsp, body := f.get(instancePath(in), "multipart/related; type=application/dicom; transfer-syntax=*"); rsp.StatusCode != 200 ||
			!bytes.Contains(parts(t, rsp, body)[0].body, ctFile.DataSet.Bytes(dcm.PixelData)) {
			t.Error("the instance posted to its study is not stored whole")
		}
	})
	t.Run("failure reasons", func(t *testing.T) {
		f := newFixture(t, Options{TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian}})
		rsp, out := f.post("/studies", ct, multipartBody("xyz",
			[2]string{"application/dicom", "not DICOM at all"},
			[2]string{"text/plain", evrle},
			[2]string{"application/dicom", read("CT", "cornerstone_CT_ivrle.dcm")},
			[2]string{"application/dicom", evrle[:len(evrle)/2]},
		))
		var reasons []any
		for _, item := range sequence(out, "00081198") {
			reasons = append(reasons, value(item, "00081197"))
		}
		want := []any{float64(reasonCannotUnderstand), float64(reasonCannotUnderstand), float64(reasonSyntaxNotSupported), float64(reasonCannotUnderstand)}
		if rsp.StatusCode != 409 || fmt.Sprint(reasons) != fmt.Sprint(want) {
			t.Fatalf("%s: reasons %v, want %v", rsp.Status, reasons, want)
		}
		if _, _, _, n, _ := f.store.Counts(t.Context()); n != 0 {
			t.Errorf("%d instances stored", n)
		}
	})
	t.Run("duplicate refused by the store", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.server.storer = rejecting{}
		rsp, out := f.post("/studies", ct, multipartBody("xyz", [2]string{"application/dicom", evrle}))
		if failed := sequence(out, "00081198"); rsp.StatusCode != 409 || len(failed) != 1 || value(failed[0], "00081197") != float64(reasonDuplicate) {
			t.Fatalf("%s: %v", rsp.Status, out)
		}
	})
	t.Run("request refused", func(t *testing.T) {
		f := newFixture(t, Options{MaxStoreBytes: 100 << 10})
		for _, c := range []struct {
			ct     string
			body   []byte
			status int
		}{
			{"application/dicom", []byte(evrle), 415},
			{`multipart/related; type="application/dicom+xml"; boundary=xyz`, multipartBody("xyz"), 415},
			{"multipart/related; type=application/dicom", multipartBody("xyz"), 415},
			{ct, multipartBody("xyz"), 400},
			{ct, []byte("--xyz\r\nbroken"), 400},
			{ct, multipartBody("xyz", [2]string{"application/dicom", evrle}), 413},
		} {
			if rsp, out := f.post("/studies", c.ct, c.body); rsp.StatusCode != c.status {
				t.Errorf("%s (%d bytes): %s, want %d: %v", c.ct, len(c.body), rsp.Status, c.status, out)
			}
		}
	})
}
