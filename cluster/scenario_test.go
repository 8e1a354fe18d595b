package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/onnx"
)

const (
	// associations is how many modalities send at once through the load balancer.
	associations      = 6
	instancesPerAssoc = 100
)

// routedAt are where in each association an instance goes to segmentation (endoscopy), as
// shares of the association: just before the database restart and just before the kill, so
// that segmentation and delivery jobs are queued or running when they happen. The rest are small Secondary Captures that no channel takes, so
// the run is about the cluster and not the CPU's inference.
var routedAt = []float64{0.30, 0.62}

// instance is one file the test sends, with the UIDs it is found by.
type instance struct {
	file, study, series, sop string
	routed                   bool
}

// TestClusterScenario is issue 14's scenario: 600 instances over six associations through
// HAProxy onto the nodes, one node killed with SIGKILL in the middle of it and restarted, the
// index's PostgreSQL restarted once in the middle. Afterwards every acknowledged instance is in
// the archive once and indexed once, each routed instance has exactly one SEG, and each SEG
// reached the storescp destination (deliveries are at least once: duplicates are counted).
func TestClusterScenario(t *testing.T) {
	onnxRuntime(t)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { scenario(t, e.start(t)) })
	}
}

func scenario(t *testing.T, be backend) {
	t.Logf("engines: %s", be.describe())
	lists, byFile := scenarioData(t)
	destDir := t.TempDir()
	destPort := startStorescp(t, destDir)

	st := be.newStorage(t)
	nodes, lb := startCluster(t, be.roles(), destPort, st)

	var acked sync.Map
	var ackCount, lastAck atomic.Int64
	total := int64(len(byFile))
	onAck := func(f string) {
		if _, dup := acked.LoadOrStore(f, true); !dup {
			ackCount.Add(1)
			lastAck.Store(time.Now().UnixNano())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	storescuLog := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("storescu log (last 4000 bytes):\n%s", tailString(storescuLog.String(), 4000))
		}
	})
	start := time.Now()
	wait := startSenders(ctx, lb.addr(), lists, storescuLog, onAck)

	// The failures happen in the middle of the sends however fast the machine is: the database
	// restart just after the first routed instance of every association (routedAt), the kill
	// once half the instances are acknowledged and a job runs. The database restart comes first:
	// it is over in a moment, where a node's restart (model load, migrations checked) can
	// outlast the rest of the sends.
	victim := nodes[len(nodes)/2]
	at := func(share float64) int64 { return int64(share * float64(total)) }
	var timeline []string
	events := []struct {
		at   int64
		name string
		do   func()
	}{
		{at(routedAt[0] + 0.02), "restart the index's database", func() {
			if !be.restartIndex(t) {
				t.Logf("%s: no database server to restart", be.describe())
			}
		}},
		{at(0.5), "kill -9 " + victim.name, func() {
			// At the first moment one of its jobs runs: the routed instances at routedAt[1]
			// queue segmentations, then deliveries, on the victim's worker (the only one).
			running := false
			for deadline := time.Now().Add(10 * time.Second); !running && time.Now().Before(deadline); {
				running = strings.Contains(victim.jobs("--state", "running"), " running ")
			}
			timeline[len(timeline)-1] += fmt.Sprintf(", a job running: %v", running)
			victim.kill()
			// Long enough for the load balancer to mark it down and send new associations
			// elsewhere; its running jobs come back through River's rescuer (a shared queue)
			// or at its next start (SQLite).
			time.Sleep(time.Second)
			if err := victim.start(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, ev := range events {
		for ackCount.Load() < ev.at && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		timeline = append(timeline, fmt.Sprintf("%s at %d of %d acknowledged (%.1fs)", ev.name, ackCount.Load(), total, time.Since(start).Seconds()))
		ev.do()
		timeline[len(timeline)-1] += fmt.Sprintf(", done at %d", ackCount.Load())
	}
	senders, errs := wait()
	for _, err := range errs {
		t.Error(err)
	}
	// The events may outlast the sends (the kill waits for a running job); the sends ended with
	// their last acknowledgement.
	sent := time.Unix(0, lastAck.Load()).Sub(start)
	runs, refused := 0, map[string]int{}
	for _, s := range senders {
		runs += s.runs
		for status, n := range s.refused {
			refused[status] += n
		}
	}
	t.Logf("%d of %d instances acknowledged in %.1fs over %d associations (%d beyond the first %d: resends after a failure); C-STORE responses not Success: %v",
		ackCount.Load(), total, sent.Seconds(), runs, runs-len(senders), len(senders), refused)
	for _, l := range timeline {
		t.Log(l)
	}
	if t.Failed() {
		t.FailNow()
	}
	if ackCount.Load() != total {
		t.Fatalf("%d of %d acknowledged", ackCount.Load(), total)
	}

	var routed []instance
	bySOPSent := map[string]bool{}
	for _, in := range byFile {
		bySOPSent[in.sop] = true
		if in.routed {
			routed = append(routed, in)
		}
	}
	var segs map[string][]receivedSEG
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		segs = receivedSEGs(t, destDir)
		var missing []string
		for _, in := range routed {
			if len(segs[in.sop]) == 0 {
				missing = append(missing, in.sop)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			jobs := nodes[0].jobs()
			stuck := ""
			if n := strings.Count(jobs, " running "); n > 0 {
				// Nothing is slow here: a job still running is one whose node died with it.
				stuck = fmt.Sprintf(" (%d jobs still running, long past the rescue threshold: a dead node's jobs were not taken back)", n)
			}
			t.Fatalf("after 2 minutes %d of %d routed instances have no SEG at storescp%s: %v\nthe cluster's jobs (espnode jobs list on %s):\n%s",
				len(missing), len(routed), stuck, missing, nodes[0].name, jobs)
		}
	}
	t.Logf("every routed instance's SEG reached storescp %.1fs after the sends ended", time.Since(start.Add(sent)).Seconds())

	// Indexed once: C-FIND through the load balancer, series by series.
	series := map[[2]string]bool{}
	for _, in := range byFile {
		series[[2]string{in.study, in.series}] = true
	}
	for _, list := range segs {
		for _, s := range list {
			series[[2]string{s.study, s.series}] = true
		}
	}
	matches := map[string]int{}
	for s := range series {
		for _, uid := range findInstances(t, lb.addr(), s[0], s[1]) {
			matches[uid]++
		}
	}

	// The queue settles: a job the killed node was running when it died (its SEG may have been
	// delivered already) is taken back by the rescuer or the node's next start, and finishes.
	var jobs string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		jobs = nodes[0].jobs("--state", "running,available,retryable")
		if !strings.Contains(jobs, " running ") && !strings.Contains(jobs, " available ") && !strings.Contains(jobs, " retryable ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two minutes after the SEGs arrived the queue still has unfinished jobs: a dead node's jobs were not taken back\n%s", jobs)
		}
		time.Sleep(time.Second)
	}
	t.Logf("the queue settled %.1fs after the sends ended", time.Since(start.Add(sent)).Seconds())
	jobs = nodes[0].jobs()
	t.Logf("jobs: %d rescued from a dead node by River's rescuer, %d retried after an error, %d dead letters (espnode jobs list)",
		strings.Count(jobs, "Stuck job rescued"), strings.Count(jobs, " retryable ")+strings.Count(jobs, "2/"), strings.Count(jobs, " discarded "))

	// Stopped gracefully, no delivery is in flight when the destination is counted; the load
	// balancer first, so that its log ends with the sends.
	lb.stop()
	for _, n := range nodes {
		n.stop()
	}
	segs = receivedSEGs(t, destDir)
	objects := st.objects(t, nodes)
	bySOP := objectsBySOP(objects)

	for _, in := range byFile {
		if bySOP[in.sop] != 1 {
			t.Errorf("%s (acknowledged): %d objects in the archive, want 1", in.sop, bySOP[in.sop])
		}
		if matches[in.sop] != 1 {
			t.Errorf("%s (acknowledged): %d C-FIND matches, want 1", in.sop, matches[in.sop])
		}
	}
	segUIDs := map[string]bool{}
	deliveries, duplicates := 0, 0
	for _, in := range routed {
		distinct := map[string]bool{}
		for _, s := range segs[in.sop] {
			distinct[s.sop] = true
			segUIDs[s.sop] = true
		}
		deliveries += len(segs[in.sop])
		duplicates += len(segs[in.sop]) - len(distinct)
		if len(distinct) != 1 {
			t.Errorf("routed %s: %d distinct SEGs reached storescp, want 1: %v", in.sop, len(distinct), segs[in.sop])
		}
	}
	for uid := range segUIDs {
		if bySOP[uid] != 1 {
			t.Errorf("SEG %s: %d objects in the archive, want 1", uid, bySOP[uid])
		}
		if matches[uid] != 1 {
			t.Errorf("SEG %s: %d C-FIND matches, want 1", uid, matches[uid])
		}
	}
	for uid, list := range segs {
		if _, ok := bySOPSent[uid]; !ok {
			t.Errorf("SEGs at storescp for %s, which the test never sent: %v", uid, list)
		}
	}
	if want := len(byFile) + len(segUIDs); len(objects) != want {
		var extra []string
		for k := range objects {
			if uid := strings.TrimSuffix(filepath.Base(k), ".dcm"); !bySOPSent[uid] && !segUIDs[uid] {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		t.Errorf("the archive holds %d objects, want %d (the instances and one SEG each routed); not accounted for: %v", len(objects), want, extra)
	}
	t.Logf("%d routed instances, %d SEG deliveries at storescp, %d of them duplicates (delivery is at least once)", len(routed), deliveries, duplicates)
	requeued := 0
	for _, n := range nodes {
		requeued += n.logCount("requeued jobs left running")
	}
	t.Logf("nodes: %s started %d times; %d starts requeued jobs a killed process left running", victim.name, victim.starts, requeued)
	for _, l := range strings.Split(lb.out.String(), "\n") {
		if strings.Contains(l, " is DOWN") || strings.Contains(l, " is UP") {
			t.Logf("haproxy: %s", l)
		}
	}
}

// scenarioData writes the scenario's instances: per association, 64x64 Secondary Captures
// (bench/ingest/gen) and, at routedAt, copies of an endoscopy image, each instance with its own
// SOP Instance UID (dcmodify -gin).
func scenarioData(t *testing.T) ([][]string, map[string]instance) {
	t.Helper()
	dir := t.TempDir()
	sc := secondaryCaptures(t, associations*(instancesPerAssoc-len(routedAt)), filepath.Join(dir, "sc"))
	src, err := os.ReadFile(testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	routed := make([]string, associations*len(routedAt))
	for i := range routed {
		routed[i] = filepath.Join(dir, fmt.Sprintf("es%02d.dcm", i))
		if err := os.WriteFile(routed[i], src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tool := testutil.Tool(t, "dcmodify", "dcmtk")
	if out, err := exec.Command(tool, append([]string{"-nb", "-gin"}, routed...)...).CombinedOutput(); err != nil {
		t.Fatalf("dcmodify: %v\n%s", err, out)
	}
	byFile := map[string]instance{}
	for _, f := range append(sc, routed...) {
		in := readInstance(t, f)
		byFile[f] = in
	}
	for _, f := range routed {
		in := byFile[f]
		in.routed = true
		byFile[f] = in
	}
	lists := make([][]string, associations)
	per := instancesPerAssoc - len(routedAt)
	for i := range lists {
		list := append([]string(nil), sc[i*per:(i+1)*per]...)
		for j, share := range routedAt {
			at := int(share * instancesPerAssoc)
			list = slices.Insert(list, at, routed[i*len(routedAt)+j])
		}
		lists[i] = list
	}
	return lists, byFile
}

// secondaryCaptures writes n 64x64 Secondary Captures of one series with bench/ingest/gen, each
// with its own SOP Instance UID, and returns their paths.
func secondaryCaptures(tb testing.TB, n int, dir string) []string {
	tb.Helper()
	if out, err := exec.Command(bins.gen, "-n", fmt.Sprint(n), "-side", "64", "-out", dir).CombinedOutput(); err != nil {
		tb.Fatalf("gen: %v\n%s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if err != nil || len(files) != n {
		tb.Fatalf("gen wrote %d files, want %d (%v)", len(files), n, err)
	}
	return files
}

// startCluster starts a node of each role on the storage, at once (several nodes starting
// together run the index's migrations together, as a rollout would), and HAProxy in front.
func startCluster(tb testing.TB, roles []string, destPort int, st storage) ([]*node, *haproxy) {
	tb.Helper()
	nodes := make([]*node, len(roles))
	ports := make([]int, len(roles))
	for i, role := range roles {
		nodes[i] = newNode(tb, fmt.Sprintf("node%d", i), role, destPort, st.env)
		ports[i] = nodes[i].port
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			if errs[i] = n.start(); errs[i] == nil {
				errs[i] = n.waitReady(2 * time.Minute)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	return nodes, startHAProxy(tb, ports)
}

func readInstance(t *testing.T, path string) instance {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ds, err := dcm.ReadDataSet(br, meta.TransferSyntaxUID, dcm.ParseOptions{Keep: dcm.NewTagSet(dcm.StudyInstanceUID, dcm.SeriesInstanceUID)})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return instance{file: path, sop: meta.MediaStorageSOPInstanceUID,
		study: ds.String(dcm.StudyInstanceUID), series: ds.String(dcm.SeriesInstanceUID)}
}

// startStorescp runs DCMTK's storescp as the SEGs' destination. +uf gives every object received
// a file of its own, so that a SEG delivered twice shows as two files.
func startStorescp(t testing.TB, dir string) int {
	t.Helper()
	bin := testutil.Tool(t, "storescp", "dcmtk")
	port := freePort(t)
	cmd := exec.Command(bin, "-aet", "STORESCP", "+xa", "+uf", "-od", dir, fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start storescp: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("storescp output:\n%s", tailString(out.String(), 4000))
		}
	})
	if err := waitListening(port, 10*time.Second, exited); err != nil {
		t.Fatalf("storescp: %v\n%s", err, out.String())
	}
	return port
}

// receivedSEG is one SEG file storescp wrote.
type receivedSEG struct {
	file, study, series, sop string
}

// receivedSEGs decodes the SEG files at the destination, by the SOP Instance UID of each source
// they reference.
func receivedSEGs(t *testing.T, dir string) map[string][]receivedSEG {
	t.Helper()
	out := map[string][]receivedSEG{}
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
			out[uid] = append(out[uid], receivedSEG{file: e.Name(), study: s.StudyInstanceUID, series: s.SeriesInstanceUID, sop: s.SOPInstanceUID})
		}
	}
	return out
}

// findInstances asks the node at addr, with espnode find (C-FIND at IMAGE level), for the SOP
// Instance UIDs of a series; a UID indexed twice would come twice.
func findInstances(t *testing.T, addr, study, series string) []string {
	t.Helper()
	cmd := exec.Command(bins.espnode, "find", "--called-ae", "ESPNODE", "--level", "IMAGE", "--json",
		"-k", "StudyInstanceUID="+study, "-k", "SeriesInstanceUID="+series, "-k", "SOPInstanceUID", addr)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("espnode find %s/%s: %v\n%s", study, series, err, msg)
	}
	var uids []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("espnode find: %q: %v", line, err)
		}
		uids = append(uids, m["SOPInstanceUID"])
	}
	return uids
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// onnxRuntime points the nodes at the tree's ONNX Runtime unless the environment names one.
func onnxRuntime(tb testing.TB) {
	tb.Helper()
	if os.Getenv(onnx.LibraryEnv) != "" {
		return
	}
	lib := filepath.Join(testutil.RepoRoot(tb), "third_party", "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(lib); err != nil {
		tb.Fatalf("ONNX Runtime not found at %s: run scripts/deps.sh run", lib)
	}
	tb.Setenv(onnx.LibraryEnv, lib)
}

// engines are the backends the scenario runs on, each in a subtest; the benchmark measures the
// last.
var engines = []struct {
	name  string
	start func(testing.TB) backend
}{
	{"sqlite-file", func(testing.TB) backend { return localBackend{} }},
	{"postgres-s3", func(tb testing.TB) backend { return newSharedBackend(tb) }},
}
