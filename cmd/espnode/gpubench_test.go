package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/onnx"
)

// gpuSummary is the part of bench/gpu/run.sh's summary.json that the test checks.
type gpuSummary struct {
	ProviderRequested string `json:"provider_requested"`
	Reference         string
	Host              struct {
		CPUs int
		GPU  *string
	}
	Auto    *onnx.BenchReport
	Benches []struct {
		onnx.BenchReport
		Error string
	}
	Segment struct {
		Files, Masks   int
		IdenticalMasks int `json:"identical_masks"`
		Provider       gpuSegment
		Reference      gpuSegment
		Error          string
	}
}

type gpuSegment struct {
	Provider  string
	Exit      int
	FilesOK   int `json:"files_ok"`
	Frames    int
	WallS     float64 `json:"wall_s"`
	FramesPer float64 `json:"frames_per_s"`
}

// TestGPUBenchScriptOnCPU runs bench/gpu/run.sh, the script meant for a GPU machine, with the CPU
// provider on both sides, so that it is known to work before GPU time is spent: from a pack as
// bench/gpu/pack.sh lays it out (the binary, ONNX Runtime, a compressed model standing in for
// the 1024 one, DICOM files), it must write a summary with every figure, parity exact.
func TestGPUBenchScriptOnCPU(t *testing.T) {
	pipelineORT(t)
	bash := testutil.Tool(t, "bash", "bash")
	testutil.Tool(t, "bc", "bc")
	xz := testutil.Tool(t, "xz", "xz-utils")
	root := testutil.RepoRoot(t)
	work := t.TempDir()
	bin := buildEspnode(t, work)
	pack := filepath.Join(work, "pack")
	if err := os.MkdirAll(filepath.Join(pack, "dicom"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The tiny model in the 1024 model's place, compressed as pack.sh leaves it.
	tiny, err := os.ReadFile(filepath.Join(root, "seg", "onnx", "testdata", "espmedsam-tiny-s256.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xz, "-1", "-c")
	cmd.Stdin = bytes.NewReader(tiny)
	packed, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	if err := os.WriteFile(filepath.Join(pack, "espmedsam-published-s1024.onnx.xz"), packed, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ES_polypgen_130OLCV1_100H0002.dcm", "XC_ph2_IMD008.dcm"} {
		data, err := os.ReadFile(testutil.SharedData(t, "dicom", "wrapped", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pack, "dicom", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	out := filepath.Join(work, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bash, filepath.Join(root, "bench", "gpu", "run.sh"), out)
	run.Env = append(os.Environ(), "PROVIDER=cpu", "REFERENCE=cpu", "PACK="+pack, "ESPNODE="+bin,
		"BATCHES=1,2", "ITERS=1", "WARMUP=1", "THREADS=1", "PARITY_IMAGES=2", "TMPDIR="+work)
	log, err := run.CombinedOutput()
	t.Logf("run.sh:\n%s", log)
	if err != nil {
		t.Fatalf("run.sh: %v", err)
	}
	// A device call brings back at most 8 files from its output folder.
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"run.log", "summary.json"}) {
		t.Errorf("OUTDIR holds %v, want run.log and summary.json", names)
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s gpuSummary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, raw)
	}
	if s.ProviderRequested != "cpu" || s.Reference != "cpu" || s.Host.CPUs < 1 || s.Host.GPU == nil {
		t.Errorf("summary head: %+v", s)
	}
	if s.Auto == nil || s.Auto.Provider == "" || s.Auto.ProviderRequested != "auto" {
		t.Errorf("summary does not say what auto selected: %+v", s.Auto)
	}
	// One report per model and batch size, in that order.
	type key struct {
		model string
		batch int
	}
	var got []key
	for _, m := range s.Benches {
		if m.Error != "" {
			t.Errorf("bench: %s", m.Error)
			continue
		}
		if m.Provider != "cpu" || m.Reference != "cpu" || m.InputSize != 256 {
			t.Errorf("model %s: provider %q reference %q size %d", m.Model, m.Provider, m.Reference, m.InputSize)
		}
		if p := m.Parity; p == nil || p.Images != 2 || p.MaxAbsDiff != 0 || p.Dice != 1 || p.NonFinite != 0 || p.Error != "" {
			t.Errorf("model %s: parity of the CPU against itself %+v, want exact", m.Model, p)
		}
		for _, r := range m.Runs {
			got = append(got, key{filepath.Base(m.Model), r.Batch})
			if r.Error != "" || r.Iters != 1 || r.MSPerImage <= 0 || r.ImagesPerS <= 0 || r.Reference == nil || r.Speedup <= 0 {
				t.Errorf("model %s batch %d: %+v", m.Model, r.Batch, r)
			}
		}
	}
	want := []key{{"espmedsam-compact-s256.onnx", 1}, {"espmedsam-compact-s256.onnx", 2},
		{"espmedsam-published-s1024.onnx", 1}, {"espmedsam-published-s1024.onnx", 2}}
	if !slices.Equal(got, want) {
		t.Errorf("benches %v, want %v", got, want)
	}
	g := s.Segment
	for _, side := range []gpuSegment{g.Provider, g.Reference} {
		if side.Provider != "cpu" || side.Exit != 0 || side.FilesOK != 2 || side.Frames != 2 || side.WallS <= 0 {
			t.Errorf("segment: %+v, want 2 files and frames on the cpu", side)
		}
	}
	if g.Files != 2 || g.Masks != 2 || g.IdenticalMasks != 2 || g.Error != "" {
		t.Errorf("segment: %d files, %d masks, %d identical (%s), want 2, 2, 2", g.Files, g.Masks, g.IdenticalMasks, g.Error)
	}
}

// TestServeKeepsGPULibrariesQuiet starts `espnode serve` as a user would, with auto and no GPU:
// its standard error must hold the node's log lines alone, one of them, at info level, saying
// which provider was chosen and why the others were not, and no warning. With a Vulkan loader
// that gets the node as far as ONNX Runtime's WebGPU provider (a stand-in, since this machine has
// none), what that loader and Dawn print from C must not reach the terminal either, but be in the
// reason.
func TestServeKeepsGPULibrariesQuiet(t *testing.T) {
	pipelineORT(t)
	gcc := testutil.Tool(t, "gcc", "gcc")
	work := t.TempDir()
	bin := buildEspnode(t, work)
	fake := filepath.Join(work, "fakevulkan")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-o", filepath.Join(fake, "libvulkan.so.1"),
		filepath.Join("testdata", "fakevulkan.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	tests := []struct {
		name       string
		ldPath     string
		wantReason string // in the webgpu reason
	}{
		{name: "no Vulkan", ldPath: filepath.Join(work, "empty"), wantReason: "Vulkan"},
		{name: "a Vulkan loader Dawn cannot use", ldPath: fake, wantReason: "the library printed: fake Vulkan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "no Vulkan" {
				if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libvulkan.so.1"); err == nil {
					t.Logf("this machine has a Vulkan loader: the case checks the node with it")
					tt.wantReason = ""
				}
			}
			stderr := serveUntilModel(t, bin, tt.ldPath)
			var selected []map[string]any
			for line := range strings.SplitSeq(strings.TrimSpace(stderr), "\n") {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Errorf("a line on stderr that is not the node's log: %q", line)
					continue
				}
				if ev["level"] == "warn" || ev["level"] == "error" {
					t.Errorf("a %s line: %s", ev["level"], line)
				}
				if ev["message"] == "execution provider selected" {
					selected = append(selected, ev)
				}
			}
			if len(selected) != 1 {
				t.Fatalf("%d provider selection lines, want 1:\n%s", len(selected), stderr)
			}
			ev := selected[0]
			unavailable, _ := ev["unavailable"].(map[string]any)
			if ev["level"] != "info" || ev["provider"] != "cpu" || len(unavailable) != len(onnx.AutoOrder) {
				t.Errorf("selection line %v: want info, cpu, a reason for each of %v", ev, onnx.AutoOrder)
			}
			if reason, _ := unavailable["webgpu"].(string); !strings.Contains(reason, tt.wantReason) {
				t.Errorf("webgpu reason %q does not contain %q", reason, tt.wantReason)
			}
			t.Logf("stderr:\n%s", stderr)
		})
	}
}

// serveUntilModel runs espnode serve until its model has loaded (or failed), then stops it with
// SIGTERM, and returns its standard error.
func serveUntilModel(t *testing.T, bin, ldPath string) string {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--port", strconv.Itoa(freePort(t)), "--data-dir", t.TempDir())
	// As `make run` starts it: from the checkout's root, where it finds the viewer
	// (third_party/ohif, scripts/deps.sh), on ports of its own.
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+ldPath, "ESPNODE_HTTP_ADDR=127.0.0.1:0", "ESPNODE_HTTP_VIEWER_ADDR=127.0.0.1:0")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	loaded := make(chan struct{}, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			buf.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "model loaded") || strings.Contains(sc.Text(), "no model") {
				select {
				case loaded <- struct{}{}:
				default:
				}
			}
		}
	}()
	select {
	case <-loaded:
	case <-time.After(2 * time.Minute):
		t.Error("the model did not load within 2 minutes")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-done
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve: %v", err)
	}
	return buf.String()
}

func TestModelBenchUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"model", "bench"}, 2, "usage: espnode model bench"},
		{[]string{"model", "bench", "a.onnx", "b.onnx"}, 2, "usage: espnode model bench"},
		{[]string{"model", "bench", "--batches", "1,x", "a.onnx"}, 1, `--batches "1,x"`},
		{[]string{"model", "bench", "--reference", "rocm", "a.onnx"}, 1, "--reference: unknown execution provider"},
		{[]string{"model", "frobnicate"}, 2, "espnode model bench"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		code := run(context.Background(), &cliEnv{stdout: &bytes.Buffer{}, stderr: &stderr}, tt.args)
		if code != tt.code || !strings.Contains(stderr.String(), tt.inStderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.inStderr)
		}
	}
}
