package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/dicomseg"
)

// segmentTestEnv points the runtime at the project's ONNX Runtime copy when the Makefile has
// not set it, and returns the tiny committed model.
func segmentTestEnv(t *testing.T) (model string) {
	t.Helper()
	root := testutil.RepoRoot(t)
	if os.Getenv("ONNXRUNTIME_SHARED_LIBRARY_PATH") == "" {
		lib := filepath.Join(root, "third_party", "onnxruntime", "libonnxruntime.so.1")
		if _, err := os.Stat(lib); err != nil {
			t.Fatalf("ONNX Runtime not found at %s: run scripts/deps.sh run", lib)
		}
		t.Setenv("ONNXRUNTIME_SHARED_LIBRARY_PATH", lib)
	}
	return filepath.Join(root, "seg", "onnx", "testdata", "espmedsam-tiny-s256.onnx")
}

func TestSegmentCommand(t *testing.T) {
	model := segmentTestEnv(t)
	out := t.TempDir()
	us := testutil.SharedData(t, "dicom", "US", "wg04_US1_RLE.dcm")
	cine := testutil.SharedData(t, "dicom", "US_multiframe", "pydicom_examples_ybr_color_30fr_jpegbaseline.dcm")
	fundus := testutil.SharedData(t, "dicom", "wrapped", "OP_drive_drive_05.dcm")
	j2k := testutil.SharedData(t, "dicom", "US", "wg04_US1_J2KR.dcm")
	cut := truncatedCodestream(t, j2k)
	ct := testutil.SharedData(t, "dicom", "CT", "wg04_CT1_UNC.dcm")
	hip := testutil.SharedData(t, "dicom", "CR", "wg04_RG2_RLE_mono2.dcm")
	thorax := testutil.SharedData(t, "dicom", "DX", "highdicom_dx_image_mono1_evrle.dcm")
	// The default routing segments neither ultrasound that does not say it is of the breast nor
	// a radiograph that is not of the chest: a configuration that routes every US does.
	cfg := filepath.Join(t.TempDir(), "us.yaml")
	if err := os.WriteFile(cfg, []byte("pipeline:\n  routing:\n    - {channel: ultrasound, modality: [US]}\n    - {channel: fundus, modality: [OP]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr},
		[]string{"--model", model, "--threads", "1", "--provider", "cpu", us, hip, thorax, ct, "-o", t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "3 of 4 files failed") {
		t.Fatalf("default routing: err = %v, want 3 of 4 failed\nstderr:\n%s", err, stderr.String())
	}
	for _, want := range []string{
		`no channel for Modality "US", Body Part Examined "" (routing: ultrasound_not_breast): pass --channel`,
		`no channel for Modality "CR", Body Part Examined "HIP" (routing: xray_not_chest): pass --channel`,
		`no channel for Modality "CT", Body Part Examined "" (routing: no_rule): pass --channel`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "highdicom_dx_image_mono1_evrle.dcm: xray, 1 frame(s)") {
		t.Errorf("the THORAX radiograph is not segmented as xray:\n%s", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	err = runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr},
		[]string{"--model", model, "--threads", "1", "--provider", "cpu", "--config", cfg, us, cine, fundus, j2k, cut, ct, "-o", out})
	if err == nil || !strings.Contains(err.Error(), "2 of 6 files failed") {
		t.Fatalf("err = %v, want 2 of 6 failed\nstderr:\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"truncated_wg04_US1_J2KR.dcm: source cannot be segmented: frame 1: JPEG 2000:",
		`no channel for Modality "CT", Body Part Examined "" (routing: no_rule): pass --channel`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	for _, tt := range []struct {
		base          string
		frames        int
		width, height int
		label         string
	}{
		{"wg04_US1_RLE", 1, 640, 480, "Breast lesion"},
		{"pydicom_examples_ybr_color_30fr_jpegbaseline", 30, 320, 240, "Breast lesion"},
		{"OP_drive_drive_05", 1, 495, 512, "Retinal blood vessel"},
		{"wg04_US1_J2KR", 1, 640, 480, "Breast lesion"},
	} {
		t.Run(tt.base, func(t *testing.T) {
			name := tt.base
			if tt.frames > 1 {
				name += "_f0030"
			}
			for _, suffix := range []string{"_mask.png", "_overlay.png"} {
				f, err := os.Open(filepath.Join(out, name+suffix))
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				if b := img.Bounds(); b.Dx() != tt.width || b.Dy() != tt.height {
					t.Errorf("%s is %dx%d, want %dx%d", suffix, b.Dx(), b.Dy(), tt.width, tt.height)
				}
			}
			data, err := os.ReadFile(filepath.Join(out, tt.base+"_seg.dcm"))
			if err != nil {
				t.Fatal(err)
			}
			seg, err := dicomseg.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(seg.Frames) != tt.frames || seg.Columns != tt.width || seg.Rows != tt.height || len(seg.Segments) != 1 || seg.Segments[0].Label != tt.label {
				t.Errorf("SEG: %d frames %dx%d, segments %+v", len(seg.Frames), seg.Columns, seg.Rows, seg.Segments)
			}
		})
	}
	if !strings.Contains(stdout.String(), "wg04_US1_RLE.dcm: ultrasound, 1 frame(s)") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

// TestSegmentImplausible: with a model that has plausibility bounds (seg/onnx's toy: xray needs
// half the pixels foreground), `espnode segment` reports an implausible output and writes no SEG
// unless --keep-implausible; the masks are written either way.
func TestSegmentImplausible(t *testing.T) {
	segmentTestEnv(t)
	model := filepath.Join(testutil.RepoRoot(t), "seg", "onnx", "testdata", "toy-tiles-s64.onnx")
	in := testutil.SharedData(t, "dicom", "wrapped", "OP_drive_drive_05.dcm")
	for _, keep := range []bool{false, true} {
		out := t.TempDir()
		args := []string{"--model", model, "--threads", "1", "--provider", "cpu", "--channel", "xray", "-q", in, "-o", out}
		if keep {
			args = append(args, "--keep-implausible")
		}
		var stdout, stderr bytes.Buffer
		if err := runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, args); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		want := "implausible for xray (fg_fraction_low: foreground 0.3"
		if !strings.Contains(stdout.String(), want) || !strings.Contains(stdout.String(), "bounds fg 0.5..1)") {
			t.Errorf("keep %v: stdout lacks %q:\n%s", keep, want, stdout.String())
		}
		_, err := os.Stat(filepath.Join(out, "OP_drive_drive_05_seg.dcm"))
		if keep != (err == nil) {
			t.Errorf("keep %v: SEG written: %v", keep, err == nil)
		}
		if _, err := os.Stat(filepath.Join(out, "OP_drive_drive_05_mask.png")); err != nil {
			t.Errorf("keep %v: %v", keep, err)
		}
		if note := map[bool]string{false: "SEG withheld", true: "SEG written"}[keep]; !strings.Contains(stdout.String(), note) {
			t.Errorf("keep %v: stdout lacks %q:\n%s", keep, note, stdout.String())
		}
	}
}

func TestSegmentUsageErrors(t *testing.T) {
	model := segmentTestEnv(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--model", model, "-o", t.TempDir()}, "no input files"},
		{[]string{"--model", model, "x.dcm"}, "-o DIR is required"},
		{[]string{"--model", model, "--channel", "teeth", "x.dcm", "-o", t.TempDir()}, `unknown channel "teeth"`},
		{[]string{"--model", filepath.Join(testutil.RepoRoot(t), "seg", "onnx", "testdata", "nometa-s64.onnx"), "--provider", "cpu", "x.dcm", "-o", t.TempDir()}, "not an espnode model"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestModelInfo(t *testing.T) {
	model := segmentTestEnv(t)
	var stdout, stderr bytes.Buffer
	if err := runModel(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"info", model}); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"input size:        256", "3 fundus", `"Retinal blood vessel"`, "onnx runtime:      1.30.0", "output:            logits float32 [N,1,256,256]", "input:             modality int64 [N]"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("model info lacks %q:\n%s", want, stdout.String())
		}
	}
	err := runModel(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"info", filepath.Join(testutil.RepoRoot(t), "seg", "onnx", "testdata", "wrongshape-s64.onnx")})
	if err == nil || !strings.Contains(err.Error(), `output "logits" has shape`) {
		t.Errorf("wrong-shape model: err = %v", err)
	}
}

func TestSegmentFractional(t *testing.T) {
	model := segmentTestEnv(t)
	out := t.TempDir()
	in := testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD008.dcm")
	var stdout, stderr bytes.Buffer
	if err := runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr},
		[]string{"--model", model, "--threads", "1", "--provider", "cpu", "--fractional", "-q", in, "-o", out}); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(out, "XC_ph2_IMD008_seg.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := dicomseg.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if seg.Type != "FRACTIONAL" || seg.MaxFractional != 255 || len(seg.Frames) != 1 || seg.Segments[0].Label != "Skin lesion" {
		t.Fatalf("SEG type %s max %d, %d frames, segments %+v", seg.Type, seg.MaxFractional, len(seg.Frames), seg.Segments)
	}
	// Probabilities, not only 0 and 255: the sigmoid of resized logits takes many values.
	levels := map[byte]bool{}
	for _, v := range seg.Frames[0].Pixels {
		levels[v] = true
	}
	if len(levels) < 10 {
		t.Errorf("fractional SEG holds %d distinct values", len(levels))
	}
}
