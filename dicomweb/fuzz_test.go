package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// Every decoder of what a client sends has a fuzz target; seeds are in testdata/fuzz.

// FuzzParseAccept: any Accept header is parsed or refused, within its bounds.
func FuzzParseAccept(f *testing.F) {
	f.Add(`multipart/related; type="application/dicom"; transfer-syntax=*, application/dicom+json;q=0.5`)
	f.Add("multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50")
	f.Fuzz(func(t *testing.T, h string) {
		ranges, err := parseAccept([]string{h})
		if err != nil {
			return
		}
		if len(ranges) > maxAcceptRanges {
			t.Fatalf("%d ranges", len(ranges))
		}
		for i := 1; i < len(ranges); i++ {
			if ranges[i].q > ranges[i-1].q {
				t.Fatal("not sorted by q")
			}
		}
	})
}

// FuzzParseQIDO: any query string is parsed or refused; what is parsed stays within the
// server's bound and matches only what the index can.
func FuzzParseQIDO(f *testing.F) {
	f.Add("PatientName=Doe*&StudyDate=20200101-&limit=10&offset=5&includefield=all")
	f.Add("StudyInstanceUID=1.2.3,1.2.4&includefield=00080060,PatientAge&fuzzymatching=true")
	f.Fuzz(func(t *testing.T, query string) {
		for _, level := range []store.Level{store.StudyLevel, store.SeriesLevel, store.ImageLevel} {
			q, err := parseQIDO(query, level, "", "", 50)
			if err != nil {
				continue
			}
			if q.limit < 1 || q.limit > 50 || q.offset < 0 {
				t.Fatalf("limit %d offset %d", q.limit, q.offset)
			}
			for _, m := range q.query.Matches {
				if !store.Matchable(m.Tag, level) {
					t.Fatalf("%s matched at %s level", m.Tag, level)
				}
			}
		}
	})
}

// FuzzFrameAndBulkPaths: frame lists and bulk data paths from URLs.
func FuzzFrameAndBulkPaths(f *testing.F) {
	f.Add("1,2,3", "7FE00010")
	f.Add("0,-1", "00081115/0/0008114A/2/00081155")
	f.Fuzz(func(t *testing.T, frames, path string) {
		if list, err := parseFrameList(frames, 100); err == nil {
			for _, n := range list {
				if n < 1 || n > 100 {
					t.Fatalf("frame %d", n)
				}
			}
		}
		if p, err := parseBulkPath(path); err == nil && len(p)%2 != 1 {
			t.Fatalf("path %v", p)
		}
	})
}

// FuzzLayout: the frame layout of any data set, in each syntax, is found or refused, and what it
// finds is bounded.
func FuzzLayout(f *testing.F) {
	f.Add(syntheticDataSet(f, 2, 2, 2, 8, []byte{1, 2, 3, 4, 5, 6, 7, 8}), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, syn uint8) {
		syntaxes := []string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian, dcm.ExplicitVRBigEndian, dcm.RLELossless, dcm.JPEGBaseline8Bit}
		l, err := readLayout(bytes.NewReader(data), syntaxes[int(syn)%len(syntaxes)])
		if err != nil || !l.hasPixels {
			return
		}
		if l.encapsulated && len(l.frameParts) != l.frames {
			t.Fatalf("%d frames, %d grouped", l.frames, len(l.frameParts))
		}
		if l.frameBytes() > 1<<40 {
			t.Fatalf("frame of %d bytes", l.frameBytes())
		}
	})
}

// FuzzJSON: any data set dcm reads is written as valid JSON.
func FuzzJSON(f *testing.F) {
	f.Add(syntheticDataSet(f, 2, 2, 1, 8, []byte{1, 2, 3, 4}))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := dcm.Parse(data, dcm.ExplicitVRLittleEndian)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		(&jsonEncoder{buf: &buf, bulk: bulkRule(64, "http://x/")}).dataSet(ds, nil)
		if !json.Valid(buf.Bytes()) {
			t.Fatalf("invalid JSON: %q", buf.String())
		}
	})
}

// draining stores nothing: it reads what it is given, as the store would, and reports success.
type draining struct{}

func (draining) Put(ctx context.Context, req store.PutRequest) (store.Instance, error) {
	if _, err := dcm.ReadDataSet(req.Data, req.TransferSyntaxUID, dcm.ParseOptions{SkipValuesOver: 1 << 10}); err != nil {
		return store.Instance{}, store.ErrCannotUnderstand
	}
	return store.Instance{SOPInstanceUID: req.SOPInstanceUID, StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.3"}, nil
}

// FuzzStow: any STOW-RS body is answered with a status and, for parts read, valid JSON.
func FuzzStow(f *testing.F) {
	part := synthetic(f, 2, 2, 1, 8, []byte{1, 2, 3, 4})
	f.Add(multipartBody("b", [2]string{"application/dicom", string(part)}), "")
	f.Add(multipartBody("b", [2]string{"application/dicom", string(part[:200])}, [2]string{"text/plain", "x"}), "1.2.3.4")
	s := New(Options{MaxStoreBytes: 1 << 20}, draining{}, nil)
	f.Fuzz(func(t *testing.T, body []byte, study string) {
		path := DefaultRoot + "/studies"
		if study != "" {
			path += "/" + strings.Map(func(r rune) rune {
				if r == '/' || r == '?' || r == '#' || r == '%' || r < 0x21 || r > 0x7e {
					return '_'
				}
				return r
			}, study)
		}
		req := httptest.NewRequest("POST", "http://node"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=b`)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusConflict:
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%d with invalid JSON", rec.Code)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusNotFound, http.StatusMethodNotAllowed,
			http.StatusTemporaryRedirect, http.StatusMovedPermanently, http.StatusPermanentRedirect: // "." and ".." segments: the mux's clean path
		default:
			b, _ := io.ReadAll(rec.Body)
			t.Fatalf("status %d: %s", rec.Code, b)
		}
	})
}

// FuzzRequest: any GET under the root, with any query string (rendered parameters, QIDO keys,
// accept=) and Accept header, is answered or refused without a server error, over a store holding
// one two-frame image.
func FuzzRequest(f *testing.F) {
	st, err := datadir.Open(context.Background(), datadir.Options{Dir: f.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	raw := synthetic(f, 2, 2, 2, 8, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	br := bufio.NewReader(bytes.NewReader(raw))
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		f.Fatal(err)
	}
	in, err := st.Put(context.Background(), store.PutRequest{SOPClassUID: meta.MediaStorageSOPClassUID,
		SOPInstanceUID: meta.MediaStorageSOPInstanceUID, TransferSyntaxUID: meta.TransferSyntaxUID, Data: br})
	if err != nil {
		f.Fatal(err)
	}
	p := instancePath(in)
	f.Add(p+"/frames/1,2", "", "multipart/related; type=application/octet-stream")
	f.Add(p+"/rendered", "quality=50&overlay=seg", "image/png")
	f.Add(p+"/frames/2/rendered", "accept=image/jpeg&viewport=1,1", "")
	f.Add(p+"/metadata", "", "application/dicom+json")
	f.Add(p+"/bulkdata/7FE00010", "", "")
	f.Add(p, "", `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2`)
	f.Add("/studies", "PatientName=Syn*&limit=2&includefield=all", "")
	f.Add("/studies/1.2.3.4/series", "Modality=OT,CT&offset=1", "")
	s := New(Options{MaxResults: 10}, st, st)
	f.Fuzz(func(t *testing.T, path, query, accept string) {
		u := &url.URL{Path: DefaultRoot + path, RawQuery: query}
		req := httptest.NewRequest("GET", "http://node/", nil)
		req.URL, req.RequestURI = u, u.RequestURI()
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s with Accept %q: %d %s", u, accept, rec.Code, rec.Body.Bytes())
		}
	})
}
