package eval

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/onnx"
)

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	WriteTable(&b, []Score{
		{Channel: "xray", Dataset: "a", N: 1, Dice: 1, IoU: 1, Guarded: true},
		{Channel: "xray", Dataset: "b", N: 3, Dice: 0.5, IoU: 0.25, Withheld: 1, Guarded: true},
		{Channel: "fundus", Dataset: "c", N: 4, Dice: 0.25, IoU: 0.125},
	})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"channel      dataset                n    dice     iou withheld",
		"xray         a                      1  1.0000  1.0000     0.0%",
		"xray         b                      3  0.5000  0.2500    33.3%",
		"xray         (all)                  4  0.6250  0.4375    25.0%",
		"fundus       c                      4  0.2500  0.1250        -",
		"(all)        (all)                  8  0.4375  0.2812    12.5%",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("table:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestDiceIoU(t *testing.T) {
	for _, tt := range []struct {
		inter, pred, truth int
		dice, iou          float64
	}{
		{0, 0, 0, 1, 1},
		{0, 5, 0, 0, 0},
		{10, 10, 10, 1, 1},
		{5, 10, 10, 0.5, 1.0 / 3},
	} {
		d, u := DiceIoU(tt.inter, tt.pred, tt.truth)
		if d != tt.dice || u != tt.iou {
			t.Errorf("DiceIoU(%d, %d, %d) = %g, %g; want %g, %g", tt.inter, tt.pred, tt.truth, d, u, tt.dice, tt.iou)
		}
	}
}

func TestReadManifest(t *testing.T) {
	data := testutil.SharedData(t, "seg2d")
	rows, skipped, err := ReadManifest(data, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(skipped, []string{"fundus/drishti-gs1"}) {
		t.Errorf("skipped %v, want fundus/drishti-gs1", skipped)
	}
	want := testutil.Seg2DPairs(t, "test")
	delete(want, "fundus/drishti-gs1")
	got := map[string]int{}
	total := 0
	for _, r := range rows {
		if !strings.Contains(r.Image, "/test/images/") || !strings.Contains(r.Mask, "/test/masks/") {
			t.Fatalf("row %+v is not a test pair", r)
		}
		got[r.Channel+"/"+r.Dataset]++
		total++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("test pairs per dataset %v, the manifest has %v", got, want)
	}
	wantTotal := 0
	for _, n := range want {
		wantTotal += n
	}
	if total != wantTotal || total == 0 {
		t.Errorf("%d test rows, the manifest has %d outside drishti-gs1", total, wantTotal)
	}
	limited, _, err := ReadManifest(data, "test", 2)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, r := range limited {
		per[r.Channel+"/"+r.Dataset]++
	}
	for k, n := range want {
		if per[k] != min(n, 2) {
			t.Errorf("%s with limit 2: %d pairs, want %d", k, per[k], min(n, 2))
		}
	}
	if _, _, err := ReadManifest(filepath.Join(t.TempDir(), "none"), "test", 0); err == nil {
		t.Error("missing manifest accepted")
	}
}

// TestEvaluateGuard scores a small tree with seg/onnx's toy model (logits = grey / 255 - 0.5 +
// query / 10; plausibility bounds for xray: at least half the pixels foreground, none for
// dermoscopy): a white xray image is plausible and a black one withheld; dermoscopy is not
// guarded, whatever its masks.
func TestEvaluateGuard(t *testing.T) {
	if os.Getenv(onnx.LibraryEnv) == "" {
		t.Setenv(onnx.LibraryEnv, filepath.Join(testutil.RepoRoot(t), "third_party", "onnxruntime", "libonnxruntime.so.1"))
	}
	e, err := onnx.OpenUniversal(filepath.Join(testutil.RepoRoot(t), "seg", "onnx", "testdata", "toy-tiles-s64.onnx"),
		onnx.Options{Provider: onnx.ProviderCPU, Threads: 1, MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dir := t.TempDir()
	write := func(name string, v uint8) string {
		img := image.NewGray(image.Rect(0, 0, 40, 30))
		for i := range img.Pix {
			img.Pix[i] = v
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	white, black, mask := write("white.png", 255), write("black.png", 0), write("mask.png", 255)
	rows := []Pair{
		{Channel: "dermoscopy", Dataset: "d", Image: black, Mask: mask},
		{Channel: "xray", Dataset: "x", Image: white, Mask: mask},
		{Channel: "xray", Dataset: "x", Image: black, Mask: mask},
	}
	scores, err := Evaluate(context.Background(), e, dir, rows, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Score{
		{Channel: "dermoscopy", Dataset: "d", N: 1, Dice: 0, IoU: 0},
		{Channel: "xray", Dataset: "x", N: 2, Dice: 0.5, IoU: 0.5, Withheld: 1, Guarded: true},
	}
	if fmt.Sprint(scores) != fmt.Sprint(want) {
		t.Errorf("scores %+v\nwant %+v", scores, want)
	}
	if got := scores[1].WithheldShare(); got != 0.5 {
		t.Errorf("withheld share %g, want 0.5", got)
	}
}
