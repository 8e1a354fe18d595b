package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dcm/dcmtest"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/onnx"
)

// engine opens the shipped model on the CPU with the project's ONNX Runtime.
func engine(t *testing.T) *onnx.Engine {
	t.Helper()
	if os.Getenv(onnx.LibraryEnv) == "" {
		lib := filepath.Join(testutil.RepoRoot(t), "third_party", "onnxruntime", "libonnxruntime.so.1")
		if _, err := os.Stat(lib); err != nil {
			t.Fatalf("ONNX Runtime not found at %s: run scripts/deps.sh run", lib)
		}
		t.Setenv(onnx.LibraryEnv, lib)
	}
	path, err := WriteShippedModel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := onnx.OpenUniversal(path, onnx.Options{Provider: onnx.ProviderCPU, Threads: 1, MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestSegmentInstances(t *testing.T) {
	s := New(engine(t))
	tests := []struct {
		file    []string
		channel string
		frames  int
		// segFrames: a 2-frame instance of a single-frame SOP class (US Image Storage) gets a SEG
		// of its first frame (dicomseg, docs/SEG.md).
		segFrames int
	}{
		{[]string{"wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"}, "colonoscopy", 1, 1},
		{[]string{"wrapped", "OP_drive_drive_05.dcm"}, "fundus", 1, 1},
		{[]string{"US_multiframe", "pydicom_OBXXXX1A_2fr_evrle_palette.dcm"}, "ultrasound", 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file[1], func(t *testing.T) {
			path := testutil.SharedData(t, append([]string{"dicom"}, tt.file...)...)
			src, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			uid := DerivedUID("test", src.SEG.SOPInstanceUID)
			res, err := s.Segment(context.Background(), Request{Sources: []Input{File(path)}, Channel: tt.channel,
				SEG: dicomseg.Options{SOPInstanceUID: uid, SeriesInstanceUID: DerivedUID("series", uid)}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Frames != tt.frames || res.SEG.SOPInstanceUID != uid || res.Provider != onnx.ProviderCPU || res.Timing.Infer <= 0 {
				t.Errorf("result: %d frames, SOP %s, provider %s, timing %+v", res.Frames, res.SEG.SOPInstanceUID, res.Provider, res.Timing)
			}
			got, err := dicomseg.Decode(res.SEG.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Frames) != tt.segFrames {
				t.Errorf("SEG has %d frames, want %d", len(got.Frames), tt.segFrames)
			}
			for _, f := range got.Frames {
				if len(f.Sources) != 1 || f.Sources[0].SOPInstanceUID != src.SEG.SOPInstanceUID {
					t.Errorf("SEG frame references %+v, want the source %s", f.Sources, src.SEG.SOPInstanceUID)
				}
			}
			if got.StudyInstanceUID != src.SEG.Study.InstanceUID || got.Segments[0].AlgorithmName != res.Model {
				t.Errorf("SEG study %s algorithm %q; want the source's study and the model's name %q",
					got.StudyInstanceUID, got.Segments[0].AlgorithmName, res.Model)
			}
		})
	}
}

// TestGuardWithholds: with a model that has plausibility bounds (the toy of seg/onnx/testdata:
// per-pixel logits, xray implausible under half foreground, fundus between 0.1 and 0.9), the
// guard judges each source by the foreground share over its frames and, when asked, withholds
// the SEG; the job's answer is a result, not an error.
func TestGuardWithholds(t *testing.T) {
	engine(t) // the library
	e, err := onnx.OpenUniversal(filepath.Join(testutil.RepoRoot(t), "seg", "onnx", "testdata", "toy-tiles-s64.onnx"),
		onnx.Options{Provider: onnx.ProviderCPU, Threads: 1, MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s := New(e)
	path := testutil.SharedData(t, "dicom", "wrapped", "OP_drive_drive_05.dcm")
	for _, tt := range []struct {
		channel, reason string
		reject, seg     bool
	}{
		{"fundus", "", true, true},
		{"xray", onnx.ReasonFgLow, true, false},
		{"xray", onnx.ReasonFgLow, false, true},
		{"dermoscopy", "", true, true}, // no bounds: never implausible
	} {
		var fg, pixels int
		res, err := s.Segment(context.Background(), Request{Sources: []Input{File(path)}, Channel: tt.channel,
			RejectImplausible: tt.reject, SEG: dicomseg.Options{SOPInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.4"},
			Frame: func(f Frame) error {
				fg += f.Mask.Foreground()
				pixels += f.Mask.Width * f.Mask.Height
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Checks) != 1 {
			t.Fatalf("%s: %d checks", tt.channel, len(res.Checks))
		}
		c := res.Checks[0]
		t.Logf("%s: foreground %.3f, patch %.3f, reason %q, withheld %v", tt.channel, c.FgFraction, c.PatchMax, c.Reason, res.Withheld)
		if c.Reason != tt.reason || c.FgFraction != float64(fg)/float64(pixels) || !c.HasPatch || c.Source != path {
			t.Errorf("%s: check %+v, want reason %q and foreground %d/%d", tt.channel, c, tt.reason, fg, pixels)
		}
		if (res.SEG != nil) != tt.seg || res.Withheld == tt.seg || res.Guarded != (tt.channel != "dermoscopy") {
			t.Errorf("%s (reject %v): SEG %v, withheld %v, guarded %v", tt.channel, tt.reject, res.SEG != nil, res.Withheld, res.Guarded)
		}
	}
	if b, err := s.Bounds("xray"); err != nil || b == nil {
		t.Errorf("Bounds(xray) = %v, %v", b, err)
	}
	if b, err := s.Bounds("dermoscopy"); err != nil || b != nil {
		t.Errorf("Bounds(dermoscopy) = %v, %v", b, err)
	}
}

func TestSegmentUndecodable(t *testing.T) {
	s := New(engine(t))
	j2k := testutil.SharedData(t, "dicom", "US", "wg04_US1_J2KR.dcm")
	for name, path := range map[string]string{
		"a JPEG 2000 codestream cut short": dcmtest.TruncatedCodestream(t, j2k),
		"JPEG 2000 Part 2 (no decoder)":    dcmtest.Relabelled(t, j2k, "1.2.840.10008.1.2.4.92"),
	} {
		_, err := s.Segment(context.Background(), Request{Sources: []Input{File(path)}, Channel: "ultrasound"})
		if !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: %v, want ErrUndecodable", name, err)
		}
	}
	// A source that is gone is not retried; one that could not be opened this time is.
	gone := Input{Name: "gone", Open: func() (io.ReadCloser, error) { return nil, fmt.Errorf("archive: %w", fs.ErrNotExist) }}
	if _, err := s.Segment(context.Background(), Request{Sources: []Input{gone}, Channel: "ultrasound"}); !errors.Is(err, ErrUndecodable) {
		t.Errorf("a source that is not there: %v, want ErrUndecodable", err)
	}
	restarting := Input{Name: "restarting", Open: func() (io.ReadCloser, error) {
		return nil, errors.New("index: FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")
	}}
	if _, err := s.Segment(context.Background(), Request{Sources: []Input{restarting}, Channel: "ultrasound"}); err == nil || errors.Is(err, ErrUndecodable) {
		t.Errorf("a source the index could not give this time: %v, want an error to retry, not ErrUndecodable", err)
	}
	path := j2k
	if _, err := s.Segment(context.Background(), Request{Sources: []Input{File(path)}, Channel: "brain"}); err == nil {
		t.Fatal("unknown channel accepted")
	}
}

func TestDerivedUID(t *testing.T) {
	a, b := DerivedUID("1.2.3", "m", "1"), DerivedUID("1.2.3", "m", "2")
	if a == b || a != DerivedUID("1.2.3", "m", "1") {
		t.Fatalf("DerivedUID not a function of its parts: %s %s", a, b)
	}
	// Joined parts must not collide: ("1.2", "3") is not ("1.23").
	if DerivedUID("1.2", "3") == DerivedUID("1.23") {
		t.Fatal("DerivedUID collides on part boundaries")
	}
	for _, u := range []string{a, b} {
		if err := dcm.CheckUID(u); err != nil || len(u) > 64 {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestConcurrentFrames: frames segmented several at a time give the masks of one at a time, in
// frame order, and Frame sees each frame once with the source's frame count.
func TestConcurrentFrames(t *testing.T) {
	s := New(engine(t))
	path := testutil.SharedData(t, "dicom", "US_multiframe", "pydicom_OBXXXX1A_2fr_evrle_palette.dcm")
	segment := func(concurrency int) (*dicomseg.Segmentation, map[int]int, map[int][]uint8) {
		var mu sync.Mutex
		seen := map[int]int{}
		masks := map[int][]uint8{}
		res, err := s.Segment(context.Background(), Request{Sources: []Input{File(path)}, Channel: "ultrasound",
			SEG: dicomseg.Options{SOPInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.4"}, Concurrency: concurrency,
			Frame: func(f Frame) error {
				mu.Lock()
				defer mu.Unlock()
				if f.Count != 2 || f.Source != 0 {
					t.Errorf("frame %+v", f)
				}
				seen[f.Index]++
				masks[f.Index] = slices.Clone(f.Mask.Bits)
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		seg, err := dicomseg.Decode(res.SEG.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return seg, seen, masks
	}
	one, seenOne, masksOne := segment(1)
	two, seenTwo, masksTwo := segment(2)
	for _, seen := range []map[int]int{seenOne, seenTwo} {
		if len(seen) != 2 || seen[0] != 1 || seen[1] != 1 {
			t.Errorf("Frame calls per frame index: %v", seen)
		}
	}
	for i := range 2 {
		if !slices.Equal(masksOne[i], masksTwo[i]) || len(masksOne[i]) == 0 {
			t.Errorf("mask of frame %d differs when frames run concurrently", i+1)
		}
	}
	// The source is a single-frame SOP class: its SEG covers the first frame (dicomseg).
	if len(one.Frames) != 1 || len(two.Frames) != 1 {
		t.Fatalf("%d and %d SEG frames, want 1", len(one.Frames), len(two.Frames))
	}
	for i := range one.Frames {
		if !slices.Equal(one.Frames[i].Pixels, two.Frames[i].Pixels) {
			t.Errorf("frame %d differs when frames run concurrently", i+1)
		}
	}
}

// TestNoSEG: with NoSEG the masks are made and no SEG is encoded.
func TestNoSEG(t *testing.T) {
	s := New(engine(t))
	path := testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD092.dcm")
	res, err := s.Segment(context.Background(), Request{Sources: []Input{File(path)}, Channel: "dermoscopy", NoSEG: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != 1 || res.SEG != nil || len(res.SEGs) != 0 {
		t.Errorf("NoSEG result: %d frames, SEG %v, %d SEGs", res.Frames, res.SEG != nil, len(res.SEGs))
	}
}
