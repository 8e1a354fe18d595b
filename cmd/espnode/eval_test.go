package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/eval"
	"github.com/espnode/espnode/seg/segment"
)

// TestEvalCommand scores two test pairs per dataset with the shipped model (no --model) through
// the node's Go runtime and checks the JSON report.
func TestEvalCommand(t *testing.T) {
	segmentTestEnv(t)
	t.Setenv(modelEnv, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // where the shipped model is written
	data := testutil.SharedData(t, "seg2d")
	var stdout, stderr bytes.Buffer
	err := runEval(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr},
		[]string{"--data", data, "--json", "--limit", "2", "--threads", "1", "--provider", "cpu"})
	if err != nil {
		t.Fatalf("eval: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "fundus/drishti-gs1 not scored") {
		t.Errorf("stderr does not say that drishti-gs1 is left out:\n%s", stderr.String())
	}
	var raw []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%s", err, stdout.String())
	}
	wantKeys := []string{"channel", "dataset", "dice", "guarded", "iou", "n", "withheld"}
	var got []string
	scores := map[string]eval.Score{}
	for _, obj := range raw {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !reflect.DeepEqual(keys, wantKeys) {
			t.Fatalf("object keys %v, want %v", keys, wantKeys)
		}
		b, _ := json.Marshal(obj)
		var s eval.Score
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s.Channel+"/"+s.Dataset)
		scores[s.Channel+"/"+s.Dataset] = s
		// The shipped model gives every channel plausibility bounds: each dataset is judged.
		if !s.Guarded || s.Withheld < 0 || s.Withheld > s.N {
			t.Errorf("%s/%s: guarded %v, withheld %d of %d with the shipped model (bounds on every channel)", s.Channel, s.Dataset, s.Guarded, s.Withheld, s.N)
		}
		if s.Dice < 0 || s.Dice > 1 || s.IoU < 0 || s.IoU > s.Dice+1e-12 {
			t.Errorf("%s/%s: dice %g iou %g out of range", s.Channel, s.Dataset, s.Dice, s.IoU)
		}
	}
	// Every dataset of the manifest's test split, in channel order (dermoscopy, xray, ultrasound,
	// fundus, microscopy, colonoscopy), then by name; drishti-gs1 (optic disc) is not scored on
	// the vessel channel. Each has min(2, its test pairs) pairs (--limit 2).
	pairs := testutil.Seg2DPairs(t, "test")
	delete(pairs, "fundus/drishti-gs1")
	var want []string
	for k := range pairs {
		want = append(want, k)
	}
	index := func(k string) int {
		c, _ := channel.ByName(strings.Split(k, "/")[0])
		return c.Index
	}
	sort.Slice(want, func(i, j int) bool {
		if a, b := index(want[i]), index(want[j]); a != b {
			return a < b
		}
		return want[i] < want[j]
	})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("datasets %v, want %v", got, want)
	}
	// The shipped model is trained: lungs are its easiest target, and a mask shifted, flipped or
	// scaled against the reference by the eval's own geometry could not reach this.
	if d := scores["xray/covid-cxr-seg"].Dice; d < 0.7 {
		t.Errorf("xray/covid-cxr-seg Dice %.3f with the shipped model, want >= 0.7", d)
	}
	for k, s := range scores {
		if wantN := min(2, pairs[k]); s.N != wantN {
			t.Errorf("%s: n = %d, want %d (the manifest has %d test pairs)", k, s.N, wantN, pairs[k])
		}
	}
}

// TestSegmentShippedModel runs `espnode segment` without --model: the shipped model serves.
func TestSegmentShippedModel(t *testing.T) {
	segmentTestEnv(t)
	t.Setenv(modelEnv, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	out := t.TempDir()
	src := testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD092.dcm")
	var stdout, stderr bytes.Buffer
	err := runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr},
		[]string{"--threads", "1", "--provider", "cpu", "--no-seg", src, "-o", out})
	if err != nil {
		t.Fatalf("segment: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "XC_ph2_IMD092.dcm: dermoscopy, 1 frame(s)") {
		t.Errorf("stdout: %s", stdout.String())
	}
	cached, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "espnode", "models", "*-"+segment.ShippedModelName))
	if len(cached) != 1 {
		t.Errorf("shipped model written to the cache: %v", cached)
	}
	if _, err := os.Stat(filepath.Join(out, "XC_ph2_IMD092_mask.png")); err != nil {
		t.Error(err)
	}
}

// TestEvalUsage: eval without --data prints its usage and exits 2.
func TestEvalUsage(t *testing.T) {
	var stderr bytes.Buffer
	err := runEval(context.Background(), &cliEnv{stdout: &bytes.Buffer{}, stderr: &stderr}, nil)
	if ee := (exitError{}); !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(stderr.String(), "usage: espnode eval") {
		t.Errorf("no --data: %v, stderr %q", err, stderr.String())
	}
}
