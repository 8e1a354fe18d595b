package pipeline

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// testEngine opens the shipped model on the CPU.
func testEngine(t *testing.T) *onnx.Engine {
	t.Helper()
	if os.Getenv(onnx.LibraryEnv) == "" {
		lib := filepath.Join(testutil.RepoRoot(t), "third_party", "onnxruntime", "libonnxruntime.so.1")
		if _, err := os.Stat(lib); err != nil {
			t.Fatalf("ONNX Runtime not found at %s: run scripts/deps.sh run", lib)
		}
		t.Setenv(onnx.LibraryEnv, lib)
	}
	path, err := segment.WriteShippedModel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := onnx.OpenUniversal(path, onnx.Options{Provider: onnx.ProviderCPU, Threads: 1, MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type testNode struct {
	dir string
	st  *store.Store
	pl  *Pipeline
}

// testRouting is the routing of the tests: each modality they send to its channel.
func testRouting() []Route {
	return []Route{
		{Channel: "dermoscopy", Modality: []string{"DMS", "XC"}},
		{Channel: "xray", Modality: []string{"CR", "DX"}},
		{Channel: "ultrasound", Modality: []string{"US"}},
		{Channel: "fundus", Modality: []string{"OP"}},
		{Channel: "microscopy", Modality: []string{"SM", "GM"}},
		{Channel: "colonoscopy", Modality: []string{"ES"}},
	}
}

// testConfig is a pipeline configuration with quick retries.
func testConfig() Config {
	return Config{
		SeriesIdle:     500 * time.Millisecond,
		PollInterval:   50 * time.Millisecond,
		SegmentRetry:   Retry{MaxAttempts: 2, Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond},
		DeliveryRetry:  Retry{MaxAttempts: 3, Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond},
		DeliverTimeout: 2 * time.Minute,
		ReplyToSender:  true,
		Routing:        testRouting(),
	}
}

// queueOf returns the queue under a store.
func queueOf(t *testing.T, st *store.Store) store.Queue {
	t.Helper()
	q, ok := st.Queue()
	if !ok {
		t.Fatal("store without a queue")
	}
	return q
}

// indexDB opens the index database of a data directory beside the store, for tests that must
// put the queue's tables in a state only a crash leaves.
func indexDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, datadir.IndexFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startPipeline opens a store and a pipeline over it with quick retries.
func startPipeline(t *testing.T, dir string, mutate func(*Config), engine *onnx.Engine) *testNode {
	t.Helper()
	return startPipelineWithPeers(t, dir, mutate, engine, nil)
}

// startPipelineWithPeers is startPipeline with an AE table.
func startPipelineWithPeers(t *testing.T, dir string, mutate func(*Config), engine *onnx.Engine, peers []Peer) *testNode {
	t.Helper()
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	st, err := datadir.Open(ctx, datadir.Options{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	pl, err := New(ctx, Options{Store: st, Config: cfg, Peers: peers, AETitle: "ESPNODE", Logger: log})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := pl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if engine != nil {
		if err := pl.EnableSegmentation(segment.New(engine), 2); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pl.Stop(sctx)
		st.Close()
	})
	return &testNode{dir: dir, st: st, pl: pl}
}

// putFile stores a Part-10 file through the pipeline as a C-STORE would.
func putFile(t *testing.T, pl *Pipeline, path, callingAE string) store.Instance {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := pl.Put(context.Background(), store.PutRequest{
		SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID, CallingAE: callingAE, CalledAE: "ESPNODE", Data: br,
	})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeDestination is a Storage SCP that fails the first failures C-STOREs
// (0xA700, out of resources) and then stores: a destination down, then up,
// without timing.
type fakeDestination struct {
	addr     string
	mu       sync.Mutex
	failures int
	received map[string]int // SOP Instance UID -> times stored
	calls    int
	conns    []net.Conn // every association's connection, in the order accepted
}

// countingListener records the connections it accepts, so that a test can count associations
// and cut them.
type countingListener struct {
	net.Listener
	d *fakeDestination
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.d.mu.Lock()
		l.d.conns = append(l.d.conns, c)
		l.d.mu.Unlock()
	}
	return c, err
}

// associations returns how many associations the destination has accepted.
func (d *fakeDestination) associations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// cut closes every accepted connection, as a destination that ends idle associations does.
func (d *fakeDestination) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.Close()
	}
}

func startFakeDestination(t *testing.T, failures int) *fakeDestination {
	t.Helper()
	d := &fakeDestination{failures: failures, received: map[string]int{}}
	mux := dimse.NewServeMux()
	mux.HandleFunc("", dimse.FieldCStoreRQ, func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		rq := r.Command.(*dimse.CStoreRQ)
		_, _ = io.Copy(io.Discard, r.Data)
		d.mu.Lock()
		d.calls++
		st := dimse.Status{Code: dimse.StatusSuccess}
		if d.calls <= d.failures {
			st = dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "disk full"}
		} else {
			d.received[rq.AffectedSOPInstanceUID]++
		}
		d.mu.Unlock()
		_ = w.Respond(&dimse.CStoreRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
			AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID, Status: st}, nil)
	})
	srv := &dimse.Server{
		Policy: dimse.Policy{AETitle: "DEST", TransferSyntaxes: func(context.Context, string) []string {
			return []string{dimse.ExplicitVRLittleEndian, dimse.ImplicitVRLittleEndian}
		}},
		Handler: mux,
		Logger:  zerolog.Nop(),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, countingListener{ln, d}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func (d *fakeDestination) peer(t *testing.T) Peer {
	host, port, _ := net.SplitHostPort(d.addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return Peer{AETitle: "DEST", Host: host, Port: p}
}

func (d *fakeDestination) stored() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.received)
}

func jobsByState(t *testing.T, st *store.Store) map[string]int {
	t.Helper()
	c, err := queueOf(t, st).JobCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for k, n := range c {
		out[strings.TrimPrefix(k.Kind, "espnode.")+"/"+string(k.State)] = n
	}
	return out
}

// TestJobCreatedWithTheInstance: a routed instance has exactly one job from
// the moment Put returns (before any worker runs: none is started here), an
// unrouted one has none and is still stored.
func TestJobCreatedWithTheInstance(t *testing.T) {
	n := startPipeline(t, t.TempDir(), nil, nil) // no model: jobs wait
	putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "OP_drishti-gs1_drishtiGS_012.dcm"), "SCU")
	ct := putFile(t, n.pl, testutil.SharedData(t, "dicom", "CT", "wg04_CT1_UNC.dcm"), "SCU")
	if got := jobsByState(t, n.st); !maps.Equal(got, map[string]int{"segment/available": 1}) {
		t.Errorf("jobs %v, want one available segmentation job", got)
	}
	if _, err := n.st.Get(context.Background(), ct.SOPInstanceUID); err != nil {
		t.Errorf("unrouted instance not stored: %v", err)
	}
	if err := n.pl.Ready(); err == nil || !strings.Contains(err.Error(), "segmentation jobs wait") {
		t.Errorf("Ready without a model: %v", err)
	}
}

// TestDeliveryRetriesUntilTheDestinationAccepts: a destination that fails
// twice gets the SEG on the third attempt, once; a rerun of the segmentation
// job replaces the SEG (same UID) and does not deliver it again.
func TestDeliveryRetriesUntilTheDestinationAccepts(t *testing.T) {
	dest := startFakeDestination(t, 2)
	n := startPipeline(t, t.TempDir(), func(c *Config) {
		c.Destinations = []Peer{dest.peer(t)}
		c.DeliveryRetry.MaxAttempts = 5
	}, testEngine(t))
	putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"), "SCU")
	waitUntil(t, "the delivery", time.Minute, func() bool {
		return jobsByState(t, n.st)["deliver/completed"] == 1
	})
	got := dest.stored()
	if len(got) != 1 {
		t.Fatalf("destination holds %v, want one SEG", got)
	}
	var segUID string
	for uid, times := range got {
		segUID = uid
		if times != 1 {
			t.Errorf("SEG %s stored %d times", uid, times)
		}
	}
	dest.mu.Lock()
	calls := dest.calls
	dest.mu.Unlock()
	if calls != 3 {
		t.Errorf("%d C-STOREs, want 3 (two failures, then success)", calls)
	}
	seg, err := n.st.Get(context.Background(), segUID)
	if err != nil {
		t.Fatalf("delivered SEG not in the archive: %v", err)
	}

	// Rerun the completed segmentation job, as an operator's retry would.
	admin, err := NewAdmin(queueOf(t, n.st))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := admin.List(context.Background(), nil, []string{KindSegment}, 10)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("segment jobs %v (%v)", jobs, err)
	}
	if err := admin.Retry(context.Background(), []int64{jobs[0].ID}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the rerun", time.Minute, func() bool {
		again, err := n.st.Get(context.Background(), segUID)
		return err == nil && again.ReceivedAt.After(seg.ReceivedAt)
	})
	waitUntil(t, "the rerun's job to complete", time.Minute, func() bool {
		return jobsByState(t, n.st)["segment/completed"] == 1
	})
	_, _, _, instances, _ := n.st.Counts(context.Background())
	if instances != 2 {
		t.Errorf("%d instances in the archive, want the source and one SEG", instances)
	}
	if got := jobsByState(t, n.st); got["deliver/completed"] != 1 || len(got) != 2 {
		t.Errorf("jobs after the rerun %v, want no second delivery", got)
	}
	if got := dest.stored(); got[segUID] != 1 || len(got) != 1 {
		t.Errorf("destination after the rerun: %v", got)
	}
}

// TestDeliveriesReuseTheAssociation: SEGs for one destination go over one association kept open
// between them; when the destination has closed it while idle, the next delivery succeeds on a new
// one without a failed attempt.
func TestDeliveriesReuseTheAssociation(t *testing.T) {
	dest := startFakeDestination(t, 0)
	n := startPipeline(t, t.TempDir(), func(c *Config) {
		c.Destinations = []Peer{dest.peer(t)}
	}, testEngine(t))
	for _, f := range []string{"ES_polypgen_C3_EndoCV2021_00428.dcm", "GM_gbm40_gbm40_25.dcm", "OP_drive_drive_05.dcm"} {
		putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", f), "SCU")
	}
	waitUntil(t, "three deliveries", time.Minute, func() bool {
		return jobsByState(t, n.st)["deliver/completed"] == 3
	})
	if got := dest.associations(); got != 1 {
		t.Errorf("three deliveries over %d associations, want 1", got)
	}

	dest.cut()
	putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD008.dcm"), "SCU")
	waitUntil(t, "the delivery after the cut", time.Minute, func() bool {
		return jobsByState(t, n.st)["deliver/completed"] == 4
	})
	if got := dest.associations(); got != 2 {
		t.Errorf("%d associations after the destination closed the first, want 2", got)
	}
	if got := len(dest.stored()); got != 4 {
		t.Errorf("destination holds %d SEGs, want 4", got)
	}
	admin, err := NewAdmin(queueOf(t, n.st))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := admin.List(context.Background(), nil, []string{KindDeliver}, 10)
	if err != nil || len(jobs) != 4 {
		t.Fatalf("delivery jobs %v (%v), want 4", jobs, err)
	}
	for _, j := range jobs {
		if j.Attempt != 1 || j.LastError != "" {
			t.Errorf("delivery job %d: attempt %d, last error %q; want one attempt: a closed idle association is not a failure", j.ID, j.Attempt, j.LastError)
		}
	}
}

func TestRouter(t *testing.T) {
	r := NewRouter(append([]Route{
		{Channel: channel.None, CallingAE: []string{"TEACHING"}},
		{Channel: "xray", Modality: []string{"CR"}, BodyPartExamined: []string{"chest"}, ImageType: []string{"PRIMARY"}},
		{Channel: "microscopy", SOPClassUID: []string{"1.2.840.10008.5.1.4.1.1.77.1.6"}},
	}, testRouting()...))
	tests := []struct {
		name string
		inst store.Instance
		want string
		ok   bool
	}{
		{"table ES", store.Instance{Modality: "ES"}, "colonoscopy", true},
		{"table XC", store.Instance{Modality: "XC"}, "dermoscopy", true},
		{"table DMS", store.Instance{Modality: "DMS"}, "dermoscopy", true},
		{"table DX", store.Instance{Modality: "DX"}, "xray", true},
		{"table OP", store.Instance{Modality: "OP"}, "fundus", true},
		{"table GM", store.Instance{Modality: "GM"}, "microscopy", true},
		{"table US, case", store.Instance{Modality: "us"}, "ultrasound", true},
		{"unrouted CT", store.Instance{Modality: "CT"}, "", false},
		{"calling AE says none", store.Instance{Modality: "ES", CallingAE: "TEACHING"}, "", false},
		{"chest rule: image type value", store.Instance{Modality: "CR", BodyPartExamined: "CHEST", ImageType: `ORIGINAL\PRIMARY`}, "xray", true},
		{"SOP class rule before modality", store.Instance{Modality: "SC", SOPClassUID: "1.2.840.10008.5.1.4.1.1.77.1.6"}, "microscopy", true},
	}
	for _, tt := range tests {
		got, _, ok := r.Route(tt.inst)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: Route = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	// A CR that is not a chest falls through the chest rule to the table's.
	if _, rule, _ := r.Route(store.Instance{Modality: "CR", BodyPartExamined: "HAND"}); rule != 4 {
		t.Errorf("CR hand matched rule %d, want 4 (the table's CR rule)", rule)
	}
}

// TestRouterAnatomy: the anatomy lists match by words; "" matches an absent value; codes match
// by scheme and value; a none rule gives its reason.
func TestRouterAnatomy(t *testing.T) {
	r := NewRouter([]Route{
		{Channel: channel.None, Modality: []string{"CR"}, ViewPosition: []string{"LL", "LATERAL"}, Reason: "lateral"},
		{Channel: "xray", Modality: []string{"CR"}, BodyPartExamined: []string{"CHEST", "LARGE INTESTINE"}},
		{Channel: "xray", Modality: []string{"CR"}, BodyPartExamined: []string{""}, AnatomicRegion: []string{"SCT:51185008"}},
		{Channel: "xray", Modality: []string{"CR"}, BodyPartExamined: []string{""}, AnatomicRegion: []string{""}, Description: []string{"CHEST"}},
		{Channel: "ultrasound", Modality: []string{"US"}, Description: []string{""}},
		{Channel: channel.None, Modality: []string{"CR", "US"}},
	})
	type inst = store.Instance
	for _, tt := range []struct {
		name         string
		inst         inst
		want, reason string
		rule         int
	}{
		{"word", inst{Modality: "CR", BodyPartExamined: "CHEST"}, "xray", "", 1},
		{"underscore", inst{Modality: "CR", BodyPartExamined: "chest_pa"}, "xray", "", 1},
		{"word last", inst{Modality: "CR", BodyPartExamined: "PA-CHEST"}, "xray", "", 1},
		{"two words", inst{Modality: "CR", BodyPartExamined: "LARGE  INTESTINE"}, "xray", "", 1},
		{"two words apart", inst{Modality: "CR", BodyPartExamined: "LARGE BOWEL INTESTINE"}, "", "rule_5", 5},
		{"not a word of it", inst{Modality: "CR", BodyPartExamined: "CHESTABDOMEN"}, "", "rule_5", 5},
		{"lateral first", inst{Modality: "CR", BodyPartExamined: "CHEST", ViewPosition: "LATERAL"}, "", "lateral", 0},
		{"code", inst{Modality: "CR", AnatomicRegion: `SRT:T-D3000\ sct : 51185008 `}, "xray", "", 2},
		{"code of another scheme", inst{Modality: "CR", AnatomicRegion: `SRT:51185008`, StudyDescription: "chest"}, "", "rule_5", 5},
		{"code with a body part", inst{Modality: "CR", BodyPartExamined: "KNEE", AnatomicRegion: `SCT:51185008`}, "", "rule_5", 5},
		{"description", inst{Modality: "CR", SeriesDescription: "Chest PA/LAT"}, "xray", "", 3},
		{"protocol", inst{Modality: "CR", ProtocolName: "CHEST"}, "xray", "", 3},
		{"description with a code", inst{Modality: "CR", AnatomicRegion: `SCT:72696002`, StudyDescription: "CHEST"}, "", "rule_5", 5},
		{"all descriptions empty", inst{Modality: "US"}, "ultrasound", "", 4},
		{"a description", inst{Modality: "US", StudyDescription: "Echo"}, "", "rule_5", 5},
		{"no rule", inst{Modality: "MR"}, "", ReasonNoRule, -1},
	} {
		d := r.Decide(tt.inst)
		if d.Channel != tt.want || d.Reason != tt.reason || d.Rule != tt.rule {
			t.Errorf("%s: %+v, want channel %q reason %q rule %d", tt.name, d, tt.want, tt.reason, tt.rule)
		}
	}
	if w := Words(" Chest_PA/lat-2 "); strings.Join(w, ",") != "CHEST,PA,LAT,2" {
		t.Errorf("Words = %q", w)
	}
}

// TestNotSegmentedCounted: an instance a none rule or no rule keeps from segmentation is
// stored, makes no job and is counted by reason.
func TestNotSegmentedCounted(t *testing.T) {
	n := startPipeline(t, t.TempDir(), func(c *Config) {
		c.Routing = []Route{{Channel: channel.None, Modality: []string{"CR"}, BodyPartExamined: []string{"EXTREMITY"}, Reason: "xray_not_chest"}}
	}, nil)
	putFile(t, n.pl, testutil.SharedData(t, "dicom", "CR", "wg04_RG3_UNC_mono1.dcm"), "SCU")
	putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "GM_gbm40_gbm40_25.dcm"), "SCU")
	if got := jobsByState(t, n.st); len(got) != 0 {
		t.Errorf("jobs %v, want none", got)
	}
	m := n.pl.metrics
	if a, b, c := promtest.ToFloat64(m.NotSegmented.WithLabelValues("xray_not_chest")), promtest.ToFloat64(m.NotSegmented.WithLabelValues(ReasonNoRule)),
		promtest.ToFloat64(m.Instances.WithLabelValues(channel.None)); a != 1 || b != 1 || c != 2 {
		t.Errorf("not segmented: xray_not_chest %v, no_rule %v; instances none %v", a, b, c)
	}
}

// TestGuardWithholdsSEG: with a model that has plausibility bounds (seg/onnx's toy: xray needs
// half the pixels foreground), an implausible instance is counted, its job completes and no SEG
// is stored or delivered; with model.reject_implausible off the SEG is stored and still counted.
func TestGuardWithholdsSEG(t *testing.T) {
	testEngine(t) // the library
	e, err := onnx.OpenUniversal(filepath.Join(testutil.RepoRoot(t), "seg", "onnx", "testdata", "toy-tiles-s64.onnx"),
		onnx.Options{Provider: onnx.ProviderCPU, Threads: 1, MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, reject := range []bool{true, false} {
		t.Run(fmt.Sprintf("reject=%v", reject), func(t *testing.T) {
			n := startPipeline(t, t.TempDir(), func(c *Config) {
				c.Routing = []Route{{Channel: "xray", Modality: []string{"OP"}}, {Channel: "fundus", Modality: []string{"GM"}}}
				c.RejectImplausible = reject
			}, e)
			putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "OP_drive_drive_05.dcm"), "SCU")
			waitUntil(t, "the job to complete", time.Minute, func() bool {
				return jobsByState(t, n.st)["segment/completed"] == 1
			})
			_, _, _, instances, _ := n.st.Counts(context.Background())
			want := map[bool]int{true: 1, false: 2}[reject]
			if instances != want {
				t.Errorf("%d instances in the archive, want %d", instances, want)
			}
			if got := promtest.ToFloat64(n.pl.metrics.Implausible.WithLabelValues("xray", onnx.ReasonFgLow)); got != 1 {
				t.Errorf("implausible xray/fg_fraction_low = %v, want 1", got)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.Delay(attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: %d distinct delays in 200, want jitter", attempt, len(seen))
		}
	}
}

func TestSEGUIDs(t *testing.T) {
	a := SEGInstanceUID("1.2.3", "xray", "m", "1")
	if a != SEGInstanceUID("1.2.3", "xray", "m", "1") {
		t.Fatal("SEG UID is not a function of source, channel and model")
	}
	for _, other := range []string{SEGInstanceUID("1.2.4", "xray", "m", "1"), SEGInstanceUID("1.2.3", "fundus", "m", "1"),
		SEGInstanceUID("1.2.3", "xray", "m", "2"), SEGSeriesUID("1.2.3", "xray", "m", "1")} {
		if other == a {
			t.Errorf("UID collision: %s", a)
		}
	}
}

// TestSegmentsStoredInstances: every frame of a multi-frame instance is
// segmented into one SEG, stored and indexed beside its source.
func TestSegmentsStoredInstances(t *testing.T) {
	n := startPipeline(t, t.TempDir(), nil, testEngine(t))
	es := putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"), "SCU")
	us := putFile(t, n.pl, testutil.SharedData(t, "dicom", "US_multiframe", "pydicom_examples_ybr_color_30fr_jpegbaseline.dcm"), "SCU")
	waitUntil(t, "two SEGs", time.Minute, func() bool {
		return jobsByState(t, n.st)["segment/completed"] == 2
	})
	md := testEngineMetadata(t)
	for _, tt := range []struct {
		inst    store.Instance
		channel string
		frames  int
	}{{es, "colonoscopy", 1}, {us, "ultrasound", 30}} {
		uid := SEGInstanceUID(tt.inst.SOPInstanceUID, tt.channel, md.ModelName, md.ModelVersion)
		rc, seg, err := n.st.Open(context.Background(), uid)
		if err != nil {
			t.Fatalf("SEG of %s: %v", tt.inst.SOPInstanceUID, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		s, err := dicomseg.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Frames) != tt.frames || s.StudyInstanceUID != tt.inst.StudyInstanceUID || seg.Modality != "SEG" {
			t.Errorf("SEG of %s: %d frames (want %d), study %s, modality %q", tt.inst.SOPInstanceUID, len(s.Frames), tt.frames, s.StudyInstanceUID, seg.Modality)
		}
		if want := SEGSeriesUID(tt.inst.SeriesInstanceUID, tt.channel, md.ModelName, md.ModelVersion); seg.SeriesInstanceUID != want {
			t.Errorf("SEG series %s, want %s", seg.SeriesInstanceUID, want)
		}
	}
}

// testEngineMetadata is the shipped model's metadata.
func testEngineMetadata(t *testing.T) *onnx.Metadata {
	t.Helper()
	e := testEngine(t)
	r, err := e.Route("colonoscopy")
	if err != nil {
		t.Fatal(err)
	}
	return r.Model.Metadata()
}

// TestRecoverRunningJobs: a job a killed process left running, and the
// queue leadership it held, are given back at the next start, and the job
// then runs to completion.
func TestRecoverRunningJobs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := datadir.Open(ctx, datadir.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := New(ctx, Options{Store: st, Config: testConfig(), AETitle: "ESPNODE"})
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, pl, testutil.SharedData(t, "dicom", "wrapped", "GM_gbm40_gbm40_25.dcm"), "SCU")
	// What SIGKILL leaves: the job running, a leader whose lease has not
	// expired. (The client was never started, so nothing else touches them.)
	db := indexDB(t, dir)
	if _, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = datetime('now')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO river_leader (elected_at, expires_at, leader_id) VALUES (datetime('now'), datetime('now', '+1 hour'), 'dead-process')`); err != nil {
		t.Fatal(err)
	}
	st.Close()

	n := startPipeline(t, dir, nil, testEngine(t))
	waitUntil(t, "the recovered job", time.Minute, func() bool {
		return jobsByState(t, n.st)["segment/completed"] == 1
	})
	// A job killed on its last attempt is a dead letter at the next start. RecoverJobs runs
	// before the client starts, so the client stops first: its own late updates of the job
	// (the completer's batch) must not race the rows this test writes.
	if err := n.pl.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = max_attempts, finalized_at = NULL`); err != nil {
		t.Fatal(err)
	}
	if got, err := queueOf(t, n.st).RecoverJobs(ctx); err != nil || got != 1 {
		t.Fatalf("RecoverJobs: %d, %v", got, err)
	}
	if got := jobsByState(t, n.st); got["segment/discarded"] != 1 {
		t.Errorf("jobs %v, want the job on its last attempt discarded", got)
	}
	var leaders int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM river_leader WHERE leader_id = 'dead-process'`).Scan(&leaders); err != nil || leaders != 0 {
		t.Errorf("the dead process's leadership is still there (%d, %v)", leaders, err)
	}
}

// seriesCopies writes n copies of src as instances 1..n of one series, each
// with a new SOP Instance UID and, when stepZ, its own slice position.
func seriesCopies(t *testing.T, src string, n int, stepZ bool) []string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tool := testutil.Tool(t, "dcmodify", "dcmtk")
	dir := t.TempDir()
	var files []string
	for i := range n {
		f := filepath.Join(dir, fmt.Sprintf("i%d.dcm", i+1))
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-nb", "-gin", "-i", fmt.Sprintf("(0020,0013)=%d", i+1)}
		if stepZ {
			args = append(args, "-m", fmt.Sprintf(`(0020,0032)=-158.1\-179.0\%d`, -75+5*i))
		}
		if out, err := exec.Command(tool, append(args, f)...).CombinedOutput(); err != nil {
			t.Fatalf("dcmodify: %v\n%s", err, out)
		}
		files = append(files, f)
	}
	return files
}

// TestSeriesMode: the instances of a series arriving within the idle window
// give one SEG over all of them; an instance arriving after it was made
// remakes it (same UID, one frame more), and it is delivered again.
func TestSeriesMode(t *testing.T) {
	dest := startFakeDestination(t, 0)
	n := startPipeline(t, t.TempDir(), func(c *Config) {
		c.SeriesMode = true
		c.Routing = []Route{{Channel: "xray", Modality: []string{"CT"}}}
		c.Destinations = []Peer{dest.peer(t)}
	}, testEngine(t))
	files := seriesCopies(t, testutil.SharedData(t, "dicom", "CT", "wg04_CT1_UNC.dcm"), 4, true)
	var insts []store.Instance
	for _, f := range files[:3] {
		insts = append(insts, putFile(t, n.pl, f, "SCU"))
	}
	if got := jobsByState(t, n.st); got["segment_series/completed"] != 0 || len(got) != 1 {
		t.Fatalf("jobs %v, want one waiting series job for three instances", got)
	}
	md := testEngineMetadata(t)
	segUID := SEGInstanceUID(insts[0].SeriesInstanceUID, "xray", md.ModelName, md.ModelVersion)
	frames := func() int {
		rc, _, err := n.st.Open(context.Background(), segUID)
		if err != nil {
			return 0
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := dicomseg.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		return len(s.Frames)
	}
	waitUntil(t, "the series SEG", time.Minute, func() bool { return dest.stored()[segUID] == 1 })
	if f := frames(); f != 3 {
		t.Errorf("series SEG has %d frames, want 3 (one per instance)", f)
	}
	insts = append(insts, putFile(t, n.pl, files[3], "SCU"))
	waitUntil(t, "the remade SEG delivered", time.Minute, func() bool { return dest.stored()[segUID] == 2 })
	if f := frames(); f != 4 {
		t.Errorf("remade series SEG has %d frames, want 4", f)
	}
	if got := dest.stored(); len(got) != 1 {
		t.Errorf("destination holds %v, want the one series SEG", got)
	}
}

// TestSeriesModePhotographs: photographs of one series share no plane
// geometry, so series mode gives each its own SEG, named as in instance mode.
func TestSeriesModePhotographs(t *testing.T) {
	n := startPipeline(t, t.TempDir(), func(c *Config) { c.SeriesMode = true }, testEngine(t))
	files := seriesCopies(t, testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"), 2, false)
	var insts []store.Instance
	for _, f := range files {
		insts = append(insts, putFile(t, n.pl, f, "SCU"))
	}
	waitUntil(t, "the series job", time.Minute, func() bool {
		return jobsByState(t, n.st)["segment_series/completed"] == 1
	})
	md := testEngineMetadata(t)
	for _, inst := range insts {
		if _, err := n.st.Get(context.Background(), SEGInstanceUID(inst.SOPInstanceUID, "colonoscopy", md.ModelName, md.ModelVersion)); err != nil {
			t.Errorf("no SEG for %s: %v", inst.SOPInstanceUID, err)
		}
	}
}

// TestReplyToSender: a sender found in the AE table gets its SEGs back at
// the table's address when reply_to_sender is on, and not when it is off;
// a sender not in the table gets nothing.
func TestReplyToSender(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			dest := startFakeDestination(t, 0)
			modality := dest.peer(t)
			modality.AETitle = "MODALITY"
			n := startPipelineWithPeers(t, t.TempDir(), func(c *Config) { c.ReplyToSender = on }, testEngine(t),
				[]Peer{{AETitle: "OTHER", Host: "192.0.2.1", Port: 104}, modality})
			putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD092.dcm"), "MODALITY")
			putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "GM_gbm40_gbm40_25.dcm"), "STRANGER")
			waitUntil(t, "both segmentations", time.Minute, func() bool {
				return jobsByState(t, n.st)["segment/completed"] == 2
			})
			want := 0
			if on {
				want = 1
				waitUntil(t, "the reply", time.Minute, func() bool {
					return jobsByState(t, n.st)["deliver/completed"] == 1
				})
			}
			if got := jobsByState(t, n.st); got["deliver/completed"] != want || len(dest.stored()) != want {
				t.Errorf("reply_to_sender %v: jobs %v, destination %v; want %d delivery", on, got, dest.stored(), want)
			}
		})
	}
}

func TestWorkers(t *testing.T) {
	if w := Workers(3, "cuda", 8); w != 3 {
		t.Errorf("configured 3: %d", w)
	}
	if w := Workers(0, "cuda", 16); w != 16 {
		t.Errorf("GPU with batch 16: %d workers, want 16 to fill a batch", w)
	}
	if w := Workers(0, "cpu", 8); w < 1 || w > 4 {
		t.Errorf("CPU: %d workers, want 1..4", w)
	}
}

// TestNoSuccessWithoutJob: when the job cannot be created, Put fails and the
// instance is not in the archive either, so no Success can be answered for
// an instance that would never be segmented.
func TestNoSuccessWithoutJob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := datadir.Open(ctx, datadir.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pl, err := New(ctx, Options{Store: st, Config: testConfig(), AETitle: "ESPNODE"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := indexDB(t, dir).ExecContext(ctx, `DROP TABLE river_job`); err != nil {
		t.Fatal(err)
	}
	src := testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm")
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pl.Put(ctx, store.PutRequest{SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID, CallingAE: "SCU", CalledAE: "ESPNODE", Data: br})
	if !errors.Is(err, store.ErrOutOfResources) {
		t.Fatalf("Put without a job table: %v, want ErrOutOfResources (answered A700)", err)
	}
	if _, err := st.Get(ctx, meta.MediaStorageSOPInstanceUID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("instance indexed although its job could not be created: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "archive", "*", "*", "*.dcm")); len(files) != 0 {
		t.Errorf("files left in the archive: %v", files)
	}
}
