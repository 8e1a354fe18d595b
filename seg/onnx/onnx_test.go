package onnx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/espnode/espnode/internal/testutil"
)

// testThreads keeps tests from taking every core of a shared machine.
const testThreads = 1

// testLibrary returns the ONNX Runtime library the tests load: $ONNXRUNTIME_SHARED_LIBRARY_PATH
// (the Makefile sets it), else the copy scripts/deps.sh puts in third_party.
func testLibrary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(LibraryEnv); p != "" {
		return p
	}
	p := filepath.Join(testutil.RepoRoot(t), "third_party", "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ONNX Runtime %s not found at %s: run `scripts/deps.sh run` (or set $%s)", LibraryVersion, p, LibraryEnv)
	}
	return p
}

func testOptions(t testing.TB) Options {
	return Options{Library: testLibrary(t), Provider: ProviderCPU, Threads: testThreads, MaxBatch: 4, BatchWait: 10 * time.Millisecond}
}

func openTest(t testing.TB, path string, opts Options) *Model {
	t.Helper()
	m, err := Open(path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m
}

func TestFindLibrary(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	missing := filepath.Join(empty, "nope.so")
	tests := []struct {
		name                          string
		explicit, env, exeDir, ldPath string
		want                          string
		wantErr                       []string
	}{
		{name: "explicit wins", explicit: lib, env: missing, want: lib},
		{name: "env", env: lib, exeDir: empty, want: lib},
		{name: "next to binary", exeDir: dir, want: lib},
		{name: "LD_LIBRARY_PATH", exeDir: empty, ldPath: empty + ":" + dir, want: lib},
		{name: "explicit missing", explicit: missing, wantErr: []string{"--onnxruntime names " + missing, "scripts/deps.sh run"}},
		{name: "env missing", env: missing, wantErr: []string{"$ONNXRUNTIME_SHARED_LIBRARY_PATH names", "npm pack onnxruntime-node@1.30.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findLibrary(tt.explicit, tt.env, tt.exeDir, tt.ldPath, []string{empty})
			if tt.wantErr != nil {
				if !errors.Is(err, ErrLibraryNotFound) {
					t.Fatalf("err = %v, want ErrLibraryNotFound", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findLibrary = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestFindLibraryNowhere checks the message a user gets on a machine without the library.
func TestFindLibraryNowhere(t *testing.T) {
	_, err := findLibrary("", "", t.TempDir(), "", []string{t.TempDir()})
	if !errors.Is(err, ErrLibraryNotFound) {
		t.Fatalf("err = %v, want ErrLibraryNotFound", err)
	}
	for _, w := range []string{"ONNX Runtime shared library not found", "libonnxruntime.so.1", "scripts/deps.sh run", "ONNXRUNTIME_SHARED_LIBRARY_PATH"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestLoadLibraryVersion(t *testing.T) {
	_, v, err := LoadLibrary(testLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	if v != LibraryVersion {
		t.Errorf("ONNX Runtime version %s, want %s", v, LibraryVersion)
	}
}

func TestParseMetadata(t *testing.T) {
	good := func() map[string]string {
		return map[string]string{
			KeyChannels:     `[{"index":0,"name":"xray","label":"Lung","category":{"scheme":"SCT","value":"91723000","meaning":"Anatomical structure"},"type":{"scheme":"SCT","value":"39607008","meaning":"Lung"},"query":1}]`,
			KeyInputSize:    "1024",
			KeyModelName:    "esp-medsam",
			KeyModelVersion: "1",
			KeyThreshold:    "0.25",
		}
	}
	tests := []struct {
		name    string
		edit    func(map[string]string)
		wantErr string
	}{
		{name: "good"},
		{name: "no channels", edit: func(m map[string]string) { delete(m, KeyChannels) }, wantErr: "espnode.channels is missing"},
		{name: "channels not json", edit: func(m map[string]string) { m[KeyChannels] = "xray" }, wantErr: "not a JSON list"},
		{name: "unknown channel field", edit: func(m map[string]string) { m[KeyChannels] = `[{"idx":0}]` }, wantErr: `unknown field "idx"`},
		{name: "no codes", edit: func(m map[string]string) { m[KeyChannels] = `[{"index":0,"name":"x","label":"x","query":0}]` }, wantErr: "category code needs scheme"},
		{name: "duplicate name", edit: func(m map[string]string) {
			m[KeyChannels] = strings.Replace(strings.Repeat(good()[KeyChannels][1:len(good()[KeyChannels])-1]+",", 2), `"index":0`, `"index":1`, 1)
			m[KeyChannels] = "[" + strings.TrimSuffix(m[KeyChannels], ",") + "]"
		}, wantErr: `name "xray" appears twice`},
		{name: "size not a number", edit: func(m map[string]string) { m[KeyInputSize] = "big" }, wantErr: `espnode.input_size = "big"`},
		{name: "size zero", edit: func(m map[string]string) { m[KeyInputSize] = "0" }, wantErr: "want an integer in 1..8192"},
		{name: "threshold", edit: func(m map[string]string) { m[KeyThreshold] = "NaN" }, wantErr: "want a finite number"},
		{name: "no name", edit: func(m map[string]string) { m[KeyModelName] = " " }, wantErr: "espnode.model_name is empty"},
		{name: "bad sha", edit: func(m map[string]string) { m[KeyCheckpointSHA256] = "abc" }, wantErr: "64 hexadecimal digits"},
		{name: "channel inputs", edit: func(m map[string]string) {
			m[KeyChannelInputs] = `{"xray":{"mode":"tiles","long_side":0,"tile":1024,"stride":512}}`
			m[KeyPlausibility] = `{"version":1,"channels":{"xray":{"n":2,"fg_fraction":{"lo":0.1,"hi":0.5}}}}`
		}},
		{name: "channel inputs of another channel", edit: func(m map[string]string) { m[KeyChannelInputs] = `{"fundus":{"mode":"letterbox"}}` },
			wantErr: `espnode.channel_inputs: channel "fundus" is not one the file serves`},
		{name: "channel inputs tile", edit: func(m map[string]string) {
			m[KeyChannelInputs] = `{"xray":{"mode":"tiles","long_side":0,"tile":256,"stride":192}}`
		}, wantErr: "espnode.channel_inputs: channel xray: tile 256: must equal the model's input size 1024"},
		{name: "plausibility", edit: func(m map[string]string) { m[KeyPlausibility] = `{"version":1,"channels":{"xray":{"fg":1}}}` },
			wantErr: `espnode.plausibility: json: unknown field "fg"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props := good()
			if tt.edit != nil {
				tt.edit(props)
			}
			md, err := ParseMetadata(props)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if md.InputSize != 1024 || md.Threshold != 0.25 || len(md.Channels) != 1 || md.Channels[0].Query != 1 || md.Channels[0].Type.Meaning != "Lung" {
					t.Errorf("parsed %+v", md)
				}
				// Without the optional keys every channel is letterboxed and unguarded.
				in, b := md.Input("xray"), md.Bounds("xray")
				if _, tiles := props[KeyChannelInputs]; tiles != in.Tiled() || tiles != (b != nil) || md.Input("fundus").Tiled() || md.Bounds("fundus") != nil {
					t.Errorf("input %s, bounds %s", in, b)
				}
				return
			}
			if !errors.Is(err, ErrNotContract) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrNotContract mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenRejectsFilesOutsideTheContract(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/nometa-s64.onnx", []string{"espnode.channels is missing", "espnode.input_size is missing", "espnode.threshold is missing"}},
		{"testdata/wrongshape-s64.onnx", []string{`output "logits" has shape [-1 2 64 64], want [N,1,64,64]`}},
		{"testdata/gen_toy.py", []string{"read model testdata/gen_toy.py"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			m, err := Open(tt.file, testOptions(t))
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestPatchOutputSignature: patch_logits is optional, and when present must be [N,1,S/32,S/32].
func TestPatchOutputSignature(t *testing.T) {
	info := func(name string, dims ...int64) ort.InputOutputInfo {
		var dt ort.TensorElementDataType = ort.TensorElementDataTypeFloat
		if name == InputModality {
			dt = ort.TensorElementDataTypeInt64
		}
		return ort.InputOutputInfo{Name: name, OrtValueType: ort.ONNXTypeTensor, DataType: dt, Dimensions: dims}
	}
	ins := []ort.InputOutputInfo{info(InputImage, -1, 3, 256, 256), info(InputModality, -1)}
	logits := info(OutputLogits, -1, 1, 256, 256)
	tests := []struct {
		name string
		outs []ort.InputOutputInfo
		size int
		want string
	}{
		{"logits only", []ort.InputOutputInfo{logits}, 256, ""},
		{"with patch", []ort.InputOutputInfo{logits, info(OutputPatch, -1, 1, 8, 8)}, 256, ""},
		{"patch of the wrong size", []ort.InputOutputInfo{logits, info(OutputPatch, -1, 1, 16, 16)}, 256, `output "patch_logits" has shape [-1 1 16 16], want [N,1,8,8]`},
		{"patch of the wrong rank", []ort.InputOutputInfo{logits, info(OutputPatch, -1, 64)}, 256, `output "patch_logits" has shape`},
		{"patch at a size not a multiple of 32", []ort.InputOutputInfo{info(OutputLogits, -1, 1, 100, 100), info(OutputPatch, -1, 1, 3, 3)}, 100, "multiple of 32"},
	}
	for _, tt := range tests {
		ins := ins
		if tt.size != 256 {
			ins = []ort.InputOutputInfo{info(InputImage, -1, 3, 100, 100), info(InputModality, -1)}
		}
		err := checkSignature(ins, tt.outs, tt.size)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestInspectListsPatchOutput: a file with the tiling contract's additions opens, lists both
// outputs, and its model computes patch_logits (the mean logit of each cell in the toy graph).
func TestInspectListsPatchOutput(t *testing.T) {
	m := openTest(t, "testdata/toy-tiles-s64.onnx", testOptions(t))
	info, err := Inspect(m.Path())
	if err != nil {
		t.Fatal(err)
	}
	sig := strings.Join(info.Signature(), "\n")
	if !strings.Contains(sig, "output patch_logits float32 [N,1,2,2]") || !m.HasPatch() {
		t.Fatalf("signature %s, HasPatch %v", sig, m.HasPatch())
	}
	s := m.InputSize()
	img := toyImage(s, 3)
	out, err := m.InferMany(context.Background(), append(slices.Clone(img), img...), []int64{0, 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Logits) != 2*s*s || len(out.Patch) != 2*4 {
		t.Fatalf("%d logits, %d patch logits", len(out.Logits), len(out.Patch))
	}
	for n := range 2 {
		for cy := range 2 {
			for cx := range 2 {
				var sum float64
				for y := cy * 32; y < cy*32+32; y++ {
					for x := cx * 32; x < cx*32+32; x++ {
						sum += float64(out.Logits[n*s*s+y*s+x])
					}
				}
				if got, want := out.Patch[n*4+cy*2+cx], sum/1024; math.Abs(float64(got)-want) > 1e-5 {
					t.Errorf("image %d cell %d,%d: patch logit %v, want %v", n, cy, cx, got, want)
				}
			}
		}
	}
}

// toyLogit is what testdata/toy-s64.onnx computes for one pixel.
func toyLogit(r, g, b float32, q int64) float32 {
	return (r+g+b)/3/255 - 0.5 + float32(q)/10
}

func toyImage(s int, seed float32) []float32 {
	img := make([]float32, 3*s*s)
	for i := range img {
		img[i] = float32(math.Mod(float64(seed)*7+float64(i)*0.37, 256))
	}
	return img
}

func TestToyModelMixedBatch(t *testing.T) {
	m := openTest(t, "testdata/toy-s64.onnx", testOptions(t))
	s := m.InputSize()
	queries := []int64{0, 3, 5, 1}
	var images []float32
	for i := range queries {
		images = append(images, toyImage(s, float32(i))...)
	}
	logits, err := m.Run(images, queries)
	if err != nil {
		t.Fatal(err)
	}
	for n, q := range queries {
		img := images[n*3*s*s:]
		for _, p := range []int{0, 1, s*s/2 + 7, s*s - 1} {
			want := toyLogit(img[p], img[s*s+p], img[2*s*s+p], q)
			if got := logits[n*s*s+p]; math.Abs(float64(got-want)) > 1e-5 {
				t.Errorf("image %d (query %d) pixel %d: logit %v, want %v", n, q, p, got, want)
			}
		}
	}
	if _, err := m.Run(images[:3*s*s], []int64{6}); err == nil || !strings.Contains(err.Error(), "query 6") {
		t.Errorf("query 6: err = %v, want a no-such-query error", err)
	}
}

// TestConcurrentInferMatchesSingleRuns sends many goroutines through the batcher and checks
// that each gets exactly what a batch of one gives for its image.
func TestConcurrentInferMatchesSingleRuns(t *testing.T) {
	for _, file := range []string{"testdata/toy-s64.onnx", tinyModel(t)} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			m := openTest(t, file, testOptions(t))
			s := m.InputSize()
			const callers = 12
			images := make([][]float32, callers)
			want := make([][]float32, callers)
			for i := range images {
				images[i] = toyImage(s, float32(i))
				var err error
				if want[i], err = m.Run(images[i], []int64{int64(i % 6)}); err != nil {
					t.Fatal(err)
				}
			}
			got := make([][]float32, callers)
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for i := range images {
				wg.Go(func() {
					var err error
					got[i], err = m.Infer(context.Background(), images[i], int64(i%6))
					if err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i := range got {
				if d := maxAbsDiff(got[i], want[i]); d > 1e-5 {
					t.Errorf("caller %d: batched result differs from a single run by %g", i, d)
				}
			}
		})
	}
}

// TestInferManyMixesWithSingles: requests of several images (an image's tiles) and of one meet in
// the batcher (MaxBatch 4, so some batches run over it by one request); every caller gets its own
// images' outputs, in order, patch logits included.
func TestInferManyMixesWithSingles(t *testing.T) {
	m := openTest(t, "testdata/toy-tiles-s64.onnx", testOptions(t))
	s := m.InputSize()
	sizes := []int{1, 3, 5, 1, 2, 9, 1, 4}
	type call struct {
		images  []float32
		queries []int64
		want    Outputs
	}
	calls := make([]call, len(sizes))
	for i, n := range sizes {
		c := &calls[i]
		for k := range n {
			c.images = append(c.images, toyImage(s, float32(10*i+k))...)
			c.queries = append(c.queries, int64((i+k)%6))
		}
		var err error
		if c.want, err = m.RunOutputs(c.images, c.queries); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]Outputs, len(calls))
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() { got[i], errs[i] = m.InferMany(context.Background(), calls[i].images, calls[i].queries) })
	}
	wg.Wait()
	for i := range calls {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if d := max(maxAbsDiff(got[i].Logits, calls[i].want.Logits), maxAbsDiff(got[i].Patch, calls[i].want.Patch)); d > 1e-5 {
			t.Errorf("call %d (%d images): batched outputs differ from its own run by %g", i, sizes[i], d)
		}
	}
	if _, err := m.InferMany(context.Background(), make([]float32, 3*s*s+1), []int64{0}); err == nil {
		t.Error("InferMany accepted a short image")
	}
}

func TestInferCancelledAndClosed(t *testing.T) {
	m, err := Open("testdata/toy-s64.onnx", testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Infer(ctx, toyImage(64, 1), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Infer: err = %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Infer(context.Background(), toyImage(64, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Infer after Close: err = %v", err)
	}
	if _, err := m.Run(toyImage(64, 1), []int64{0}); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: err = %v", err)
	}
}

// TestAutoFallsBackToCPU runs where there is no GPU (the CI machines and this project's
// development machines): auto must try each GPU provider and run on the CPU, and at info level
// say so in one line that names the providers tried and why each GPU one was passed over, with
// no warning (no GPU is the normal case).
func TestAutoFallsBackToCPU(t *testing.T) {
	var logs bytes.Buffer
	opts := testOptions(t)
	opts.Provider = ProviderAuto
	opts.Logger = zerolog.New(&logs).Level(zerolog.InfoLevel)
	m := openTest(t, "testdata/toy-s64.onnx", opts)
	// On a machine with a working GPU provider the chosen one ends the list tried.
	order := append(append([]string{}, AutoOrder...), ProviderCPU)
	chosen := slices.Index(order, m.Provider())
	if chosen < 0 {
		t.Fatalf("auto chose %q", m.Provider())
	}
	if got := len(m.Skipped()); got != chosen {
		t.Errorf("skipped %d providers before %s, want %d: %v", got, m.Provider(), chosen, m.Skipped())
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("auto logged %d lines at info level, want 1:\n%s", len(lines), logs.String())
	}
	var line struct {
		Level, Message, Provider string
		Tried                    []string
		Unavailable              map[string]string
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("log line %q: %v", lines[0], err)
	}
	if line.Level != "info" || line.Message != "execution provider selected" || line.Provider != m.Provider() {
		t.Errorf("log line %q: want info, execution provider selected, %s", lines[0], m.Provider())
	}
	if want := order[:chosen+1]; !slices.Equal(line.Tried, want) {
		t.Errorf("tried %v, want %v", line.Tried, want)
	}
	for _, p := range order[:chosen] {
		if line.Unavailable[p] == "" {
			t.Errorf("the line does not say why %s was passed over: %s", p, lines[0])
		}
	}
	t.Logf("fallback log:\n%s", logs.String())
	if _, err := m.Run(toyImage(64, 2), []int64{2}); err != nil {
		t.Fatal(err)
	}
}

func TestExplicitGPUProviderFailsWithoutFallback(t *testing.T) {
	for _, p := range AutoOrder {
		t.Run(p, func(t *testing.T) {
			opts := testOptions(t)
			opts.Provider = p
			m, err := Open("testdata/toy-s64.onnx", opts)
			if err == nil {
				m.Close()
				t.Skipf("%s works on this machine", p)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the provider", err)
			}
		})
	}
	if _, err := ParseProvider("rocm"); err == nil || !strings.Contains(err.Error(), "cpu, cuda, tensorrt, webgpu, auto") {
		t.Errorf("ParseProvider(rocm) = %v", err)
	}
}

func TestEngineChannelMap(t *testing.T) {
	opts := testOptions(t)
	uni, err := OpenUniversal("testdata/toy-s64.onnx", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer uni.Close()
	if got := strings.Join(uni.Channels(), ","); got != "colonoscopy,dermoscopy,fundus,microscopy,ultrasound,xray" {
		t.Errorf("universal channels = %s", got)
	}
	r, err := uni.Route("fundus")
	if err != nil || r.Channel.Query != 3 {
		t.Fatalf("route fundus = %+v, %v", r.Channel, err)
	}

	q := int64(5)
	per, err := NewEngine([]Binding{
		{Channel: "xray", Model: "testdata/toy-s64.onnx"},
		{Channel: "ultrasound", Model: "testdata/toy-s64.onnx", Query: &q},
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer per.Close()
	if len(per.models) != 1 {
		t.Errorf("one file bound twice opened %d sessions", len(per.models))
	}
	for ch, want := range map[string]int64{"xray": 1, "ultrasound": 5} {
		r, err := per.Route(ch)
		if err != nil || r.Channel.Query != want {
			t.Errorf("route %s = %+v, %v; want query %d", ch, r.Channel, err, want)
		}
		logits, err := r.Model.Infer(context.Background(), toyImage(64, 0), r.Channel.Query)
		if err != nil {
			t.Fatal(err)
		}
		img := toyImage(64, 0)
		if w := toyLogit(img[0], img[64*64], img[2*64*64], want); math.Abs(float64(logits[0]-w)) > 1e-5 {
			t.Errorf("%s: logit %v, want %v", ch, logits[0], w)
		}
	}
	if _, err := per.Route("fundus"); err == nil {
		t.Error("route to an unbound channel succeeded")
	}
	if _, err := NewEngine([]Binding{{Channel: "teeth", Model: "testdata/toy-s64.onnx"}}, opts); err == nil || !strings.Contains(err.Error(), `does not list channel "teeth"`) {
		t.Errorf("unknown channel: err = %v", err)
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// tinyModel is the colleague-built ESP-MedSAM network with tiny widths at S=256 (model/).
func tinyModel(t testing.TB) string {
	t.Helper()
	const p = "testdata/espmedsam-tiny-s256.onnx"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: it is exported by model/ (cd model && /usr/bin/python3 -m espmedsam.export ...): %v", p, err)
	}
	return p
}

// BenchmarkRunTiny measures one batch of B images through the committed tiny model.
func BenchmarkRunTiny(b *testing.B) {
	for _, batch := range []int{1, 4} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			opts := testOptions(b)
			opts.Threads = 2
			m := openTest(b, tinyModel(b), opts)
			s := m.InputSize()
			var images []float32
			queries := make([]int64, batch)
			for i := range batch {
				images = append(images, toyImage(s, float32(i))...)
				queries[i] = int64(i % 6)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := m.Run(images, queries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed())/1e6/float64(b.N*batch), "ms/image")
		})
	}
}

// TestTinyMixedBatchEqualsSingles runs the ESP-MedSAM graph (tiny widths) on one batch holding
// every channel and checks each sample against a batch of one: the graph must pick each
// sample's own query, and batching must not leak between samples.
func TestTinyMixedBatchEqualsSingles(t *testing.T) {
	m := openTest(t, tinyModel(t), testOptions(t))
	s := m.InputSize()
	queries := []int64{5, 0, 3, 1, 4, 2}
	img := toyImage(s, 3)
	var images []float32
	for range queries {
		images = append(images, img...)
	}
	batch, err := m.Run(images, queries)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range queries {
		single, err := m.Run(img, []int64{q})
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(batch[i*s*s:(i+1)*s*s], single); d > 1e-5 {
			t.Errorf("sample %d (query %d) differs from its single run by %g", i, q, d)
		}
	}
	// The same image under different queries must give different masks: the channels are real.
	if d := maxAbsDiff(batch[:s*s], batch[s*s:2*s*s]); d == 0 {
		t.Error("queries 5 and 0 give identical logits")
	}
}

// TestLoadNotALibrary loads a file that is not a shared library in a child process (the
// environment is process-wide, and this process has loaded the real one) and checks the error.
func TestLoadNotALibrary(t *testing.T) {
	if os.Getenv("ESPNODE_TEST_NOT_A_LIBRARY") == "1" {
		_, _, err := LoadLibrary("testdata/gen_toy.py")
		fmt.Println(err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLoadNotALibrary$")
	cmd.Env = append(os.Environ(), "ESPNODE_TEST_NOT_A_LIBRARY=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{"load ONNX Runtime from testdata/gen_toy.py", "release 1.29 or later", "scripts/deps.sh run"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error lacks %q:\n%s", want, out)
		}
	}
}

// TestEngineFilePerChannel binds channels to two different files, as the published per-dataset
// checkpoints need: each file gets its own session, input size and query.
func TestEngineFilePerChannel(t *testing.T) {
	e, err := NewEngine([]Binding{
		{Channel: "xray", Model: "testdata/toy-s64.onnx"},
		{Channel: "fundus", Model: tinyModel(t)},
		{Channel: "colonoscopy", Model: tinyModel(t)},
	}, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(e.models) != 2 {
		t.Fatalf("%d sessions for two files", len(e.models))
	}
	for ch, want := range map[string]struct {
		size  int
		query int64
	}{"xray": {64, 1}, "fundus": {256, 3}, "colonoscopy": {256, 5}} {
		r, err := e.Route(ch)
		if err != nil {
			t.Fatal(err)
		}
		if r.Model.InputSize() != want.size || r.Channel.Query != want.query {
			t.Errorf("%s: size %d query %d, want %d and %d", ch, r.Model.InputSize(), r.Channel.Query, want.size, want.query)
		}
		if _, err := r.Model.Infer(context.Background(), toyImage(r.Model.InputSize(), 1), r.Channel.Query); err != nil {
			t.Errorf("%s: %v", ch, err)
		}
	}
}

func TestDefaultBatch(t *testing.T) {
	for _, tt := range []struct {
		provider string
		want     int
	}{{ProviderCPU, 2}, {ProviderAuto, 8}, {ProviderCUDA, 8}, {ProviderTensorRT, 8}, {ProviderWebGPU, 8}} {
		if got := DefaultBatch(tt.provider); got != tt.want {
			t.Errorf("DefaultBatch(%q) = %d, want %d", tt.provider, got, tt.want)
		}
	}
}
