package segment

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/espnode/espnode/dcm"
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
	}{
		{[]string{"wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"}, "colonoscopy", 1},
		{[]string{"wrapped", "OP_drive_drive_05.dcm"}, "fundus", 1},
		{[]string{"US_multiframe", "pydicom_OBXXXX1A_2fr_evrle_palette.dcm"}, "ultrasound", 2},
	}
	for _, tt := range tests {
		t.Run(tt.file[1], func(t *testing.T) {
			path := testutil.SharedData(t, append([]string{"dicom"}, tt.file...)...)
			src, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			uid := DerivedUID("test", src.SEG.SOPInstanceUID)
			res, err := s.Segment(context.Background(), Request{Paths: []string{path}, Channel: tt.channel,
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
			if len(got.Frames) != tt.frames {
				t.Errorf("SEG has %d frames, want %d", len(got.Frames), tt.frames)
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

func TestSegmentUndecodable(t *testing.T) {
	s := New(engine(t))
	path := testutil.SharedData(t, "dicom", "US", "wg04_US1_J2KR.dcm")
	_, err := s.Segment(context.Background(), Request{Paths: []string{path}, Channel: "ultrasound"})
	if !errors.Is(err, ErrUndecodable) {
		t.Fatalf("JPEG 2000 source: %v, want ErrUndecodable", err)
	}
	if _, err := s.Segment(context.Background(), Request{Paths: []string{path}, Channel: "brain"}); err == nil {
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
