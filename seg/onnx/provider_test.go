package onnx

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCaptureStderr writes to descriptor 2 as a native library does (no Go os.Stderr in
// between) and checks that the capture gets it and puts descriptor 2 back.
func TestCaptureStderr(t *testing.T) {
	c := captureStderr()
	if c == nil {
		t.Fatal("captureStderr could not redirect descriptor 2")
	}
	msg := "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file\n    at operator() (BackendVk.cpp:368)\n"
	if _, err := syscall.Write(2, []byte(msg)); err != nil {
		c.stop()
		t.Fatal(err)
	}
	// More than the pipe holds, so that a reader that does not drain would hang here.
	big := strings.Repeat("x", 200<<10)
	syscall.Write(2, []byte(big))
	got := c.stop()
	if !strings.HasPrefix(got, msg) || len(got) != maxNative {
		t.Errorf("captured %d bytes starting %q, want %d starting with the message", len(got), got[:min(len(got), 80)], maxNative)
	}
	// Descriptor 2 is back: a dup of it refers to the same file as before the capture.
	var before, after syscall.Stat_t
	if err := syscall.Fstat(int(os.Stderr.Fd()), &before); err != nil {
		t.Fatal(err)
	}
	d := DupStderr()
	defer d.Close()
	if err := syscall.Fstat(int(d.Fd()), &after); err != nil {
		t.Fatal(err)
	}
	if before.Ino != after.Ino || before.Dev != after.Dev {
		t.Errorf("descriptor 2 not restored: inode %d, want %d", after.Ino, before.Ino)
	}
}

func TestCondenseNative(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open\n    at operator() (/build/BackendVk.cpp:368)\n\n",
			"Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open"},
		{"Warning: Vulkan shaderUniform*ArrayDynamicIndexing required.\n - While initializing adapter\n    at InitializeImpl (x.cpp:253)\n",
			"Warning: Vulkan shaderUniform*ArrayDynamicIndexing required. | - While initializing adapter"},
		{strings.Repeat("y", 3000), strings.Repeat("y", maxNativeLine) + "..."},
	}
	for _, tt := range tests {
		if got := condenseNative(tt.in); got != tt.want {
			t.Errorf("condenseNative(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestProviderNeeds checks the reasons auto gives without asking ONNX Runtime: the CUDA and
// TensorRT provider libraries must be beside the loaded library.
func TestProviderNeeds(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libonnxruntime.so.1")
	touch := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	touch("libonnxruntime.so.1")
	check := func(provider, wantMissing string) {
		t.Helper()
		_, _, err := providerNeeds(provider, lib, false)
		switch {
		case wantMissing == "" && err != nil:
			t.Errorf("%s: %v, want no objection", provider, err)
		case wantMissing != "" && (err == nil || !strings.Contains(err.Error(), wantMissing+" is not beside "+lib)):
			t.Errorf("%s: %v, want %s named missing", provider, err, wantMissing)
		}
	}
	check(ProviderCUDA, "libonnxruntime_providers_shared.so")
	touch("libonnxruntime_providers_shared.so")
	check(ProviderCUDA, "libonnxruntime_providers_cuda.so")
	check(ProviderTensorRT, "libonnxruntime_providers_tensorrt.so")
	touch("libonnxruntime_providers_cuda.so")
	check(ProviderCUDA, "")
	check(ProviderCPU, "")
}

// TestVulkanDevicesHere runs the Vulkan probe on this machine: either it lists devices, or it
// says why not in words a user can act on.
func TestVulkanDevicesHere(t *testing.T) {
	devs, native, err := VulkanDevices()
	t.Logf("devices %v, native output %q, err %v", devs, native, err)
	if err != nil {
		if msg := err.Error(); !strings.Contains(msg, "Vulkan") && !strings.Contains(msg, "vk") {
			t.Errorf("probe error %q does not say what is missing", msg)
		}
		return
	}
	for _, d := range devs {
		if d.Name == "" || d.Type == "" {
			t.Errorf("device %+v has no name or type", d)
		}
	}
}

func TestBenchCPUAgainstCPU(t *testing.T) {
	opts := testOptions(t)
	rep, err := Bench(context.Background(), "testdata/espmedsam-tiny-s256.onnx", opts,
		BenchConfig{Reference: ProviderCPU, Batches: []int{1, 3}, Warmup: 1, Iters: 2, ParityImages: 2, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Provider != ProviderCPU || rep.Reference != ProviderCPU || rep.InputSize != 256 {
		t.Errorf("report: provider %q reference %q size %d", rep.Provider, rep.Reference, rep.InputSize)
	}
	p := rep.Parity
	if p == nil || p.Error != "" || p.Images != 2 || p.MaxAbsDiff != 0 || p.Dice != 1 || p.NonFinite != 0 {
		t.Fatalf("parity of the CPU against itself: %+v, want exact", p)
	}
	if p.Foreground <= 0 || p.Foreground >= 1 {
		t.Errorf("foreground %v: the synthetic images should give masks of both values", p.Foreground)
	}
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(rep.Runs))
	}
	for i, r := range rep.Runs {
		if r.Error != "" || r.Iters != 2 || r.Batch != []int{1, 3}[i] || r.MedianMS <= 0 || r.FirstMS <= 0 ||
			r.Reference == nil || r.Speedup <= 0 {
			t.Errorf("run %d: %+v", i, r)
		}
	}
}

func TestCompare(t *testing.T) {
	nan := float32(0)
	nan /= nan
	tests := []struct {
		name       string
		want, got  []float32
		size       int
		maxDiff    float64
		dice       float64
		minDice    float64
		nonFinite  int
		foreground float64
		err        bool
	}{
		{name: "equal", want: []float32{1, -1, 2, -2}, got: []float32{1, -1, 2, -2}, size: 2, dice: 1, minDice: 1, foreground: 0.5},
		{name: "one pixel flips", want: []float32{1, 1, -1, -1}, got: []float32{1, -0.5, -1, -1}, size: 2, maxDiff: 1.5, dice: 2.0 / 3, minDice: 2.0 / 3, foreground: 0.5},
		{name: "both empty", want: []float32{-1, -1}, got: []float32{-2, -1}, size: 2, maxDiff: 1, dice: 1, minDice: 1},
		{name: "NaN counted, not compared", want: []float32{1, 2}, got: []float32{nan, 2}, size: 2, dice: 2.0 / 3, minDice: 2.0 / 3, nonFinite: 1, foreground: 1},
		{name: "lengths differ", want: []float32{1, 2}, got: []float32{1}, size: 2, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compare(tt.want, tt.got, tt.size, 0)
			if tt.err {
				if p.Error == "" {
					t.Errorf("no error: %+v", p)
				}
				return
			}
			near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
			if !near(p.MaxAbsDiff, tt.maxDiff) || !near(p.Dice, tt.dice) || !near(p.MinDice, tt.minDice) ||
				p.NonFinite != tt.nonFinite || !near(p.Foreground, tt.foreground) || p.Error != "" {
				t.Errorf("%+v, want max %v dice %v min %v non-finite %d foreground %v", p, tt.maxDiff, tt.dice, tt.minDice, tt.nonFinite, tt.foreground)
			}
		})
	}
}

func TestSyntheticImages(t *testing.T) {
	a, b, c := SyntheticImages(2, 32, 7), SyntheticImages(2, 32, 7), SyntheticImages(2, 32, 8)
	if len(a) != 2*3*32*32 {
		t.Fatalf("%d values", len(a))
	}
	same, differ := true, false
	lo, hi := float32(255), float32(0)
	for i := range a {
		same = same && a[i] == b[i]
		differ = differ || a[i] != c[i]
		lo, hi = min(lo, a[i]), max(hi, a[i])
	}
	if !same || !differ {
		t.Errorf("same seed same images: %v; other seed other images: %v", same, differ)
	}
	if lo < 0 || hi > 255 || hi-lo < 100 {
		t.Errorf("values from %v to %v, want a wide range within 0..255", lo, hi)
	}
}
