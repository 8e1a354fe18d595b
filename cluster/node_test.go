package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on port, or exited says the process
// that should have opened it is gone.
func waitListening(port int, within time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on %d", port)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %d within %s: %w", port, within, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// node is one espnode serve process of the cluster, with a data_dir of its own and the shared
// engines' settings in its environment. The test kills and restarts it.
type node struct {
	t       testing.TB
	name    string
	role    string
	port    int
	dataDir string
	cfgFile string
	env     []string
	logPath string
	logs    *os.File

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// nodeConfig is a node's configuration file: its own data_dir and DIMSE port, the HTTP listeners
// off (ports of their own would be all they need), short retry policies and one CPU worker, the
// SEGs sent to dest. Behind a load balancer every connection comes from the balancer's address:
// the per-host connection limit would count the whole cluster's senders as one host.
func nodeConfig(dataDir string, port, destPort int) string {
	return fmt.Sprintf(`ae_title: ESPNODE
data_dir: %s
dicom:
  host: 127.0.0.1
  port: %d
  max_connections_per_host: 0
  timeouts: {artim: 5s, dimse: 30s, first_pdu: 5s}
pipeline:
  workers: 1
  poll_interval: 100ms
  segment_retry: {max_attempts: 5, initial: 100ms, max: 500ms}
  delivery_retry: {max_attempts: 10, initial: 100ms, max: 1s}
  destinations: [{ae_title: STORESCP, host: 127.0.0.1, port: %d}]
model: {provider: cpu, threads: 1, reject_implausible: false}
http: {addr: "", viewer: {addr: ""}}
log: {level: info, format: json}
`, dataDir, port, destPort)
}

// newNode writes the node's configuration; start runs it. role ("all", "ingest"; "" leaves the
// default) goes to ESPNODE_ROLE.
func newNode(t testing.TB, name, role string, destPort int, env []string) *node {
	t.Helper()
	if role != "" {
		env = append(slices.Clip(env), "ESPNODE_ROLE="+role)
	}
	dir := t.TempDir()
	n := &node{t: t, name: name, role: role, port: freePort(t), dataDir: filepath.Join(dir, "data"),
		cfgFile: filepath.Join(dir, "espnode.yaml"), env: env, logPath: filepath.Join(dir, "espnode.log")}
	if err := os.WriteFile(n.cfgFile, []byte(nodeConfig(n.dataDir, n.port, destPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.logs = logs
	t.Cleanup(func() {
		n.kill()
		logs.Close()
		if t.Failed() {
			t.Logf("%s log, warnings and errors (last 40):\n%s", n.name, n.warnings(40))
		}
	})
	return n
}

// start runs espnode serve and waits until it listens. It may run in a goroutine of its own:
// it reports, it does not fail the test.
func (n *node) start() error {
	cmd := exec.Command(bins.espnode, "serve", "--config", n.cfgFile)
	cmd.Stdout, cmd.Stderr = n.logs, n.logs
	cmd.Env = append(os.Environ(), n.env...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.starts++
	n.mu.Unlock()
	// The first start writes the built-in model to the data_dir and loads it.
	if err := waitListening(n.port, time.Minute, exited); err != nil {
		return fmt.Errorf("%s: %w\n%s", n.name, err, n.tail(30))
	}
	return nil
}

// kill sends SIGKILL and waits until the process is gone; a node not running is left alone.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop ends the process gracefully (SIGTERM): its deliveries in flight finish first.
func (n *node) stop() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		n.t.Errorf("%s did not stop within 30 s of SIGTERM", n.name)
		n.kill()
	}
}

// cpuSeconds returns the user and system CPU time the running process has used, from
// /proc/PID/stat (in USER_HZ ticks, 100 a second on Linux).
func (n *node) cpuSeconds() (float64, error) {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("%s: not started", n.name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("%s: /proc stat: %q", n.name, b)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: /proc stat: %w", n.name, err)
	}
	return (utime + stime) / 100, nil
}

// jobs returns what espnode jobs list (with flags) says of the queue the node works, with the
// node's configuration and environment: the cluster's queue when the index is shared.
func (n *node) jobs(flags ...string) string {
	cmd := exec.Command(bins.espnode, append([]string{"jobs", "list", "--config", n.cfgFile}, flags...)...)
	cmd.Env = append(os.Environ(), n.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s(espnode jobs list: %v)", out, err)
	}
	return string(out)
}

// tail returns the last lines of the node's log.
func (n *node) tail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// warnings returns the last of the node's log lines at warn level or above, over all its runs.
func (n *node) warnings(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, `{"level":"info"`) && !strings.HasPrefix(l, `{"level":"debug"`) && l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-lines):], "\n")
}

// waitReady waits until the node's workers can segment: the model loads after the DICOM
// listener opens, and a failure that should hit a working cluster must not hit a node still
// starting. An ingest node runs no workers.
func (n *node) waitReady(within time.Duration) error {
	if n.role == "ingest" {
		return nil
	}
	deadline := time.Now().Add(within)
	for n.logCount(`"message":"model loaded: segmenting"`) < n.starts {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: model not loaded within %s:\n%s", n.name, within, n.warnings(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// logCount counts the node's log lines (over all its runs) that contain s.
func (n *node) logCount(s string) int {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}
