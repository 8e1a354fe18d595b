package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/store/datadir"
)

func TestMain(m *testing.M) {
	// `espnode serve` serves HTTP on 127.0.0.1:8080 and the viewer on 8081 by
	// default; the tests that run it through the command line take ephemeral
	// ports instead, so that they collide neither with each other nor with a
	// node on this machine.
	os.Setenv("ESPNODE_HTTP_ADDR", "127.0.0.1:0")
	os.Setenv("ESPNODE_HTTP_VIEWER_ADDR", "127.0.0.1:0")
	os.Exit(m.Run())
}

// pipelineORT points the runtime at the project's ONNX Runtime copy when the
// Makefile has not.
func pipelineORT(t *testing.T) {
	t.Helper()
	if os.Getenv(onnx.LibraryEnv) != "" {
		return
	}
	lib := filepath.Join(testutil.RepoRoot(t), "third_party", "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(lib); err != nil {
		t.Fatalf("ONNX Runtime not found at %s: run scripts/deps.sh run", lib)
	}
	t.Setenv(onnx.LibraryEnv, lib)
}

// withPipeline turns on the default routing, the CPU, quick retries and the
// given destinations, over startNode's storage-only defaults.
func withPipeline(dests ...config.Peer) func(*config.Config) {
	return func(c *config.Config) {
		// The default table, but every ultrasound to its channel: the shared US files say nothing
		// of the breast (the defaults store them unsegmented), and these tests need the channel's
		// single-frame, multi-frame and undecodable cases.
		def := config.Default()
		c.Pipeline.Routing = append([]config.Route{{Channel: "ultrasound", Modality: []string{"US"}}}, def.Pipeline.Routing...)
		c.Pipeline.Destinations = dests
		c.Pipeline.Workers = 2
		c.Pipeline.PollInterval = 100 * time.Millisecond
		c.Pipeline.DeliveryRetry = config.Retry{MaxAttempts: 3, Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond}
		c.Pipeline.SegmentRetry = config.Retry{MaxAttempts: 2, Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond}
		c.Model.Provider = "cpu"
		c.Model.Threads = 1
		// These tests follow every routed image to its SEG; the shipped model's plausibility
		// bounds, made on seg2d's images, find some shared DICOM images (WSI tiles, a blank
		// radiograph) implausible. The guard has tests of its own (pipeline, seg/segment).
		c.Model.RejectImplausible = false
	}
}

// routedSources are decodable files of every routed modality, the wrapped
// ES, OP, XC and GM ones included, and the channel each must get.
var routedSources = []struct {
	path    []string
	channel string
	frames  int
}{
	{[]string{"wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"}, "colonoscopy", 1},
	{[]string{"wrapped", "ES_kvasir-seg-sample_cju0rx1idathl0835detmsp84.dcm"}, "colonoscopy", 1},
	{[]string{"wrapped", "OP_drishti-gs1_drishtiGS_012.dcm"}, "fundus", 1},
	{[]string{"wrapped", "OP_drive_drive_05.dcm"}, "fundus", 1},
	{[]string{"wrapped", "XC_ph2_IMD092.dcm"}, "dermoscopy", 1},
	{[]string{"wrapped", "XC_ham10000-sample_ISIC_0027800.dcm"}, "dermoscopy", 1},
	{[]string{"wrapped", "GM_gbm40_gbm40_25.dcm"}, "microscopy", 1},
	{[]string{"wrapped", "GM_gbm40_gbm40_05.dcm"}, "microscopy", 1},
	{[]string{"XC", "fodicom_XC_photo_jpegbaseline_icon.dcm"}, "dermoscopy", 1},
	{[]string{"US", "wg04_US1_UNC.dcm"}, "ultrasound", 1},
	{[]string{"US_multiframe", "pydicom_examples_ybr_color_30fr_jpegbaseline.dcm"}, "ultrasound", 30},
	{[]string{"DX", "highdicom_dx_image_mono1_evrle.dcm"}, "xray", 1},
}

// storescuProposal is the storescu option that proposes a compressed
// transfer syntax, which storescu cannot convert to: files in it go in their
// own association.
var storescuProposal = map[string]string{
	"1.2.840.10008.1.2.4.50": "-xy", // JPEG Baseline
	"1.2.840.10008.1.2.4.70": "-xs", // JPEG Lossless SV1
	"1.2.840.10008.1.2.4.90": "-xv", // JPEG 2000 lossless
	"1.2.840.10008.1.2.5":    "-xr", // RLE
}

// storescu sends files to the node with DCMTK storescu, one association per
// transfer syntax group.
func storescu(t *testing.T, port int, files []string) {
	t.Helper()
	groups := map[string][]string{}
	for _, f := range files {
		opt := storescuProposal[readMeta(t, f).TransferSyntaxUID]
		groups[opt] = append(groups[opt], f)
	}
	for opt, fs := range groups {
		args := []string{"-aet", "STORESCU", "-aec", "ESPNODE"}
		if opt != "" {
			args = append(args, opt)
		}
		args = append(append(args, "127.0.0.1", strconv.Itoa(port)), fs...)
		if out, err := dcmtk(t, "storescu", args...); err != nil {
			t.Fatalf("storescu %s: %v\n%s", opt, err, out)
		}
	}
}

// receivedSEGs decodes every file storescp holds and maps source SOP
// Instance UID to the SEG files referencing it.
func receivedSEGs(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "SG.") { // storescp names files by modality
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := dicomseg.Decode(data)
		if err != nil {
			continue // storescp still writing it
		}
		refs := map[string]bool{}
		for _, f := range s.Frames {
			for _, src := range f.Sources {
				refs[src.SOPInstanceUID] = true
			}
		}
		for uid := range refs {
			out[uid] = append(out[uid], p)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes (a guard against
// a hang, not a latency assertion: latency is measured in bench/).
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dciodvfyErrors(t *testing.T, path string) []string {
	t.Helper()
	tool := testutil.Tool(t, "dciodvfy", "dicom3tools")
	// dciodvfy exits non-zero when it finds errors; its lines say which.
	out, _ := exec.Command(tool, path).CombinedOutput()
	if len(out) == 0 {
		t.Fatalf("dciodvfy printed nothing for %s", path)
	}
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Error") {
			errs = append(errs, line)
		}
	}
	return errs
}

// TestPipelineStorescuToStorescp: DCMTK storescu sends files of every routed
// modality, plus one no rule routes, radiographs the default routing does not
// segment (hip, leg) and one the node cannot decode (its codestream cut short); DCMTK
// storescp, the destination, receives exactly one dciodvfy-clean SEG per
// routed source, referencing it, and the archive keeps every SEG.
func TestPipelineStorescuToStorescp(t *testing.T) {
	pipelineORT(t)
	destDir := t.TempDir()
	destPort := startStorescp(t, destDir)
	n := startNode(t, withPipeline(config.Peer{AETitle: "STORESCP", Host: "127.0.0.1", Port: destPort}))

	var files []string
	want := map[string]string{} // source SOP Instance UID -> file
	frames := map[string]int{}
	for _, s := range routedSources {
		p := testutil.SharedData(t, append([]string{"dicom"}, s.path...)...)
		files = append(files, p)
		want[readMeta(t, p).MediaStorageSOPInstanceUID] = p
		frames[readMeta(t, p).MediaStorageSOPInstanceUID] = s.frames
	}
	unrouted := testutil.SharedData(t, "dicom", "CT", "wg04_CT1_UNC.dcm")
	undecodable := truncatedCodestream(t, testutil.SharedData(t, "dicom", "US", "wg04_US1_J2KR.dcm"))
	// Radiographs of the hip and of the leg: the default routing keeps them from the lung channel.
	hip := testutil.SharedData(t, "dicom", "CR", "wg04_RG2_RLE_mono2.dcm")
	extremity := testutil.SharedData(t, "dicom", "CR", "wg04_RG3_UNC_mono1.dcm")
	files = append(files, unrouted, undecodable, hip, extremity)

	storescu(t, n.port, files)
	// DCMTK 3.6.7's storescu does not know VL Whole Slide Microscopy: espnode store sends it.
	sm := testutil.SharedData(t, "dicom", "SM", "highdicom_sm_image_rgb_evrle.dcm")
	var out bytes.Buffer
	if code := run(context.Background(), &cliEnv{stdout: &out, stderr: &out}, []string{"store", "--called-ae", "ESPNODE", n.addr, sm}); code != 0 {
		t.Fatalf("espnode store: exit %d\n%s", code, out.String())
	}
	want[readMeta(t, sm).MediaStorageSOPInstanceUID] = sm
	frames[readMeta(t, sm).MediaStorageSOPInstanceUID] = 25
	files = append(files, sm)
	stored := archived(t, n.dataDir)
	for _, f := range files {
		if uid := readMeta(t, f).MediaStorageSOPInstanceUID; stored[uid] == "" {
			t.Errorf("%s was not stored", f)
		}
	}

	var got map[string][]string
	waitFor(t, "a SEG per routed source at storescp", 3*time.Minute, func() bool {
		got = receivedSEGs(t, destDir)
		for uid := range want {
			if len(got[uid]) == 0 {
				return false
			}
		}
		return true
	})
	// Once every job is final, nothing more can arrive at the destination.
	var jobs map[string]int
	waitFor(t, "every job to finish", time.Minute, func() bool {
		jobs = jobCounts(t, n.dataDir)
		return jobsSettled(jobs)
	})
	for k, want := range map[string]int{
		"segment/completed": len(want), "segment/cancelled": 1, // the truncated JPEG 2000 one
		"deliver/completed": len(want),
	} {
		if jobs[k] != want {
			t.Errorf("%d %s jobs, want %d (all: %v)", jobs[k], k, want, jobs)
		}
	}
	got = receivedSEGs(t, destDir)
	for uid, f := range want {
		if len(got[uid]) != 1 {
			t.Errorf("%s: %d SEGs at the destination, want 1: %v", f, len(got[uid]), got[uid])
			continue
		}
		data, err := os.ReadFile(got[uid][0])
		if err != nil {
			t.Fatal(err)
		}
		s, err := dicomseg.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Frames) != frames[uid] {
			t.Errorf("%s: SEG has %d frames, want one per source frame (%d)", f, len(s.Frames), frames[uid])
		}
	}
	for _, f := range []string{unrouted, undecodable, hip, extremity} {
		if segs := got[readMeta(t, f).MediaStorageSOPInstanceUID]; len(segs) > 0 {
			t.Errorf("%s got SEGs %v; want none", f, segs)
		}
	}
	segUIDs := map[string]bool{}
	for _, paths := range got {
		for _, p := range paths {
			if errs := dciodvfyErrors(t, p); len(errs) > 0 {
				t.Errorf("dciodvfy %s:\n%s", filepath.Base(p), strings.Join(errs, "\n"))
			}
			segUIDs[strings.TrimPrefix(filepath.Base(p), "SG.")] = true
		}
	}
	// Every delivered SEG is also in the archive, retrievable locally.
	stored = archived(t, n.dataDir)
	for uid := range segUIDs {
		if stored[uid] == "" {
			t.Errorf("SEG %s delivered but not in the archive", uid)
		}
	}
	if len(segUIDs) != len(want) {
		t.Errorf("%d distinct SEGs delivered, want %d", len(segUIDs), len(want))
	}
}

// jobsCmd runs `espnode jobs` and returns its output.
func jobsCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, append([]string{"jobs"}, args...))
	return stdout.String() + stderr.String(), code
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	rsp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(rsp.Body)
	return rsp.StatusCode, b.String()
}

// jobCounts counts a data directory's jobs by "kind/state", as `espnode
// jobs` sees them.
func jobCounts(t *testing.T, dataDir string) map[string]int {
	t.Helper()
	queue, err := datadir.OpenQueue(context.Background(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer queue.Close()
	admin, err := pipeline.NewAdmin(queue)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := admin.List(context.Background(), nil, nil, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, j := range jobs {
		out[strings.TrimPrefix(j.Kind, "espnode.")+"/"+string(j.State)]++
	}
	return out
}

// jobsSettled reports whether no job is waiting or running.
func jobsSettled(counts map[string]int) bool {
	for k, n := range counts {
		_, state, _ := strings.Cut(k, "/")
		if n > 0 && !slices.Contains([]string{"completed", "discarded", "cancelled"}, state) {
			return false
		}
	}
	return true
}

// TestDeadLettersAndJobsRetry: with the destination down, deliveries use up
// their attempts and become dead letters that `espnode jobs list` shows; the
// destination comes up, `espnode jobs retry --all-dead` sends them, and the
// SEGs were in the archive all along.
func TestDeadLettersAndJobsRetry(t *testing.T) {
	pipelineORT(t)
	destPort := freePort(t)
	dest := config.Peer{AETitle: "STORESCP", Host: "127.0.0.1", Port: destPort}
	n := startNode(t, withPipeline(dest))
	files := []string{
		testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD092.dcm"),
		testutil.SharedData(t, "dicom", "wrapped", "GM_gbm40_gbm40_25.dcm"),
	}
	storescu(t, n.port, files)

	waitFor(t, "two dead letters", time.Minute, func() bool {
		return jobCounts(t, n.dataDir)["deliver/discarded"] == 2
	})
	out, code := jobsCmd(t, "list", "--data-dir", n.dataDir, "--state", "discarded")
	if code != 0 || strings.Count(out, "deliver") != 2 || !strings.Contains(out, "3/3") || !strings.Contains(out, "connection refused") {
		t.Errorf("jobs list --state discarded: exit %d, want two deliver jobs after 3/3 attempts with their error:\n%s", code, out)
	}
	if !strings.Contains(out, dest.AETitle) || !strings.Contains(out, strconv.Itoa(destPort)) {
		t.Errorf("jobs list does not show the destination:\n%s", out)
	}
	// The SEGs are in the archive whatever happened to their delivery.
	segs := 0
	for _, p := range archived(t, n.dataDir) {
		if readMeta(t, p).MediaStorageSOPClassUID == dicomseg.SegmentationStorage {
			segs++
		}
	}
	if segs != 2 {
		t.Errorf("%d SEGs in the archive, want 2", segs)
	}

	destDir := t.TempDir()
	startStorescpOn(t, destDir, destPort)
	out, code = jobsCmd(t, "retry", "--data-dir", n.dataDir, "--all-dead")
	if code != 0 || !strings.Contains(out, "2 job(s)") {
		t.Fatalf("jobs retry --all-dead: exit %d\n%s", code, out)
	}
	waitFor(t, "the retried deliveries", time.Minute, func() bool {
		c := jobCounts(t, n.dataDir)
		return c["deliver/completed"] == 2 && jobsSettled(c)
	})
	got := receivedSEGs(t, destDir)
	for _, f := range files {
		if uid := readMeta(t, f).MediaStorageSOPInstanceUID; len(got[uid]) != 1 {
			t.Errorf("%s: %d SEGs delivered after retry, want 1", f, len(got[uid]))
		}
	}

	// purge removes final jobs only, and refuses a state that is not final.
	if out, code := jobsCmd(t, "purge", "--data-dir", n.dataDir, "--state", "running"); code == 0 {
		t.Errorf("purge --state running succeeded:\n%s", out)
	}
	out, code = jobsCmd(t, "purge", "--data-dir", n.dataDir, "--state", "completed")
	if code != 0 || !strings.Contains(out, "4 job(s) deleted") {
		t.Errorf("purge --state completed: exit %d, want 4 deleted (2 segment, 2 deliver):\n%s", code, out)
	}
}

// TestServeHTTP: `espnode serve` with no configuration but a data directory,
// ports and one --destination segments with the shipped model, sends the SEG,
// and reports it on /metrics; /healthz and /readyz answer.
func TestServeHTTP(t *testing.T) {
	pipelineORT(t)
	destDir := t.TempDir()
	destPort := startStorescp(t, destDir)
	dicomPort, httpPort := freePort(t), freePort(t)
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	t.Setenv("ESPNODE_HTTP_ADDR", "127.0.0.1:"+strconv.Itoa(httpPort))
	t.Setenv("ESPNODE_MODEL_PROVIDER", "cpu")
	go func() {
		done <- run(ctx, &cliEnv{stdout: &stderr, stderr: &stderr}, []string{"serve", "--data-dir", dataDir,
			"--port", strconv.Itoa(dicomPort), "--destination", "STORESCP@127.0.0.1:" + strconv.Itoa(destPort)})
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	waitFor(t, "/readyz", time.Minute, func() bool {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		default:
		}
		rsp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		rsp.Body.Close()
		return rsp.StatusCode == http.StatusOK
	})
	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	src := testutil.SharedData(t, "dicom", "wrapped", "OP_drishti-gs1_drishtiGS_012.dcm")
	unrouted := testutil.SharedData(t, "dicom", "MR", "pydicom_MR_small_ivrle.dcm")
	storescu(t, dicomPort, []string{src, unrouted})
	uid := readMeta(t, src).MediaStorageSOPInstanceUID
	waitFor(t, "the SEG at storescp", time.Minute, func() bool { return len(receivedSEGs(t, destDir)[uid]) == 1 })
	var metrics string
	waitFor(t, "the delivery in /metrics", 30*time.Second, func() bool {
		_, metrics = httpGet(t, base+"/metrics")
		// River marks a job completed shortly after its work returns.
		return strings.Contains(metrics, `espnode_end_to_end_seconds_count{channel="fundus"} 1`) &&
			strings.Contains(metrics, `espnode_jobs{kind="espnode.deliver",state="completed"} 1`)
	})
	for _, want := range []string{
		"espnode_associations_total 1",
		`espnode_instances_received_total{channel="fundus"} 1`,
		`espnode_instances_received_total{channel="none"} 1`,
		`espnode_inference_seconds_count{channel="fundus",provider="cpu"} 1`,
		`espnode_delivery_attempts_total{destination="STORESCP@127.0.0.1:` + strconv.Itoa(destPort) + `"} 1`,
		`espnode_jobs{kind="espnode.deliver",state="completed"} 1`,
		`espnode_jobs{kind="espnode.segment",state="completed"} 1`,
		"espnode_received_bytes_total ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, "espnode_delivery_failures_total{") {
		t.Errorf("/metrics counts delivery failures; there were none")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a node's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeWithoutONNXRuntime: when ONNX Runtime cannot be loaded the node
// still stores (and answers Success), /readyz says why, and the job waits.
func TestServeWithoutONNXRuntime(t *testing.T) {
	httpPort := freePort(t)
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	n := startNode(t, func(c *config.Config) {
		withPipeline()(c)
		c.Model.ONNXRuntime = missing
		c.HTTP.Addr = "127.0.0.1:" + strconv.Itoa(httpPort)
	})
	src := testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm")
	storescu(t, n.port, []string{src})
	if archived(t, n.dataDir)[readMeta(t, src).MediaStorageSOPInstanceUID] == "" {
		t.Fatal("instance not stored")
	}
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	var body string
	waitFor(t, "/readyz to give the reason", 30*time.Second, func() bool {
		var code int
		code, body = httpGet(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, missing)
	})
	if !strings.Contains(body, "segmentation jobs wait") {
		t.Errorf("/readyz: %q", body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200 (the process is alive)", code)
	}
	if c := jobCounts(t, n.dataDir); c["segment/available"] != 1 {
		t.Errorf("jobs %v, want the segmentation job waiting (available)", c)
	}
}

// TestServeDestinationFlag: a malformed --destination is refused before
// anything starts, and a duplicate of a configured one is named by its key.
func TestServeDestinationFlag(t *testing.T) {
	var errOut bytes.Buffer
	code := run(context.Background(), &cliEnv{stdout: io.Discard, stderr: &errOut}, []string{"serve", "--destination", "PACS@pacs"})
	if code != 2 || !strings.Contains(errOut.String(), "AET@HOST:PORT") {
		t.Errorf("--destination PACS@pacs: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	code = run(context.Background(), &cliEnv{stdout: io.Discard, stderr: &errOut}, []string{"serve", "--data-dir", t.TempDir(),
		"--destination", "PACS@127.0.0.1:104", "--destination", "PACS@127.0.0.1:104"})
	if code != 1 || !strings.Contains(errOut.String(), "pipeline.destinations[1]: PACS@127.0.0.1:104 is already pipeline.destinations[0]") {
		t.Errorf("duplicate --destination: exit %d, stderr %q", code, errOut.String())
	}
}

// TestDestinationDownThenUp: deliveries to a destination that is down fail
// and wait for their backoff; once it is up they go through without anyone
// acting, each SEG once.
func TestDestinationDownThenUp(t *testing.T) {
	pipelineORT(t)
	destPort := freePort(t)
	n := startNode(t, func(c *config.Config) {
		withPipeline(config.Peer{AETitle: "STORESCP", Host: "127.0.0.1", Port: destPort})(c)
		c.Pipeline.DeliveryRetry = config.Retry{MaxAttempts: 50, Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	})
	files := []string{
		testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"),
		testutil.SharedData(t, "dicom", "wrapped", "OP_drishti-gs1_drishtiGS_012.dcm"),
		testutil.SharedData(t, "dicom", "US", "wg04_US1_UNC.dcm"),
	}
	storescu(t, n.port, files)
	// Down: every delivery has failed at least twice.
	waitFor(t, "failed delivery attempts", time.Minute, func() bool {
		queue, err := datadir.OpenQueue(context.Background(), n.dataDir)
		if err != nil {
			t.Fatal(err)
		}
		defer queue.Close()
		admin, err := pipeline.NewAdmin(queue)
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := admin.List(context.Background(), nil, []string{pipeline.KindDeliver}, 100)
		if err != nil {
			t.Fatal(err)
		}
		failing := 0
		for _, j := range jobs {
			if j.Attempt >= 2 && j.LastError != "" {
				failing++
			}
		}
		return failing == len(files)
	})
	// Up.
	destDir := t.TempDir()
	startStorescpOn(t, destDir, destPort)
	waitFor(t, "every delivery", time.Minute, func() bool {
		c := jobCounts(t, n.dataDir)
		return c["deliver/completed"] == len(files) && jobsSettled(c)
	})
	got := receivedSEGs(t, destDir)
	for _, f := range files {
		if uid := readMeta(t, f).MediaStorageSOPInstanceUID; len(got[uid]) != 1 {
			t.Errorf("%s: %d SEGs at the destination, want 1", f, len(got[uid]))
		}
	}
}
