package console

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dicomweb"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// queue is a job queue in memory with the semantics the console relies on: Retry makes a job
// available, Purge deletes the jobs of final states. The real queue's adapter is in
// cmd/espnode and is driven by the Chromium test.
type queue struct {
	mu      sync.Mutex
	jobs    []Job
	retried []int64
	purged  []string
}

func (q *queue) List(_ context.Context, states, _ []string, limit int) ([]Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Job
	for i := len(q.jobs) - 1; i >= 0 && len(out) < limit; i-- {
		if len(states) == 0 || slices.Contains(states, q.jobs[i].State) {
			out = append(out, q.jobs[i])
		}
	}
	return out, nil
}

func (q *queue) Counts(context.Context) ([]JobCount, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []JobCount
	for _, j := range q.jobs {
		i := slices.IndexFunc(out, func(c JobCount) bool { return c.Kind == j.Kind && c.State == j.State })
		if i < 0 {
			out = append(out, JobCount{Kind: j.Kind, State: j.State})
			i = len(out) - 1
		}
		out[i].N++
	}
	return out, nil
}

func (q *queue) Retry(_ context.Context, ids []int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.retried = append(q.retried, ids...)
	for i := range q.jobs {
		if slices.Contains(ids, q.jobs[i].ID) {
			q.jobs[i].State = "available"
		}
	}
	return nil
}

func (q *queue) Purge(_ context.Context, states []string) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.purged = append(q.purged, states...)
	n := len(q.jobs)
	q.jobs = slices.DeleteFunc(q.jobs, func(j Job) bool { return slices.Contains(states, j.State) })
	return n - len(q.jobs), nil
}

func (q *queue) state(id int64) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, j := range q.jobs {
		if j.ID == id {
			return j.State
		}
	}
	return ""
}

// activity is a fixed Activity.
type activity struct {
	perMinute []int
	segs      []SEG
	dests     []Destination
}

func (a activity) PerMinute(_ time.Time, n int) []int {
	out := make([]int, n)
	copy(out[n-min(n, len(a.perMinute)):], a.perMinute)
	return out
}
func (a activity) SEGs() []SEG                 { return a.segs }
func (a activity) Destinations() []Destination { return a.dests }

// fixture is a console over a data directory holding a CT slice and its SEG (highdicom's), a
// job queue in memory and DICOMweb as the renderer.
type fixture struct {
	t     *testing.T
	store *store.Store
	queue *queue
	log   *LogRing
	http  *httptest.Server
	ct    store.Instance
	seg   store.Instance
}

const (
	segPath = "SEG/highdicom_ct/seg_image_ct_binary_single_frame.dcm"
	ctPath  = "SEG/highdicom_ct/ct_image.dcm"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := datadir.Open(context.Background(), datadir.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, store: st, log: NewLogRing(10)}
	f.ct = f.put(ctPath)
	f.seg = f.put(segPath)
	now := time.Now()
	f.queue = &queue{jobs: []Job{
		{ID: 1, Kind: "espnode.segment", State: "completed", Channel: "ct", Attempt: 1, MaxAttempts: 5, CreatedAt: now},
		{ID: 2, Kind: "espnode.deliver", State: "discarded", Channel: "ct", Attempt: 3, MaxAttempts: 3, CreatedAt: now,
			LastError: "dial tcp 127.0.0.1:1: connect: connection refused"},
		{ID: 3, Kind: "espnode.segment", State: "available", Channel: "mr", Attempt: 0, MaxAttempts: 5, CreatedAt: now},
	}}
	act := activity{
		perMinute: []int{3, 0, 7},
		segs: []SEG{{At: now, SEGInstanceUID: f.seg.SOPInstanceUID, Sources: []string{f.ct.SOPInstanceUID}, Channel: "ct",
			Provider: "cpu", Model: "esp-medsam", Version: "1.0", Frames: 1, Foreground: 0.125, Inference: 42 * time.Millisecond}},
		dests: []Destination{{Name: "PACS@127.0.0.1:1", LastErrorAt: now, LastError: "connection refused"}},
	}
	logger := zerolog.New(zerolog.MultiLevelWriter(io.Discard, f.log))
	logger.Info().Msg("not kept")
	logger.Warn().Str("component", "pipeline").
		Str("error", "connection refused").Msg("delivery failed; will retry")
	srv, err := New(Options{
		Index: st, Jobs: f.queue, Activity: act,
		Destinations: []string{"PACS@127.0.0.1:1", "ARCHIVE@127.0.0.1:2"},
		Channels:     []string{"ct", "mr"},
		JobStates:    []string{"available", "scheduled", "running", "retryable", "completed", "discarded", "cancelled", "pending"},
		Provider:     "cpu", DataDir: t.TempDir(),
		Config: []byte("http:\n  auth:\n    tokens: ['****']\n"),
		Log:    f.log, Render: dicomweb.New(dicomweb.Options{}, st, st), DICOMwebRoot: dicomweb.DefaultRoot,
		ViewerURL: "http://127.0.0.1:8081", Version: "test", Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Root, srv)
	f.http = httptest.NewServer(mux)
	t.Cleanup(f.http.Close)
	return f
}

func (f *fixture) put(rel string) store.Instance {
	f.t.Helper()
	raw, err := os.ReadFile(testutil.SharedData(f.t, "dicom", rel))
	if err != nil {
		f.t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		f.t.Fatal(err)
	}
	in, err := f.store.Put(context.Background(), store.PutRequest{SOPClassUID: meta.MediaStorageSOPClassUID,
		SOPInstanceUID: meta.MediaStorageSOPInstanceUID, TransferSyntaxUID: meta.TransferSyntaxUID, Data: br})
	if err != nil {
		f.t.Fatal(err)
	}
	return in
}

// client returns a browser-like client: it keeps cookies and does not follow redirects.
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (f *fixture) get(c *http.Client, path string) (*http.Response, string) {
	f.t.Helper()
	rsp, err := c.Get(f.http.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return rsp, string(b)
}

// token is the CSRF token a page gave the client.
func (f *fixture) token(c *http.Client) string {
	f.t.Helper()
	f.get(c, "/console/jobs")
	u, _ := url.Parse(f.http.URL + Root)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == csrfCookie {
			return ck.Value
		}
	}
	f.t.Fatal("the console set no CSRF cookie")
	return ""
}

func (f *fixture) post(c *http.Client, path string, form url.Values, header map[string]string) *http.Response {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rsp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	io.Copy(io.Discard, rsp.Body)
	rsp.Body.Close()
	return rsp
}
