// Command infer measures the node's inference through ONNX Runtime (seg/onnx), for
// comparison with PyTorch on the same weights and input (run.sh runs both). It prints one JSON
// line shaped like model/espmedsam/bench.py's.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/espnode/espnode/seg/onnx"
)

type result struct {
	Runtime       string  `json:"runtime"`
	Size          int     `json:"size"`
	Batch         int     `json:"batch"`
	MsPerImage    float64 `json:"ms_per_image"`
	ImagesPerS    float64 `json:"images_per_s"`
	MsPerBatchMed float64 `json:"ms_per_batch_median"`
	Threads       int     `json:"threads"`
	Iters         int     `json:"iters"`
	Provider      string  `json:"provider"`
	Spin          bool    `json:"spin"`
	ORT           string  `json:"onnxruntime"`
	Model         string  `json:"model"`
	CPUs          int     `json:"cpus"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "infer:", err)
		os.Exit(1)
	}
}

func run() error {
	model := flag.String("model", "", "model file (espnode contract)")
	input := flag.String("input", "", "raw little-endian float32 [N,3,S,S] images (the parity generator's image.f32); default: a synthetic image")
	threads := flag.Int("threads", 2, "ONNX Runtime intra-op threads")
	iters := flag.Int("iters", 5, "timed runs")
	warmup := flag.Int("warmup", 1, "untimed runs first")
	batch := flag.Int("batch", 1, "images per run")
	provider := flag.String("provider", onnx.ProviderCPU, "execution provider")
	library := flag.String("onnxruntime", "", "path of libonnxruntime.so")
	spin := flag.Bool("spin", false, "let idle ONNX Runtime threads spin-wait (onnx.Options.Spin)")
	flag.Parse()
	if *model == "" || *iters < 1 || *batch < 1 {
		flag.Usage()
		return fmt.Errorf("--model is required; --iters and --batch must be >= 1")
	}
	m, err := onnx.Open(*model, onnx.Options{Library: *library, Provider: *provider, Threads: *threads, MaxBatch: *batch, Spin: *spin})
	if err != nil {
		return err
	}
	defer m.Close()
	s := m.InputSize()
	per := 3 * s * s
	images, err := loadImages(*input, per)
	if err != nil {
		return err
	}
	batchImages := make([]float32, 0, *batch*per)
	queries := make([]int64, *batch)
	chans := m.Metadata().Channels
	for i := range *batch {
		// Same images and modalities as model/espmedsam/bench.py: image i of the input
		// (cycled), modality i modulo the channel count.
		k := i % (len(images) / per)
		batchImages = append(batchImages, images[k*per:(k+1)*per]...)
		queries[i] = chans[i%len(chans)].Query
	}
	for range *warmup {
		if _, err := m.Run(batchImages, queries); err != nil {
			return err
		}
	}
	times := make([]float64, *iters)
	for i := range times {
		start := time.Now()
		if _, err := m.Run(batchImages, queries); err != nil {
			return err
		}
		times[i] = time.Since(start).Seconds()
	}
	var sum float64
	for _, t := range times {
		sum += t
	}
	perImage := sum / float64(len(times)) / float64(*batch)
	slices.Sort(times)
	_, version, _ := onnx.LoadLibrary(*library)
	out := result{
		Runtime: "onnxruntime-go", Size: s, Batch: *batch,
		MsPerImage: round(perImage*1000, 2), ImagesPerS: round(1/perImage, 4),
		MsPerBatchMed: round(times[len(times)/2]*1000, 2),
		Threads:       *threads, Iters: *iters, Provider: m.Provider(), Spin: *spin, ORT: version, Model: m.Metadata().ModelName,
		CPUs: runtime.NumCPU(),
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func loadImages(path string, per int) ([]float32, error) {
	if path == "" {
		img := make([]float32, per)
		for i := range img {
			img[i] = float32((i * 37) % 256)
		}
		return img, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 || len(b)%(4*per) != 0 {
		return nil, fmt.Errorf("%s holds %d bytes, not a whole number of %d-value images", path, len(b), per)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
