package interop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/internal/testutil"
)

// TestConsole drives the operator console in headless Chromium (web/console.js): an image sent
// with storescu appears on the open dashboard; its SEG's delivery to a destination that is down
// becomes a dead letter under a short retry policy; the instance page shows the image with its
// mask drawn over it; once the destination (storescp) is up, Retry on the jobs page delivers
// it. The screenshots are kept in a folder the test prints (CONSOLE_SHOTS names it).
func TestConsole(t *testing.T) {
	nodeBin := webTool(t)
	testutil.Tool(t, "chromium", "chromium")
	storescp := testutil.Tool(t, "storescp", "dcmtk")
	root := testutil.RepoRoot(t)
	ort := filepath.Join(root, "third_party", "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(ort); err != nil {
		t.Fatalf("ONNX Runtime not found at %s: run scripts/deps.sh run", ort)
	}
	destPort := freePort(t)
	n := startNode(t, nodeOptions{
		http: webHTTP,
		top: fmt.Sprintf(`pipeline:
  workers: 1
  poll_interval: 100ms
  destinations: [{ae_title: STORESCP, host: 127.0.0.1, port: %d}]
  delivery_retry: {max_attempts: 2, initial: 200ms, max: 400ms}
  delivery_timeout: 5s
model:
  provider: cpu
  threads: 2
  onnxruntime: %s`, destPort, ort),
	})
	base := n.waitHTTP(n.httpPort) + "/console/"

	shots := os.Getenv("CONSOLE_SHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "espnode-console-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshots in %s", shots)

	cmd := exec.Command(nodeBin, filepath.Join("web", "console.js"), base, shots)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(8*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	received := t.TempDir()
	var last string
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	for lines.Scan() {
		last = lines.Text()
		switch last {
		case "ask: send":
			path := testutil.SharedData(t, "dicom", "DX", "highdicom_dx_image_mono1_evrle.dcm")
			if out, err := run(t, "storescu", "dcmtk", "-aec", "ESPNODE", "127.0.0.1", strconv.Itoa(n.port), path); err != nil {
				t.Fatalf("storescu: %v\n%s", err, out)
			}
		case "ask: destination up":
			startProcess(t, "storescp", destPort, exec.Command(storescp, "-aet", "STORESCP", "-od", received, strconv.Itoa(destPort)))
		default:
			continue
		}
		if _, err := io.WriteString(stdin, "ok\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("console.js: %v\n%s", err, stderr.String())
	}
	var report struct {
		Errors                        []string
		ReceivedBefore, ReceivedAfter int
		Reloads                       int
		DeadLetters                   int
		Instance                      struct{ Channel, Foreground, Viewer string }
		Pixels                        struct{ Width, Height, Changed, Red int }
		DeadLetter                    struct{ ID, Error string }
		Flash, Delivered              string
		Destination                   string
		ForgedStatus                  int
	}
	if err := json.Unmarshal([]byte(last), &report); err != nil {
		t.Fatalf("console.js report: %v\n%s", err, last)
	}
	t.Logf("report: %+v", report)
	if len(report.Errors) > 0 {
		t.Errorf("the pages met errors: %v", report.Errors)
	}
	if report.ReceivedAfter != report.ReceivedBefore+1 || report.Reloads != 1 {
		t.Errorf("dashboard: received %d then %d over %d page loads; want one more without a reload",
			report.ReceivedBefore, report.ReceivedAfter, report.Reloads)
	}
	if report.Instance.Channel != "xray" || !strings.HasSuffix(report.Instance.Foreground, "%") {
		t.Errorf("instance page: %+v", report.Instance)
	}
	// The mask covers part of the image: the overlay changes some pixels, not all, in red.
	px := report.Pixels
	if px.Changed == 0 || px.Changed >= px.Width*px.Height || px.Red < px.Changed/2 {
		t.Errorf("overlay: %d of %dx%d pixels changed, %d of them red", px.Changed, px.Width, px.Height, px.Red)
	}
	if !strings.Contains(report.DeadLetter.Error, "refused") && !strings.Contains(report.DeadLetter.Error, "connect") {
		t.Errorf("the dead letter's last error is %q", report.DeadLetter.Error)
	}
	if report.Delivered != report.DeadLetter.ID || !strings.Contains(report.Flash, "1 job") {
		t.Errorf("retry: %q, delivered %q of dead letter %q", report.Flash, report.Delivered, report.DeadLetter.ID)
	}
	if report.ForgedStatus != 403 {
		t.Errorf("a POST without the CSRF token got %d", report.ForgedStatus)
	}
	entries, _ := os.ReadDir(received)
	if len(entries) == 0 {
		t.Error("storescp received nothing")
	}
	for _, s := range []string{"dashboard.png", "instance.png", "jobs.png", "dashboard-after.png", "channels.png"} {
		if fi, err := os.Stat(filepath.Join(shots, s)); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s: %v", s, err)
		}
	}
}
