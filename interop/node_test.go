// Package interop holds the peer test suite: espnode serve, built and run as a process with a
// configuration file, against DICOM implementations the rest of the tests do not use (dcmjs-dimse
// from npm, GDCM's gdcmscu) and against DCMTK over TLS. Every peer is a real program; a missing
// one fails the test with what to install (scripts/deps.sh test installs all of them).
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm/dcmtest"
	"github.com/espnode/espnode/internal/testutil"
)

// espnodeBin is the binary built once for the whole suite.
var espnodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "espnode-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	espnodeBin = filepath.Join(dir, "espnode")
	if out, err := exec.Command("go", "build", "-o", espnodeBin, "../cmd/espnode").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build espnode: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// node is espnode serve running as a child process.
type node struct {
	t       *testing.T
	port    int
	tlsPort int
	// httpPort and viewerPort are the HTTP listeners' ports when nodeOptions.http is set.
	httpPort, viewerPort int
	dataDir              string
	logs                 *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// nodeOptions are what a test adds to the node's configuration: YAML lines under dicom: (where
// {tls_port} stands for the TLS port, chosen when tlsPort is set), the peers list (YAML flow
// sequence items), YAML lines under http: (where {http_port} and {viewer_port} stand for ports
// chosen for them; without any the HTTP listeners are off), and YAML lines for the top level
// (pipeline:, model: ...) in place of the storage-only defaults.
type nodeOptions struct {
	dicom   string
	peers   []string
	tlsPort bool
	http    string
	top     string
}

// startNode writes a configuration and runs espnode serve on it until the test ends. Nothing is
// routed to segmentation: the suite is about the DICOM side.
func startNode(t *testing.T, o nodeOptions) *node {
	t.Helper()
	n := &node{t: t, port: freePort(t), dataDir: t.TempDir(), logs: &lockedBuffer{}}
	if o.tlsPort {
		n.tlsPort = freePort(t)
	}
	dicom := strings.ReplaceAll(o.dicom, "{tls_port}", strconv.Itoa(n.tlsPort))
	httpYAML := "  addr: \"\"\n  viewer: {addr: \"\"}"
	if o.http != "" {
		n.httpPort, n.viewerPort = freePort(t), freePort(t)
		httpYAML = strings.NewReplacer("{http_port}", strconv.Itoa(n.httpPort), "{viewer_port}", strconv.Itoa(n.viewerPort)).Replace(o.http)
	}
	top := o.top
	if top == "" {
		top = "pipeline:\n  routing: []\nmodel:\n  onnxruntime: /nonexistent/libonnxruntime.so"
	}
	cfg := fmt.Sprintf(`ae_title: ESPNODE
data_dir: %s
dicom:
  host: 127.0.0.1
  port: %d
  timeouts: {artim: 5s, dimse: 20s, first_pdu: 5s}
%s
peers: [%s]
%s
http:
%s
log:
  level: info
  format: json
`, n.dataDir, n.port, dicom, strings.Join(o.peers, ", "), top, httpYAML)
	path := filepath.Join(t.TempDir(), "espnode.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, espnodeBin, "serve", "--config", path)
	cmd.Stdout, cmd.Stderr = n.logs, n.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed, not sent on, so that both the start loop and the cleanup can see it.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Error("espnode did not stop within 20 s")
			cancel()
			<-exited
		}
		cancel()
		if t.Failed() {
			t.Logf("espnode configuration:\n%s\nespnode log:\n%s", cfg, n.logs.String())
		}
	})
	ports := []int{n.port}
	if n.tlsPort != 0 {
		ports = append(ports, n.tlsPort)
	}
	for _, p := range ports {
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("espnode exited at start: %v\n%s", waitErr, n.logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("espnode not listening on %d: %v\n%s", p, err, n.logs.String())
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	return n
}

// logLines returns the node's JSON log lines whose message contains msg.
func (n *node) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(n.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if s, _ := m["message"].(string); strings.Contains(s, msg) {
			out = append(out, m)
		}
	}
	return out
}

// logLinesExactly returns the node's JSON log lines whose message is msg itself: a summary
// ("C-GET") without the lines that only contain it ("C-GET sub-operation failed").
func (n *node) logLinesExactly(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range n.logLines(msg) {
		if l["message"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits for a log line with msg and returns it.
func (n *node) waitLog(msg string, within time.Duration) map[string]any {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if l := n.logLines(msg); len(l) > 0 {
			return l[len(l)-1]
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("no log line %q within %v", msg, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// archived lists the SOP Instance UIDs in the node's archive, from the file names it stores under.
func (n *node) archived() map[string]bool {
	out := map[string]bool{}
	_ = filepath.WalkDir(n.dataDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".dcm") {
			out[strings.TrimSuffix(filepath.Base(p), ".dcm")] = true
		}
		return nil
	})
	return out
}

// run runs a peer program with TCP_NODELAY=1 (Debian's DCMTK keeps Nagle on otherwise) and a
// bound on its time.
func run(t *testing.T, name, debianPackage string, args ...string) (string, error) {
	t.Helper()
	path := testutil.Tool(t, name, debianPackage)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startProcess runs a peer server for the test's duration, its output shown if the test fails.
func startProcess(t *testing.T, label string, port int, cmd *exec.Cmd) {
	t.Helper()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", label, out.String())
		}
	})
	for range 400 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s did not start listening on %d:\n%s", label, port, out.String())
}

// fixture is a small study prepared for the suite: an uncompressed CT, the same slice in JPEG-LS
// (as a second instance), and a SEG, each with fresh UIDs.
type fixture struct {
	study                 string
	ctPlain, ctJPEGLS     string // file paths
	ctPlainUID, ctJLSUID  string
	seg, segUID, segStudy string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(rel, name string) string {
		if !filepath.IsAbs(rel) {
			rel = testutil.SharedData(t, "dicom", rel)
		}
		b, err := os.ReadFile(rel)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := fixture{
		ctPlain: copyFile("CT/cornerstone_CT_evrle.dcm", "ct-plain.dcm"),
		// Cut short: the node stores it but can neither decode nor decompress it, so a peer
		// that takes only uncompressed CT cannot be sent it.
		ctJPEGLS: copyFile(dcmtest.TruncatedCodestream(t, testutil.SharedData(t, "dicom", "CT", "cornerstone_CT_jpegls_lossless.dcm")), "ct-jpegls.dcm"),
		seg:      copyFile("SEG/dcmqi_liver/liver_seg.dcm", "seg.dcm"),
	}
	// New instance UIDs, so that the two CT copies are two instances of one study.
	if out, err := run(t, "dcmodify", "dcmtk", "-nb", "-gin", f.ctPlain, f.ctJPEGLS, f.seg); err != nil {
		t.Fatalf("dcmodify: %v\n%s", err, out)
	}
	f.ctPlainUID = tagValue(t, f.ctPlain, "0008,0018")
	f.ctJLSUID = tagValue(t, f.ctJPEGLS, "0008,0018")
	f.segUID = tagValue(t, f.seg, "0008,0018")
	f.study = tagValue(t, f.ctPlain, "0020,000d")
	f.segStudy = tagValue(t, f.seg, "0020,000d")
	if tagValue(t, f.ctJPEGLS, "0020,000d") != f.study {
		t.Fatal("the two CT files are not of one study")
	}
	return f
}

// tagValue reads one element's value with dcmdump.
func tagValue(t *testing.T, path, tag string) string {
	t.Helper()
	out, err := run(t, "dcmdump", "dcmtk", "-q", "-s", "+P", tag, path)
	if err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", path, err, out)
	}
	open, end := strings.Index(out, "["), strings.Index(out, "]")
	if open < 0 || end < open {
		t.Fatalf("dcmdump %s %s: %q", path, tag, out)
	}
	return out[open+1 : end]
}

// storeFixture sends the fixture's files to the node with storescu.
func storeFixture(t *testing.T, n *node, f fixture) {
	t.Helper()
	for _, s := range []struct{ file, propose string }{{f.ctPlain, "-x="}, {f.ctJPEGLS, "-xt"}, {f.seg, "-x="}} {
		if out, err := run(t, "storescu", "dcmtk", "-aec", "ESPNODE", s.propose, "-R", "127.0.0.1", strconv.Itoa(n.port), s.file); err != nil {
			t.Fatalf("storescu %s: %v\n%s", s.file, err, out)
		}
	}
}
