package segment

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	_ "image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/pixel"
)

// BenchmarkPredict measures one source image through the channel's input mode with the shipped
// model's network (compact widths, S = 256) on two ONNX Runtime threads, as the node runs it on
// the CPU (batch 2): the letterbox of one image is the reference, and each tiled mode is
// reported beside it (the tiles of one image run as one request). The input modes are those
// the trained model's metadata gives (model/README.md, "Tiling contract"); the network is the
// shipped one, so the per-input cost is the trained model's.
//
//	go test ./seg/segment -run '^$' -bench Predict -benchtime 20x
func BenchmarkPredict(b *testing.B) {
	e := shippedEngine(b)
	tiles := func(long, stride int, flips ...string) *onnx.ChannelInput {
		return &onnx.ChannelInput{Mode: onnx.ModeTiles, LongSide: long, Tile: 256, Stride: stride, Window: "hann", Pad: "zero", Flips: flips}
	}
	const drive, hrf = "fundus/drive/test/images/drive_05.png", "fundus/hrf/test/images/02_g.png"
	const dsb = "microscopy/dsb2018/test/images/0287e7ee5b007c91ae2bd7628d09735e70496bc6127ecb7f3dd043e04ce37426.png"
	for _, c := range []struct {
		name, channel, image string
		input                *onnx.ChannelInput // nil: the shipped model's input for the channel
	}{
		{"letterbox/xray-512", "xray", "xray/shenzhen-sample/test/images/CHNCXR_0005_0.png", &onnx.ChannelInput{Mode: onnx.ModeLetterbox}},
		{"letterbox+h/busi", "ultrasound", "ultrasound/busi/test/images/benign_0007.png", &onnx.ChannelInput{Mode: onnx.ModeLetterbox, Flips: []string{"h"}}},
		{"shipped/fundus-drive", "fundus", drive, nil},
		{"shipped/fundus-hrf", "fundus", hrf, nil},
		{"tiles640/drive-9", "fundus", drive, tiles(640, 192)},
		{"tiles640/hrf-6", "fundus", hrf, tiles(640, 192)},
		{"tiles448/dsb-4", "microscopy", dsb, tiles(448, 192)},
		{"tiles448+h/dsb-8", "microscopy", dsb, tiles(448, 192, "h")},
	} {
		b.Run(c.name, func(b *testing.B) {
			r, err := e.Route(c.channel)
			if err != nil {
				b.Fatal(err)
			}
			if c.input != nil {
				r.Input = *c.input
			}
			img := benchRGB(b, testutil.SharedData(b, "seg2d", c.image))
			var inputs int
			var prep, infer, assemble float64
			for b.Loop() {
				p, err := r.Predict(context.Background(), img)
				if err != nil {
					b.Fatal(err)
				}
				inputs = p.Inputs
				prep += p.Prepare.Seconds() * 1000
				infer += p.Infer.Seconds() * 1000
				assemble += p.Assemble.Seconds() * 1000
			}
			n := float64(b.N)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/n, "ms/image")
			b.ReportMetric(float64(inputs), "inputs/image")
			b.ReportMetric(prep/n, "prep-ms")
			b.ReportMetric(infer/n, "infer-ms")
			b.ReportMetric(assemble/n, "assemble-ms")
		})
	}
}

// shippedEngine opens the shipped model on the CPU with two threads and the CPU's batch, as the
// node runs it; it is closed when the benchmark ends.
func shippedEngine(b *testing.B) *onnx.Engine {
	if os.Getenv(onnx.LibraryEnv) == "" {
		b.Setenv(onnx.LibraryEnv, filepath.Join(testutil.RepoRoot(b), "third_party", "onnxruntime", "libonnxruntime.so.1"))
	}
	path, err := WriteShippedModel(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	e, err := onnx.OpenUniversal(path, onnx.Options{Provider: onnx.ProviderCPU, Threads: 2, MaxBatch: onnx.DefaultBatch(onnx.ProviderCPU)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

func benchRGB(b *testing.B, path string) *pixel.RGB {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		b.Fatal(err)
	}
	r := img.Bounds()
	rgba := image.NewNRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, r.Min, draw.Src)
	out := &pixel.RGB{Width: r.Dx(), Height: r.Dy(), Pix: make([]uint8, r.Dx()*r.Dy()*3)}
	for i := range r.Dx() * r.Dy() {
		copy(out.Pix[3*i:3*i+3], rgba.Pix[4*i:4*i+3])
	}
	return out
}

// BenchmarkTileRuns measures the 9 tiles of a fundus image (DRIVE 05 at the working size 640)
// through the shipped network on two threads in session runs of 1, 2, 3 and all 9 inputs: why
// seg/onnx runs a request in runs of at most MaxBatch (2 on the CPU) instead of one run.
//
//	go test ./seg/segment -run '^$' -bench TileRuns -benchtime 5x
func BenchmarkTileRuns(b *testing.B) {
	if os.Getenv(onnx.LibraryEnv) == "" {
		b.Setenv(onnx.LibraryEnv, filepath.Join(testutil.RepoRoot(b), "third_party", "onnxruntime", "libonnxruntime.so.1"))
	}
	path, err := WriteShippedModel(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	m, err := onnx.Open(path, onnx.Options{Provider: onnx.ProviderCPU, Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	img := benchRGB(b, testutil.SharedData(b, "seg2d", "fundus", "drive", "test", "images", "drive_05.png"))
	w, h := onnx.WorkingSize(img.Width, img.Height, 640)
	work := pixel.Resample(img.Pix, img.Width, img.Height, 3, w, h)
	const s = 256
	var tiles []float32
	for _, y := range onnx.TileOrigins(h, s, 192) {
		for _, x := range onnx.TileOrigins(w, s, 192) {
			for c := range 3 {
				for ty := range s {
					for tx := range s {
						tiles = append(tiles, work[((y+ty)*w+x+tx)*3+c])
					}
				}
			}
		}
	}
	n := len(tiles) / (3 * s * s)
	queries := make([]int64, n)
	for i := range queries {
		queries[i] = 3
	}
	for _, run := range []int{1, 2, 3, n} {
		b.Run(fmt.Sprintf("runs-of-%d", run), func(b *testing.B) {
			per := 3 * s * s
			for b.Loop() {
				for at := 0; at < n; at += run {
					k := min(run, n-at)
					if _, err := m.Run(tiles[at*per:(at+k)*per], queries[at:at+k]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/image")
			b.ReportMetric(float64(n), "tiles")
		})
	}
}

// BenchmarkSegment measures what the pipeline's segment step does with one stored instance
// (Segmenter.Segment: parse, decode and render, the channel's input mode, the mask at the
// source's size, the SEG's encoding) for sources of the e2e harness, one or two a channel, with
// the shipped model on two threads: the node's work around the model is total-ms minus infer-ms.
//
//	go test ./seg/segment -run '^$' -bench Segment -benchtime 10x
func BenchmarkSegment(b *testing.B) {
	e := shippedEngine(b)
	s := New(e)
	for _, c := range []struct{ name, channel, file string }{
		{"xray/cr-1760", "xray", "CR/wg04_RG3_UNC_mono1.dcm"},
		{"xray/dx", "xray", "DX/highdicom_dx_image_mono1_evrle.dcm"},
		{"fundus/drive", "fundus", "wrapped/OP_drive_drive_05.dcm"},
		{"fundus/chasedb1", "fundus", "wrapped/OP_chasedb1_Image_03L.dcm"},
		{"microscopy/gbm40", "microscopy", "wrapped/GM_gbm40_gbm40_25.dcm"},
		{"ultrasound/us1", "ultrasound", "US/wg04_US1_UNC.dcm"},
		{"colonoscopy/polypgen", "colonoscopy", "wrapped/ES_polypgen_C3_EndoCV2021_00428.dcm"},
		{"dermoscopy/ph2", "dermoscopy", "wrapped/XC_ph2_IMD092.dcm"},
	} {
		b.Run(c.name, func(b *testing.B) {
			in := File(testutil.SharedData(b, "dicom", c.file))
			var t Timing
			for b.Loop() {
				res, err := s.Segment(context.Background(), Request{Sources: []Input{in}, Channel: c.channel})
				if err != nil {
					b.Fatal(err)
				}
				t.Decode += res.Timing.Decode
				t.Infer += res.Timing.Infer
				t.Post += res.Timing.Post
				t.Encode += res.Timing.Encode
			}
			ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "total-ms")
			b.ReportMetric(ms(t.Decode), "decode-ms")
			b.ReportMetric(ms(t.Infer), "infer-ms")
			b.ReportMetric(ms(t.Post), "post-ms")
			b.ReportMetric(ms(t.Encode), "encode-ms")
		})
	}
}
