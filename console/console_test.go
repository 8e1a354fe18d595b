package console

import (
	"image/png"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/dicomseg"
)

// TestPages reads every page and checks what it must show.
func TestPages(t *testing.T) {
	f := newFixture(t)
	study, series := f.ct.StudyInstanceUID, f.ct.SeriesInstanceUID
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/console/", 200, []string{`id="received-minute">7<`, `id="received-hour">10<`, `id="queue-depth">1<`,
			`id="dead-letters">1<`, `data-channel="ct"`, "12.50 %", "42 ms", "esp-medsam", "PACS@127.0.0.1:1",
			"connection refused", "ARCHIVE@127.0.0.1:2", "free of"}},
		{"/console/studies", 200, []string{study}},
		{"/console/studies?PatientID=" + url.QueryEscape(f.ct.PatientID), 200, []string{study}},
		{"/console/studies?PatientID=nobody-has-this-id", 200, []string{"no study matches"}},
		{"/console/studies?Modality=CT", 400, []string{"not one of"}},
		{"/console/studies/" + study, 200, []string{series, "open in the viewer", "http://127.0.0.1:8081/viewer?StudyInstanceUIDs=" + study}},
		{"/console/studies/1.2.3.4", 200, []string{"no series"}},
		{"/console/studies/not-a-uid", 400, []string{"study UID"}},
		{"/console/studies/" + study + "/series/" + series, 200, []string{f.ct.SOPInstanceUID}},
		{"/console/instances/" + f.ct.SOPInstanceUID, 200, []string{`id="channel">ct<`, `id="foreground">12.50 %<`,
			`id="inference">42 ms`, "image.png?overlay=seg", f.seg.SOPInstanceUID}},
		{"/console/instances/1.2.3.4", 404, nil},
		{"/console/instances/" + f.ct.SOPInstanceUID + "/image.png?overlay=rt", 400, nil},
		{"/console/channels", 200, []string{`data-channel="ct"`, `data-channel="mr"`, "12.50 %", "no SEG in this window"}},
		{"/console/channels?every=1h", 200, []string{"<b>1h</b>", `channels?every=10m">10m<`}},
		{"/console/channels?every=7m", 400, nil},
		{"/console/jobs", 200, []string{`data-job="1"`, `data-job="2"`, `data-job="3"`, "connection refused", "Purge discarded"}},
		{"/console/jobs?state=discarded", 200, []string{`data-job="2"`}},
		{"/console/jobs?channel=mr", 200, []string{`data-job="3"`}},
		{"/console/jobs?state=dead", 400, nil},
		{"/console/jobs?channel=xray", 400, nil},
		{"/console/config", 200, []string{"tokens: [&#39;****&#39;]"}},
		{"/console/log", 200, []string{"delivery failed; will retry", "pipeline", "connection refused"}},
		{"/console/static/console.css", 200, []string{"--accent"}},
		{"/console/static/console.js", 200, []string{"data-refresh"}},
		{"/console/nothing", 404, nil},
	}
	c := f.client()
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rsp, body := f.get(c, tc.path)
			if rsp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d: %.300s", rsp.Status, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if csp := rsp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
	// Filters select: the discarded list holds no other job, the channel list no other channel.
	for path, absent := range map[string]string{"/console/jobs?state=discarded": `data-job="1"`, "/console/jobs?channel=mr": `data-job="2"`} {
		if _, body := f.get(c, path); strings.Contains(body, absent) {
			t.Errorf("%s lists %s", path, absent)
		}
	}
	if _, body := f.get(c, "/console/log"); strings.Contains(body, "not kept") {
		t.Error("the log page shows an info line")
	}
}

// TestActions: a POST without the CSRF token, with a wrong one, or from another origin is
// 403 and changes nothing; with the token it retries or purges and redirects to the jobs page.
// GETs of the action paths change nothing.
func TestActions(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	tok := f.token(c)
	other := f.client() // has a cookie of its own
	otherTok := f.token(other)
	retry := url.Values{"id": {"2"}}
	with := func(v url.Values, tok string) url.Values {
		out := url.Values{"csrf": {tok}}
		for k, x := range v {
			out[k] = x
		}
		return out
	}
	refused := []struct {
		name   string
		client *http.Client
		form   url.Values
		header map[string]string
	}{
		{"no token", c, retry, nil},
		{"wrong token", c, with(retry, strings.Repeat("A", 43)), nil},
		{"another session's token", c, with(retry, otherTok), nil},
		{"no cookie", &http.Client{}, with(retry, tok), nil},
		{"other origin", c, with(retry, tok), map[string]string{"Origin": "https://evil.example"}},
		{"other referer", c, with(retry, tok), map[string]string{"Referer": "https://evil.example/page"}},
		{"cross-site fetch", c, with(retry, tok), map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if rsp := f.post(tc.client, "/console/jobs/retry", tc.form, tc.header); rsp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %s, want 403", rsp.Status)
			}
			if f.queue.state(2) != "discarded" || len(f.queue.retried) != 0 {
				t.Fatalf("a refused POST retried: %v", f.queue.retried)
			}
		})
	}
	for _, p := range []string{"/console/jobs/retry?id=2", "/console/jobs/purge?state=discarded"} {
		if rsp, _ := f.get(c, p); rsp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %s, want 405", p, rsp.Status)
		}
	}
	if f.queue.state(2) != "discarded" {
		t.Fatal("a GET retried the job")
	}
	bad := []struct {
		path string
		form url.Values
	}{
		{"/console/jobs/retry", url.Values{}},
		{"/console/jobs/retry", url.Values{"id": {"-1"}}},
		{"/console/jobs/retry", url.Values{"id": {"x"}}},
		{"/console/jobs/purge", url.Values{"state": {"available"}}},
		{"/console/jobs/purge", url.Values{}},
	}
	for _, tc := range bad {
		if rsp := f.post(c, tc.path, with(tc.form, tok), map[string]string{"Origin": f.http.URL}); rsp.StatusCode != 400 {
			t.Errorf("POST %s %v: %s, want 400", tc.path, tc.form, rsp.Status)
		}
	}
	rsp := f.post(c, "/console/jobs/retry", with(url.Values{"id": {"2"}, "filter_state": {"discarded"}}, tok), map[string]string{"Origin": f.http.URL})
	if rsp.StatusCode != http.StatusSeeOther || f.queue.state(2) != "available" {
		t.Fatalf("retry: %s, job 2 %s", rsp.Status, f.queue.state(2))
	}
	if loc := rsp.Header.Get("Location"); loc != "/console/jobs?done=retried&n=1&state=discarded" {
		t.Errorf("retry redirects to %s", loc)
	}
	if _, body := f.get(c, "/console/jobs?done=retried&n=1"); !strings.Contains(body, "1 job(s) made available again") {
		t.Error("the jobs page does not say what the retry did")
	}
	rsp = f.post(c, "/console/jobs/purge", with(url.Values{"state": {"completed"}}, tok), nil)
	if rsp.StatusCode != http.StatusSeeOther || f.queue.state(1) != "" || f.queue.state(3) != "available" {
		t.Fatalf("purge: %s, jobs %v", rsp.Status, f.queue.jobs)
	}
}

// TestImage: the instance's image with overlay=seg differs from the plain one inside the SEG's
// mask only (the DICOMweb renderer draws it).
func TestImage(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	base := "/console/instances/" + f.ct.SOPInstanceUID + "/image.png"
	rsp, plainPNG := f.get(c, base)
	if rsp.StatusCode != 200 || rsp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("image: %s %s", rsp.Status, rsp.Header.Get("Content-Type"))
	}
	_, overPNG := f.get(c, base+"?overlay=seg")
	plain, err1 := png.Decode(strings.NewReader(plainPNG))
	over, err2 := png.Decode(strings.NewReader(overPNG))
	if err1 != nil || err2 != nil {
		t.Fatalf("PNG: %v %v", err1, err2)
	}
	raw, err := os.ReadFile(testutil.SharedData(t, "dicom", segPath))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := dicomseg.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	mask := seg.Mask(1, f.ct.SOPInstanceUID, 0)
	if mask == nil {
		t.Fatal("the SEG has no frame for the CT")
	}
	in, out := 0, 0
	w := plain.Bounds().Dx()
	for y := range plain.Bounds().Dy() {
		for x := range w {
			if plain.At(x, y) != over.At(x, y) {
				if mask[y*w+x] != 0 {
					in++
				} else {
					out++
				}
			}
		}
	}
	if in == 0 || out != 0 {
		t.Fatalf("overlay changed %d pixels in the mask and %d outside", in, out)
	}
}

func TestLogRing(t *testing.T) {
	l := NewLogRing(3)
	for i, line := range []string{
		`{"level":"warn","time":"2026-12-02T03:00:00Z","component":"a","message":"m1"}`,
		`not json`,
		`{"level":"error","message":"m3","error":"boom"}`,
		`{"level":"warn","message":"m4"}`,
		strings.Repeat("x", maxLogLine+1),
	} {
		if _, err := l.WriteLevel([]zerolog.Level{zerolog.WarnLevel, zerolog.WarnLevel, zerolog.ErrorLevel, zerolog.WarnLevel, zerolog.WarnLevel}[i], []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	got := l.Entries()
	if len(got) != 3 || got[1].Message != "m4" || got[2].Message != "m3" || got[2].Error != "boom" || len(got[0].Message) != maxLogLine+3 {
		t.Fatalf("entries %+v", got)
	}
	if (*LogRing)(nil).Entries() != nil {
		t.Error("a nil ring has entries")
	}
}
