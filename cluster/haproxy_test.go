package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// haproxy is Debian's HAProxy in TCP mode in front of the nodes' DIMSE ports.
type haproxy struct {
	port int
	out  *syncBuffer
	stop func()
}

// haproxyConfig balances associations round-robin over the servers. Each server's DIMSE port is
// health-checked every 200 ms (a TCP connect: a killed node is out after one failed check, back
// after two good ones); a connection refused by a server not yet marked down is sent to another
// one (retries, redispatch), as a modality would see nothing of it.
func haproxyConfig(port int, servers []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 512
defaults
  mode tcp
  timeout connect 1s
  timeout client 2m
  timeout server 2m
  retries 3
  option redispatch
frontend dicom
  bind 127.0.0.1:%d
  default_backend espnode
backend espnode
  balance roundrobin
  default-server check inter 200ms fall 1 rise 2
`, port)
	for i, p := range servers {
		fmt.Fprintf(&b, "  server node%d 127.0.0.1:%d\n", i, p)
	}
	return b.String()
}

// startHAProxy runs haproxy -db (in the foreground) with a configuration in a temporary folder,
// stopped when the test ends.
func startHAProxy(t testing.TB, servers []int) *haproxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy not found: install Debian's haproxy (apt-get install haproxy; scripts/deps.sh test does)")
	}
	h := &haproxy{port: freePort(t), out: &syncBuffer{}}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(h.port, servers)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	h.stop = func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", h.out.String())
		}
	})
	if err := waitListening(h.port, 10*time.Second, exited); err != nil {
		t.Fatalf("haproxy: %v\n%s", err, h.out.String())
	}
	return h
}

func (h *haproxy) addr() string { return fmt.Sprintf("127.0.0.1:%d", h.port) }

// syncBuffer is a bytes.Buffer that a child process's output goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
