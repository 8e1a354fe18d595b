package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/png"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/pixel"
)

func TestTileOrigins(t *testing.T) {
	for _, tt := range []struct {
		n, tile, stride int
		want            []int
	}{
		{100, 256, 192, []int{0}},
		{256, 256, 192, []int{0}},
		{257, 256, 192, []int{0, 1}},
		{640, 256, 192, []int{0, 192, 384}},
		{619, 256, 192, []int{0, 182, 363}},
		{448, 256, 192, []int{0, 192}},
		{1000, 256, 256, []int{0, 248, 496, 744}},
		{10, 4, 1, []int{0, 1, 2, 3, 4, 5, 6}},
	} {
		got := TileOrigins(tt.n, tt.tile, tt.stride)
		if !slices.Equal(got, tt.want) {
			t.Errorf("TileOrigins(%d, %d, %d) = %v, want %v", tt.n, tt.tile, tt.stride, got, tt.want)
		}
		// The contract's invariants: first 0, last flush with the end, no step over the stride.
		if got[0] != 0 || got[len(got)-1] != max(tt.n-tt.tile, 0) {
			t.Errorf("TileOrigins(%d, %d, %d) = %v: not from 0 to n - tile", tt.n, tt.tile, tt.stride, got)
		}
		for i := 1; i < len(got); i++ {
			if d := got[i] - got[i-1]; d <= 0 || d > tt.stride {
				t.Errorf("TileOrigins(%d, %d, %d) = %v: step %d", tt.n, tt.tile, tt.stride, got, d)
			}
		}
	}
}

func TestWorkingSize(t *testing.T) {
	for _, tt := range []struct {
		w, h, long, ww, wh int
	}{
		{495, 512, 640, 619, 640}, // 618.75 rounds up
		{512, 341, 640, 640, 426}, // 426.25
		{512, 384, 640, 640, 480},
		{256, 256, 448, 448, 448}, // enlarges
		{3000, 2000, 640, 640, 427},
		{2, 1000, 640, 1, 640}, // at least 1
		{700, 500, 0, 700, 500},
		{5, 2, 3, 3, 1}, // 1.2 rounds down
		{4, 2, 3, 3, 2}, // 1.5 rounds up
	} {
		if w, h := WorkingSize(tt.w, tt.h, tt.long); w != tt.ww || h != tt.wh {
			t.Errorf("WorkingSize(%d, %d, %d) = %d x %d, want %d x %d", tt.w, tt.h, tt.long, w, h, tt.ww, tt.wh)
		}
	}
}

func TestHannWindow(t *testing.T) {
	const s = 256
	w := HannWindow(s)
	for y := range s {
		for x := range s {
			v := w[y*s+x]
			if !(v > 0 && v <= 1) || v != w[x*s+y] || v != w[(s-1-y)*s+x] {
				t.Fatalf("window(%d, %d) = %v: want in (0, 1], symmetric", y, x, v)
			}
		}
	}
	// sin^2(pi (k + 0.5) / S) peaks at the centre pixels.
	if c := w[(s/2)*s+s/2]; math.Abs(float64(c)-1) > 1e-4 {
		t.Errorf("window centre %v, want about 1", c)
	}
}

func TestParseChannelInputs(t *testing.T) {
	served := map[string]bool{"fundus": true, "xray": true}
	const tiles = `"mode":"tiles","long_side":640,"tile":256,"stride":192,"window":"hann","pad":"zero"`
	for _, tt := range []struct {
		name, text, err string
		want            map[string]ChannelInput
	}{
		{"tiles and letterbox", `{"fundus":{` + tiles + `},"xray":{"mode":"letterbox","flips":["h","hv"]}}`, "",
			map[string]ChannelInput{
				"fundus": {Mode: ModeTiles, LongSide: 640, Tile: 256, Stride: 192, Window: "hann", Pad: "zero"},
				"xray":   {Mode: ModeLetterbox, Window: "hann", Pad: "zero", Flips: []string{"h", "hv"}},
			}},
		{"window and pad default", `{"fundus":{"mode":"tiles","long_side":0,"tile":256,"stride":256}}`, "",
			map[string]ChannelInput{"fundus": {Mode: ModeTiles, Tile: 256, Stride: 256, Window: "hann", Pad: "zero"}}},
		{"empty object", `{}`, "", map[string]ChannelInput{}},
		{"unknown field", `{"fundus":{` + tiles + `,"overlap":64}}`, `unknown field "overlap"`, nil},
		{"unknown mode", `{"fundus":{"mode":"sliding"}}`, `mode "sliding"`, nil},
		{"no mode", `{"fundus":{}}`, `mode ""`, nil},
		{"tile is not S", `{"fundus":{"mode":"tiles","long_side":640,"tile":512,"stride":192}}`, "tile 512", nil},
		{"stride 0", `{"fundus":{"mode":"tiles","long_side":640,"tile":256,"stride":0}}`, "stride 0", nil},
		{"stride over tile", `{"fundus":{"mode":"tiles","long_side":640,"tile":256,"stride":257}}`, "stride 257", nil},
		{"long side negative", `{"fundus":{"mode":"tiles","long_side":-1,"tile":256,"stride":192}}`, "long_side -1", nil},
		{"long side huge", `{"fundus":{"mode":"tiles","long_side":16385,"tile":256,"stride":192}}`, "long_side 16385", nil},
		{"window", `{"fundus":{"mode":"tiles","long_side":640,"tile":256,"stride":192,"window":"gauss"}}`, `window "gauss"`, nil},
		{"pad", `{"fundus":{"mode":"tiles","long_side":640,"tile":256,"stride":192,"pad":"reflect"}}`, `pad "reflect"`, nil},
		{"flip", `{"xray":{"mode":"letterbox","flips":["d"]}}`, "flips", nil},
		{"flip twice", `{"xray":{"mode":"letterbox","flips":["h","h"]}}`, "flips", nil},
		{"channel not served", `{"dermoscopy":{"mode":"letterbox"}}`, `channel "dermoscopy" is not one the file serves`, nil},
		{"not an object", `[1]`, "not a JSON object", nil},
		{"null", `null`, "not a JSON object", nil},
		{"a string for a number", `{"fundus":{"mode":"tiles","long_side":"640","tile":256,"stride":192}}`, "cannot unmarshal", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseChannelInputs(tt.text, 256, served)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePlausibility(t *testing.T) {
	served := map[string]bool{"fundus": true, "xray": true}
	for _, tt := range []struct {
		name, text, err string
	}{
		{"full", `{"version":1,"measured_on":"m","rule":"r","bounds":"b","channels":{"fundus":{"n":182,` +
			`"fg_fraction":{"lo":0.03,"hi":0.3,"pred_p0_5":0.06,"pred_p50":0.1,"pred_p99_5":0.2,"ref_p0_5":0.07,"ref_p50":0.1,"ref_p99_5":0.19},` +
			`"patch_max":{"lo":0.9,"p0_5":0.95,"p50":0.99}}}}`, ""},
		{"fg only", `{"version":1,"channels":{"xray":{"n":3,"fg_fraction":{"lo":0.1,"hi":0.6}}}}`, ""},
		{"no channels entry", `{"version":1,"channels":{}}`, ""},
		{"version 2", `{"version":2,"channels":{}}`, "version 2"},
		{"no channels", `{"version":1}`, "no channels"},
		{"unknown field", `{"version":1,"channels":{"xray":{"n":3,"fg":{}}}}`, `unknown field "fg"`},
		{"unknown bound field", `{"version":1,"channels":{"xray":{"fg_fraction":{"lo":0.1,"mid":0.2}}}}`, `unknown field "mid"`},
		{"lo over hi", `{"version":1,"channels":{"xray":{"fg_fraction":{"lo":0.7,"hi":0.6}}}}`, "bounds 0.7..0.6"},
		{"over 1", `{"version":1,"channels":{"xray":{"patch_max":{"lo":1.5}}}}`, "bounds 1.5..1"},
		{"negative", `{"version":1,"channels":{"xray":{"fg_fraction":{"lo":-0.1}}}}`, "bounds -0.1..1"},
		{"not served", `{"version":1,"channels":{"colonoscopy":{"n":1}}}`, `channel "colonoscopy" is not one the file serves`},
		{"NaN", `{"version":1,"channels":{"xray":{"fg_fraction":{"lo":NaN}}}}`, "invalid character"},
		{"trailing", `{"version":1,"channels":{}} {}`, "data after"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsePlausibility(tt.text, served)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	b := &ChannelBounds{FgFraction: &FgFraction{Lo: f(0.02), Hi: f(0.3)}, PatchMax: &PatchMaxBounds{Lo: f(0.7)}}
	fgOnly := &ChannelBounds{FgFraction: &FgFraction{Lo: f(0.02)}}
	for _, tt := range []struct {
		name     string
		b        *ChannelBounds
		fg, pm   float64
		hasPatch bool
		want     string
	}{
		{"inside", b, 0.1, 0.9, true, ""},
		{"at the bounds", b, 0.02, 0.7, true, ""},
		{"at the upper bound", b, 0.3, 0.7, true, ""},
		{"empty mask", b, 0, 0.9, true, ReasonFgLow},
		{"too much", b, 0.31, 0.9, true, ReasonFgHigh},
		{"unsure", b, 0.1, 0.69, true, ReasonPatchLow},
		{"no patch output: patch bound unused", b, 0.1, 0, false, ""},
		{"foreground first", b, 0, 0.1, true, ReasonFgLow},
		{"absent hi is 1", fgOnly, 1, 0, false, ""},
		{"absent patch_max", fgOnly, 0.5, 0.01, true, ""},
		{"no bounds", nil, 0, 0, true, ""},
	} {
		c := tt.b.Judge(tt.fg, tt.pm, tt.hasPatch)
		if c.Reason != tt.want || c.Implausible() != (tt.want != "") || c.FgFraction != tt.fg {
			t.Errorf("%s: Judge(%v, %v, %v) = %+v, want reason %q", tt.name, tt.fg, tt.pm, tt.hasPatch, c, tt.want)
		}
	}
}

// TestToyTiles: the toy graph is per pixel (toyLogit), so whatever the tiling, blending and
// flips, the prediction must be the toy function of the working image resized back; its
// patch_logits are the mean logit of each 32 x 32 cell.
func TestToyTiles(t *testing.T) {
	e, err := OpenUniversal("testdata/toy-tiles-s64.onnx", testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	img := &pixel.RGB{Width: 90, Height: 61, Pix: make([]uint8, 90*61*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8((i*37 + i/270*11) % 256)
	}
	fundus, err := e.Route("fundus")
	if err != nil {
		t.Fatal(err)
	}
	if !fundus.Model.HasPatch() || fundus.Input.String() != "tiles:100:48+h" || fundus.Bounds.String() != "fg 0.1..0.9, patch >= 0.3" {
		t.Fatalf("fundus route: patch %v, input %s, bounds %s", fundus.Model.HasPatch(), fundus.Input, fundus.Bounds)
	}
	p, err := fundus.Predict(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	// Working size 100 x 68: 2 x 2 tiles of 64 (steps of 36 and 4, at most 48), twice (the flip).
	logits := p.Logits()
	if p.WorkWidth != 100 || p.WorkHeight != 68 || p.Inputs != 8 || len(logits) != 90*61 {
		t.Fatalf("working %dx%d, %d inputs, %d logits", p.WorkWidth, p.WorkHeight, p.Inputs, len(logits))
	}
	src := make([]float32, len(img.Pix))
	for i, v := range img.Pix {
		src[i] = float32(v)
	}
	work := pixel.Resample(src, 90, 61, 3, 100, 68)
	per := make([]float32, 100*68)
	for i := range per {
		c := func(k int) float32 { return min(max(work[3*i+k], 0), 255) }
		per[i] = toyLogit(c(0), c(1), c(2), 3)
	}
	want := pixel.Resample(per, 100, 68, 1, 90, 61)
	if d := maxAbsDiff(logits, want); d > 1e-5 {
		t.Errorf("tiled toy logits differ from the per-pixel function by %g", d)
	}
	// The highest patch cell: padded cells (all-zero image there) are included, as the contract says.
	if !p.HasPatch || p.PatchMax <= 0.5 || p.PatchMax >= 1 {
		t.Errorf("patch confidence %v (has %v)", p.PatchMax, p.HasPatch)
	}

	// Letterbox with flips v and hv: three inputs, the same per-pixel values as one letterbox.
	us, err := e.Route("ultrasound")
	if err != nil {
		t.Fatal(err)
	}
	p, err = us.Predict(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	in, g, err := pixel.Preprocess(img, 64)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := us.Model.Infer(context.Background(), in, us.Channel.Query)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pixel.Postprocess(lg, g, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Inputs != 3 || p.WorkWidth != g.Width || p.WorkHeight != g.Height {
		t.Fatalf("ultrasound: %d inputs, working %dx%d, want 3 and %dx%d", p.Inputs, p.WorkWidth, p.WorkHeight, g.Width, g.Height)
	}
	mask, err := p.Mask(0, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(mask.Prob, m.Prob); d > 1e-5 {
		t.Errorf("letterbox with flips differs from one letterbox by %g in probability", d)
	}
}

// TestLetterboxPredictIsPostprocess: a channel without an input entry goes through Predict
// exactly as through Preprocess, Infer and Postprocess (the shipped model's path, unchanged).
func TestLetterboxPredictIsPostprocess(t *testing.T) {
	e, err := OpenUniversal(tinyModel(t), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, err := e.Route("xray")
	if err != nil {
		t.Fatal(err)
	}
	if r.Input.Tiled() || len(r.Input.Flips) > 0 || r.Bounds != nil || r.Model.HasPatch() {
		t.Fatalf("tiny model: input %s, bounds %v, patch %v", r.Input, r.Bounds, r.Model.HasPatch())
	}
	img := &pixel.RGB{Width: 300, Height: 211, Pix: make([]uint8, 300*211*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8((i * 13) % 251)
	}
	p, err := r.Predict(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	in, g, err := pixel.Preprocess(img, r.Model.InputSize())
	if err != nil {
		t.Fatal(err)
	}
	lg, err := r.Model.Infer(context.Background(), in, r.Channel.Query)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pixel.Postprocess(lg, g, r.Model.Metadata().Threshold, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Mask(r.Model.Metadata().Threshold, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Inputs != 1 || !slices.Equal(got.Bits, want.Bits) || !slices.Equal(got.Prob, want.Prob) {
		t.Errorf("Predict's letterbox differs from Preprocess/Infer/Postprocess (%d inputs)", p.Inputs)
	}
}

// tilingChannelInputs is the parity model's espnode.channel_inputs: every branch of the
// contract on real images: fundus as the trained model feeds it (640, stride 192, 3 x 3 tiles)
// with a flip; dermoscopy tiled at a working size narrower than a tile on one side (zero
// padding) with a vertical flip; ultrasound letterboxed with two flips; xray letterboxed plain.
const tilingChannelInputs = `{"fundus":{"mode":"tiles","long_side":640,"tile":256,"stride":192,"window":"hann","pad":"zero","flips":["h"]},` +
	`"dermoscopy":{"mode":"tiles","long_side":320,"tile":256,"stride":200,"window":"hann","pad":"zero","flips":["v"]},` +
	`"ultrasound":{"mode":"letterbox","flips":["v","hv"]}}`

// TestTilingParityWithReference: the Go runtime's Predict against model/espmedsam/infer.py
// (`python3 -m espmedsam.infer`, the contract's reference, through ONNX Runtime's C library) on
// a tiny random-weights ESP-MedSAM with espnode.channel_inputs: the source-size logits must agree
// to 1e-4.
func TestTilingParityWithReference(t *testing.T) {
	model := tilingModel(t)
	opts := testOptions(t)
	opts.Threads = 2
	opts.MaxBatch = 2 // the tiles of one image run together whatever the batch size
	e, err := OpenUniversal(model, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, c := range []struct {
		channel, image string
		inputs         int
	}{
		{"fundus", "fundus/drive/test/images/drive_05.png", 18},
		{"fundus", "fundus/hrf/test/images/02_g.png", 12},
		{"dermoscopy", "dermoscopy/ph2/test/images/IMD008.png", 4},
		{"ultrasound", "ultrasound/busi/test/images/benign_0007.png", 3},
		{"xray", "xray/shenzhen-sample/test/images/CHNCXR_0005_0.png", 1},
	} {
		t.Run(c.channel+"/"+filepath.Base(c.image), func(t *testing.T) {
			path := testutil.SharedData(t, "seg2d", c.image)
			want, meta := referenceLogits(t, model, path, c.channel)
			r, err := e.Route(c.channel)
			if err != nil {
				t.Fatal(err)
			}
			p, err := r.Predict(context.Background(), readRGB(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if p.Width != meta.Width || p.Height != meta.Height || p.Inputs != meta.Inputs || p.Inputs != c.inputs ||
				p.WorkWidth != meta.Working[0] || p.WorkHeight != meta.Working[1] {
				t.Fatalf("Go: %dx%d, %d inputs, working %dx%d; reference %+v", p.Width, p.Height, p.Inputs, p.WorkWidth, p.WorkHeight, meta)
			}
			d := maxAbsDiff(p.Logits(), want)
			mask, err := p.Mask(0, false)
			if err != nil {
				t.Fatal(err)
			}
			fg := float64(mask.Foreground()) / float64(p.Width*p.Height)
			t.Logf("%s %s (%dx%d, %s, %d inputs): max |Go - reference| = %.3g; foreground %.4f (reference %.4f)",
				c.channel, filepath.Base(c.image), p.Width, p.Height, r.Input, p.Inputs, d, fg, meta.Fg)
			if d > 1e-4 || math.IsNaN(d) {
				t.Errorf("logits differ from the reference by %g, limit 1e-4", d)
			}
		})
	}
}

type referenceMeta struct {
	Width   int     `json:"width"`
	Height  int     `json:"height"`
	Inputs  int     `json:"model_inputs"`
	Working [2]int  `json:"working"`
	Fg      float64 `json:"fg_fraction"`
}

// referenceLogits runs `python3 -m espmedsam.infer` on one image (cached beside the model).
func referenceLogits(t *testing.T, model, image, ch string) ([]float32, referenceMeta) {
	t.Helper()
	h := sha256.Sum256([]byte(image + "\x00" + ch))
	dir := filepath.Join(filepath.Dir(model), fmt.Sprintf("ref-%s-%x", ch, h[:6]))
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err != nil {
		tmp, err := os.MkdirTemp(filepath.Dir(model), "tmp-ref-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command(testutil.Python(t), "-m", "espmedsam.infer", "--onnx", model, "--image", image,
			"--channel", ch, "--out", tmp, "--threads", "2")
		cmd.Dir = filepath.Join(testutil.RepoRoot(t), "model")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("espmedsam.infer (needs Debian's python3-numpy, python3-onnx, python3-pil, a C compiler): %v\n%s", err, out)
		}
		if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
			t.Fatal(err)
		}
	}
	var meta referenceMeta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	return readFloat32s(t, filepath.Join(dir, "logits.f32")), meta
}

// tilingModel exports the tiny random-weights ESP-MedSAM (seed 0, as testdata's) with the
// optional output patch_logits and tilingChannelInputs, cached under the user cache directory
// keyed by the arguments and model/espmedsam's sources (an export takes half a minute).
func tilingModel(t *testing.T) string {
	t.Helper()
	args := []string{"-m", "espmedsam.export", "--seed", "0", "--widths", "tiny", "--size", "256",
		"--patch-output", "--channel-inputs", tilingChannelInputs}
	dir := cachedFixtureDir(t, "tiling", args)
	model := filepath.Join(dir, "model.onnx")
	if _, err := os.Stat(model); err == nil {
		return model
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, fmt.Sprintf("tmp-%d.onnx", os.Getpid()))
	cmd := exec.Command(testutil.Python(t), append(args, "--out", tmp)...)
	cmd.Dir = filepath.Join(testutil.RepoRoot(t), "model")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("export (needs Debian's python3-torch, python3-onnx): %v\n%s", err, out)
	}
	if err := os.Rename(tmp, model); err != nil {
		t.Fatal(err)
	}
	return model
}

// cachedFixtureDir is a folder under the user cache directory named by kind and a key of args
// and the content of model/espmedsam: a change to the model code gives a new folder.
func cachedFixtureDir(t testing.TB, kind string, args []string) string {
	t.Helper()
	key := sha256.New()
	fmt.Fprintln(key, args)
	sources, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "model", "espmedsam", "*.py"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("model/espmedsam sources not found: %v", err)
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
	return filepath.Join(cache, "espnode", kind, fmt.Sprintf("%x", key.Sum(nil)[:8]))
}

func readRGB(t testing.TB, path string) *pixel.RGB {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	rgba := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	out := &pixel.RGB{Width: b.Dx(), Height: b.Dy(), Pix: make([]uint8, b.Dx()*b.Dy()*3)}
	for i := range b.Dx() * b.Dy() {
		copy(out.Pix[3*i:3*i+3], rgba.Pix[4*i:4*i+3])
	}
	return out
}
