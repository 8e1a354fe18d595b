package onnx

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/espnode/espnode/internal/testutil"
)

// TestParityWithPyTorch checks ONNX Runtime, through this package, against PyTorch on the same
// random weights and inputs: model/'s parity generator saves a model, a mixed-modality batch
// and PyTorch's logits; the node's runtime must reproduce the logits to 1e-4.
func TestParityWithPyTorch(t *testing.T) {
	cases := []struct {
		size   int
		widths string
	}{
		{1024, "published"},
		{256, "compact"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-%d", c.widths, c.size), func(t *testing.T) {
			dir := parityFixture(t, c.size, c.widths, "0,3,5", 1)
			got, want, n := runParity(t, dir)
			var worst float64
			for i := range n {
				per := len(want) / n
				d := maxAbsDiff(got[i*per:(i+1)*per], want[i*per:(i+1)*per])
				t.Logf("sample %d: max |ORT - PyTorch| = %.3g", i, d)
				worst = max(worst, d)
			}
			t.Logf("S=%d %s: max abs difference %.3g over %d images", c.size, c.widths, worst, n)
			if worst > 1e-4 || math.IsNaN(worst) {
				t.Errorf("ONNX Runtime differs from PyTorch by %g, limit 1e-4", worst)
			}
		})
	}
}

// parityFixture returns a directory written by `python3 -m espmedsam.parity`. The 1024 fixture
// takes minutes of PyTorch on a small CPU, so fixtures are cached under the user cache
// directory, keyed by the generator's arguments and the content of model/espmedsam: a change
// to the network regenerates them, nothing else does.
func parityFixture(t testing.TB, size int, widths, modalities string, seed int) string {
	t.Helper()
	modelDir := filepath.Join(testutil.RepoRoot(t), "model")
	args := []string{"-m", "espmedsam.parity", "--size", fmt.Sprint(size), "--widths", widths,
		"--modalities", modalities, "--seed", fmt.Sprint(seed), "--threads", "2"}
	// Debian's python3-torch runs its Linear layers on the reference BLAS, which makes the
	// 1024 fixture take minutes; OpenBLAS, when installed, takes a quarter of that.
	env := os.Environ()
	if _, err := os.Stat(openBLASDir); err == nil {
		env = append(env, "LD_LIBRARY_PATH="+openBLASDir, "OPENBLAS_NUM_THREADS=2")
	}
	key := sha256.New()
	fmt.Fprintln(key, args, len(env) > len(os.Environ()))
	sources, err := filepath.Glob(filepath.Join(modelDir, "espmedsam", "*.py"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("model/espmedsam sources not found in %s: %v", modelDir, err)
	}
	for _, src := range sources {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(key, filepath.Base(src), len(b))
		key.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "espnode", "parity", fmt.Sprintf("%s-%d-%x", widths, size, key.Sum(nil)[:8]))
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err == nil {
		t.Logf("PyTorch fixture S=%d %s from cache %s", size, widths, dir)
		return dir
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(testutil.Python(t), append(args, "--out", tmp)...)
	cmd.Dir = modelDir
	cmd.Env = env
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("parity generator (needs Debian's python3-torch, python3-onnx, python3-numpy): %v\n%s", err, out)
	}
	t.Logf("PyTorch fixture S=%d %s written in %v", size, widths, time.Since(start).Round(time.Second))
	// Fixtures of earlier revisions of the model code are 100 MB each at 1024; drop them.
	if old, err := filepath.Glob(filepath.Join(filepath.Dir(dir), fmt.Sprintf("%s-%d-*", widths, size))); err == nil {
		for _, o := range old {
			if o != dir {
				os.RemoveAll(o)
			}
		}
	}
	// meta.json is written last by the generator; the rename publishes the whole directory at once.
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, statErr := os.Stat(filepath.Join(dir, "meta.json")); statErr != nil {
			t.Fatalf("cache fixture: %v", err)
		}
	}
	return dir
}

// openBLASDir is where Debian's libopenblas0-pthread puts its libblas.so.3.
const openBLASDir = "/usr/lib/x86_64-linux-gnu/openblas-pthread"

// runParity runs a fixture's saved inputs through the node's runtime.
func runParity(t testing.TB, dir string) (got, want []float32, n int) {
	t.Helper()
	var meta struct {
		N    int `json:"n"`
		Size int `json:"size"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	images := readFloat32s(t, filepath.Join(dir, "image.f32"))
	want = readFloat32s(t, filepath.Join(dir, "logits.f32"))
	queries := readInt64s(t, filepath.Join(dir, "modality.i64"))
	if len(queries) != meta.N || len(images) != meta.N*3*meta.Size*meta.Size || len(want) != meta.N*meta.Size*meta.Size {
		t.Fatalf("fixture sizes do not match meta.json %+v", meta)
	}
	opts := testOptions(t)
	opts.Threads = 2
	m := openTest(t, filepath.Join(dir, "model.onnx"), opts)
	if m.InputSize() != meta.Size {
		t.Fatalf("model input size %d, fixture %d", m.InputSize(), meta.Size)
	}
	start := time.Now()
	got, err = m.Run(images, queries)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ONNX Runtime: %d images in %v", meta.N, time.Since(start).Round(time.Millisecond))
	return got, want, meta.N
}

func readFloat32s(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func readInt64s(t testing.TB, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(b)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}
