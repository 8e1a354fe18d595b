package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/testutil"
)

// buildEspnode builds the espnode binary into dir.
func buildEspnode(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "espnode")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// copiesWithNewUIDs writes n copies of src with fresh SOP Instance UIDs
// (DCMTK dcmodify -gin), as n instances of one series.
func copiesWithNewUIDs(t *testing.T, src string, n int) []string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := make([]string, n)
	for i := range files {
		files[i] = filepath.Join(dir, fmt.Sprintf("i%03d.dcm", i))
		if err := os.WriteFile(files[i], data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tool := testutil.Tool(t, "dcmodify", "dcmtk")
	args := append([]string{"-nb", "-gin", "-i", "(0020,0013)=1"}, files...)
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("dcmodify: %v\n%s", err, out)
	}
	return files
}

// nodeProcess is espnode serve as a child process that the test kills.
type nodeProcess struct {
	t       *testing.T
	bin     string
	cfgFile string
	addr    string
	logs    *os.File
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
}

func (p *nodeProcess) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, "serve", "--config", p.cfgFile)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *nodeProcess) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop ends the process gracefully (SIGTERM), killing it if it hangs.
func (p *nodeProcess) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		p.t.Error("espnode did not stop within 20 s of SIGTERM")
		p.kill()
	}
}

// sendAll sends every file with C-STORE over as few associations as the
// kills allow: a failed send is retried once the node listens again, as a
// modality would. It returns the SOP Instance UIDs answered Success.
func sendAll(t *testing.T, addr string, files []string) (succeeded []string, retries int) {
	t.Helper()
	ctx := context.Background()
	var c *dimse.Client
	for _, f := range files {
		// A restart under load can take seconds; a node that never comes
		// back is what this bounds.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not stored within 2 minutes", f)
			}
			if c == nil {
				meta := readMeta(t, f)
				var err error
				c, err = dimse.Dial(ctx, addr, dimse.ClientConfig{CallingAE: "CRASHTEST", CalledAE: "ESPNODE",
					Contexts: []dimse.PresentationContextRQ{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}}})
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
			}
			st, err := storeFile(ctx, c, f)
			if err == nil && st.Code == dimse.StatusSuccess {
				succeeded = append(succeeded, readMeta(t, f).MediaStorageSOPInstanceUID)
				break
			}
			if err == nil {
				t.Fatalf("%s: status %s", f, st)
			}
			retries++
			_ = c.Abort()
			c = nil
		}
	}
	if c != nil {
		_ = c.Release(ctx)
	}
	return succeeded, retries
}

func storeFile(ctx context.Context, c *dimse.Client, path string) (dimse.Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return dimse.Status{}, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		return dimse.Status{}, err
	}
	return c.Store(ctx, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID, br)
}

// TestKill9DuringSend: espnode is killed with SIGKILL at random moments while
// 200 instances arrive and while their jobs run, and restarted each time.
// Every instance that got Success has its SEG delivered, and the destination
// holds exactly one SEG per source.
func TestKill9DuringSend(t *testing.T) {
	pipelineORT(t)
	dir := t.TempDir()
	bin := buildEspnode(t, dir)
	src := testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm")
	files := copiesWithNewUIDs(t, src, 200)

	destDir := t.TempDir()
	destPort := startStorescp(t, destDir)
	port := freePort(t)
	dataDir := filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`ae_title: ESPNODE
data_dir: %s
dicom: {host: 127.0.0.1, port: %d}
pipeline:
  workers: 1
  poll_interval: 100ms
  segment_retry: {max_attempts: 5, initial: 100ms, max: 500ms}
  delivery_retry: {max_attempts: 10, initial: 100ms, max: 1s}
  destinations: [{ae_title: STORESCP, host: 127.0.0.1, port: %d}]
model: {provider: cpu, threads: 1}
http: {addr: "", viewer: {addr: ""}}
log: {level: info, format: json}
`, dataDir, port, destPort)
	cfgFile := filepath.Join(dir, "espnode.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "espnode.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	node := &nodeProcess{t: t, bin: bin, cfgFile: cfgFile, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), logs: logs}
	node.start()
	t.Cleanup(func() {
		node.kill()
		if t.Failed() {
			if b, err := os.ReadFile(logs.Name()); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("espnode log (last 40 lines):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill schedule seed %d", seed)
	// Kill during the send at random moments, until it is over.
	sendDone := make(chan struct{})
	killerDone := make(chan int)
	go func() {
		kills := 0
		for {
			select {
			case <-sendDone:
				killerDone <- kills
				return
			case <-time.After(time.Duration(100+rng.IntN(500)) * time.Millisecond):
			}
			node.kill()
			kills++
			node.start()
		}
	}()
	succeeded, retries := sendAll(t, node.addr, files)
	close(sendDone)
	kills := <-killerDone
	if len(succeeded) != len(files) {
		t.Fatalf("%d of %d instances got Success", len(succeeded), len(files))
	}
	// Then kill twice more while the queue works through the jobs.
	for range 2 {
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		node.kill()
		kills++
		node.start()
	}
	t.Logf("%d kills; %d sends retried after a kill", kills, retries)

	want := map[string]bool{}
	for _, uid := range succeeded {
		want[uid] = true
	}
	var got map[string][]string
	waitFor(t, "a SEG per instance at storescp", 5*time.Minute, func() bool {
		got = receivedSEGs(t, destDir)
		for uid := range want {
			if len(got[uid]) == 0 {
				return false
			}
		}
		return true
	})
	// Stop gracefully: no delivery can be in flight when the destination is
	// inspected for duplicates.
	node.stop()
	got = receivedSEGs(t, destDir)
	segFiles := map[string]bool{}
	for uid := range want {
		if len(got[uid]) != 1 {
			t.Errorf("instance %s: %d SEGs at the destination, want 1: %v", uid, len(got[uid]), got[uid])
		}
		for _, p := range got[uid] {
			segFiles[p] = true
		}
	}
	for uid, paths := range got {
		if !want[uid] {
			t.Errorf("SEG for an instance that was never answered Success: %s %v", uid, paths)
		}
	}
	entries, err := os.ReadDir(destDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("destination holds %d files, want %d (one SEG per instance)", len(entries), len(want))
	}
	b, err := os.ReadFile(logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarts that requeued running jobs: %d", strings.Count(string(b), "requeued jobs left running"))
}
