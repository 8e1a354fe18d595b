package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// BenchConfig says what Bench measures.
type BenchConfig struct {
	// Reference is the provider whose outputs the measured provider's are compared with, and
	// whose speed is measured beside it on the same batches; "" for neither.
	Reference string
	// Batches are the batch sizes timed (1 for latency, larger for throughput).
	Batches []int
	// Warmup is how many untimed runs precede the timed ones of each batch size (the first of
	// them is reported on its own: a GPU provider compiles its kernels there).
	Warmup int
	// Iters is how many runs of each batch size are timed.
	Iters int
	// ParityImages is how many images the parity check runs (in one batch); 0 means 4.
	ParityImages int
	// Seed draws the synthetic images.
	Seed uint64
	// Images replaces the synthetic images: float32 [N,3,S,S], RGB 0..255.
	Images []float32
}

// BenchReport is what Bench found, shaped for JSON.
type BenchReport struct {
	Model             string            `json:"model"`
	ModelName         string            `json:"model_name"`
	InputSize         int               `json:"input_size"`
	ONNXRuntime       string            `json:"onnxruntime"`
	Library           string            `json:"library"`
	ProviderRequested string            `json:"provider_requested"`
	Provider          string            `json:"provider"`
	Unavailable       map[string]string `json:"unavailable,omitempty"`
	VulkanDevices     []VulkanDevice    `json:"vulkan_devices"`
	VulkanError       string            `json:"vulkan_error,omitempty"`
	Threads           int               `json:"threads"`
	CPUs              int               `json:"cpus"`
	OpenMS            float64           `json:"open_ms"`
	Reference         string            `json:"reference,omitempty"`
	ReferenceOpenMS   float64           `json:"reference_open_ms,omitempty"`
	Parity            *Parity           `json:"parity,omitempty"`
	Runs              []BenchRun        `json:"runs"`
}

// BenchRun is the timing of one batch size on the measured provider and on the reference.
type BenchRun struct {
	Batch int `json:"batch"`
	Timing
	Reference *Timing `json:"reference,omitempty"`
	// Speedup is the reference's time per image over the measured provider's.
	Speedup float64 `json:"speedup,omitempty"`
	// Error is why this batch size failed (a GPU can refuse a batch too large for its buffers);
	// the other sizes are still measured.
	Error string `json:"error,omitempty"`
}

// Timing is the time of repeated runs of one batch.
type Timing struct {
	Iters int `json:"iters"`
	// FirstMS is the first run's time, which includes one-time work (kernel compilation, memory
	// planning); 0 when there was no warm-up run.
	FirstMS    float64 `json:"first_ms"`
	MedianMS   float64 `json:"median_ms"`
	MeanMS     float64 `json:"mean_ms"`
	MinMS      float64 `json:"min_ms"`
	MSPerImage float64 `json:"ms_per_image"`
	ImagesPerS float64 `json:"images_per_s"`
}

// Parity compares two providers' logits on the same images.
type Parity struct {
	Reference   string  `json:"reference"`
	Images      int     `json:"images"`
	MaxAbsDiff  float64 `json:"max_abs_diff"`
	MeanAbsDiff float64 `json:"mean_abs_diff"`
	// Dice is that of the masks (logits above the model's threshold) over all images together;
	// MinDice the lowest of one image's. Two empty masks agree (1).
	Dice    float64 `json:"dice"`
	MinDice float64 `json:"min_dice"`
	// Foreground is the share of the reference's pixels in the mask: near 0 or 1, Dice says little.
	Foreground float64 `json:"foreground"`
	// NonFinite counts logits that are NaN or infinite on either side.
	NonFinite int `json:"non_finite"`
	// Error is why the comparison could not run; the timings are still measured.
	Error string `json:"error,omitempty"`
}

// Bench opens the model on opts.Provider (and on cfg.Reference), compares their outputs on the
// same images, and times batches of cfg.Batches on each. opts.MaxBatch and BatchWait do not
// matter: Bench runs whole batches through Model.Run.
func Bench(ctx context.Context, path string, opts Options, cfg BenchConfig) (*BenchReport, error) {
	if cfg.Iters < 1 || len(cfg.Batches) == 0 || slices.ContainsFunc(cfg.Batches, func(b int) bool { return b < 1 }) {
		return nil, errors.New("bench: want at least one timed run and batch sizes of at least 1")
	}
	lib, version, err := LoadLibrary(opts.Library)
	if err != nil {
		return nil, err
	}
	rep := &BenchReport{Model: path, ONNXRuntime: version, Library: lib, ProviderRequested: opts.Provider,
		Threads: opts.Threads, CPUs: runtime.NumCPU(), VulkanDevices: []VulkanDevice{}}
	if rep.ProviderRequested == "" {
		rep.ProviderRequested = ProviderAuto
	}
	if devs, _, err := VulkanDevices(); err != nil {
		rep.VulkanError = err.Error()
	} else {
		rep.VulkanDevices = devs
	}
	start := time.Now()
	m, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	rep.OpenMS = ms(time.Since(start))
	rep.Provider, rep.ModelName, rep.InputSize = m.Provider(), m.Metadata().ModelName, m.InputSize()
	for _, e := range m.Skipped() {
		var pe *ProviderError
		if errors.As(e, &pe) {
			if rep.Unavailable == nil {
				rep.Unavailable = map[string]string{}
			}
			rep.Unavailable[pe.Provider] = pe.Err.Error()
		}
	}

	s := m.InputSize()
	per := imageChannels * s * s
	images := cfg.Images
	if images == nil {
		images = SyntheticImages(max(cfg.ParityImages, 4), s, cfg.Seed)
	}
	if len(images) == 0 || len(images)%per != 0 {
		return nil, fmt.Errorf("bench: %d input values are not a whole number of 3x%dx%d images", len(images), s, s)
	}
	batch := func(n int) ([]float32, []int64) { return cycleBatch(images, per, n, m.Metadata().Channels) }

	var ref *Model
	if cfg.Reference != "" {
		ro := opts
		ro.Provider = cfg.Reference
		start := time.Now()
		if ref, err = Open(path, ro); err != nil {
			return nil, fmt.Errorf("bench: reference: %w", err)
		}
		defer ref.Close()
		rep.Reference, rep.ReferenceOpenMS = ref.Provider(), ms(time.Since(start))
		n := cfg.ParityImages
		if n <= 0 {
			n = 4
		}
		rep.Parity = parity(m, ref, n, batch)
	}

	for _, b := range cfg.Batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		imgs, queries := batch(b)
		run := BenchRun{Batch: b}
		t, err := Measure(ctx, m, imgs, queries, cfg.Warmup, cfg.Iters)
		if err != nil {
			run.Error = err.Error()
			rep.Runs = append(rep.Runs, run)
			continue
		}
		run.Timing = t
		if ref != nil {
			rt, err := Measure(ctx, ref, imgs, queries, cfg.Warmup, cfg.Iters)
			if err != nil {
				run.Error = "reference: " + err.Error()
			} else {
				run.Reference = &rt
				run.Speedup = round(rt.MSPerImage/t.MSPerImage, 3)
			}
		}
		rep.Runs = append(rep.Runs, run)
	}
	return rep, nil
}

// parity runs n images through both models and compares the logits.
func parity(m, ref *Model, n int, batch func(int) ([]float32, []int64)) *Parity {
	p := &Parity{Reference: ref.Provider(), Images: n}
	imgs, queries := batch(n)
	want, err := ref.Run(imgs, queries)
	if err != nil {
		p.Error = "reference: " + err.Error()
		return p
	}
	got, err := m.Run(imgs, queries)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	c := Compare(want, got, m.InputSize()*m.InputSize(), m.Metadata().Threshold)
	c.Reference = p.Reference
	return &c
}

// Measure runs one batch warmup times untimed, then iters times timed.
func Measure(ctx context.Context, m *Model, images []float32, queries []int64, warmup, iters int) (Timing, error) {
	var t Timing
	times := make([]float64, 0, iters)
	for i := range warmup + iters {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		start := time.Now()
		if _, err := m.Run(images, queries); err != nil {
			return t, err
		}
		d := ms(time.Since(start))
		switch {
		case i == 0 && warmup > 0:
			t.FirstMS = d
		case i >= warmup:
			times = append(times, d)
		}
	}
	var sum float64
	for _, d := range times {
		sum += d
	}
	slices.Sort(times)
	n := float64(len(queries))
	t.Iters = len(times)
	t.MeanMS = round(sum/float64(len(times)), 3)
	t.MedianMS = times[len(times)/2]
	t.MinMS = times[0]
	t.MSPerImage = round(t.MedianMS/n, 3)
	t.ImagesPerS = round(1000*n/t.MedianMS, 3)
	return t, nil
}

// Compare compares logits [N,1,S,S] of two runs on the same images (size = S*S): the largest and
// the mean absolute difference, and the Dice of the masks above threshold. Values that are not
// finite (a GPU kernel gone wrong) are counted in NonFinite and left out of the differences, so
// that the report stays JSON.
func Compare(want, got []float32, size int, threshold float32) Parity {
	if size < 1 || len(want) != len(got) || len(want) == 0 || len(want)%size != 0 {
		return Parity{Error: fmt.Sprintf("cannot compare %d logits with %d in images of %d", len(want), len(got), size)}
	}
	p := Parity{Images: len(want) / size, MinDice: 1}
	var sumDiff float64
	var both, a, b, finite int
	for img := range p.Images {
		var ib, ia, ig int
		for i := img * size; i < (img+1)*size; i++ {
			w, g := float64(want[i]), float64(got[i])
			if math.IsNaN(w) || math.IsNaN(g) || math.IsInf(w, 0) || math.IsInf(g, 0) {
				p.NonFinite++
			} else {
				d := math.Abs(w - g)
				p.MaxAbsDiff = max(p.MaxAbsDiff, d)
				sumDiff += d
				finite++
			}
			wm, gm := want[i] > threshold, got[i] > threshold
			if wm {
				ia++
			}
			if gm {
				ig++
			}
			if wm && gm {
				ib++
			}
		}
		p.MinDice = math.Min(p.MinDice, dice(ib, ia, ig))
		both, a, b = both+ib, a+ia, b+ig
	}
	if finite > 0 {
		p.MeanAbsDiff = sumDiff / float64(finite)
	}
	p.Dice = dice(both, a, b)
	p.Foreground = round(float64(a)/float64(len(want)), 6)
	return p
}

func dice(both, a, b int) float64 {
	if a+b == 0 {
		return 1
	}
	return 2 * float64(both) / float64(a+b)
}

// SyntheticImages draws n image-like inputs [n,3,s,s] (RGB 0..255): a few overlapping disks of
// random brightness on a random background, with noise, so that a model's masks have both
// values (white noise alone gives the SPPG patch map one value). Deterministic for a seed.
func SyntheticImages(n, s int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x65737031))
	out := make([]float32, n*imageChannels*s*s)
	base := make([]float32, s*s)
	for img := range n {
		clear(base)
		for range 4 {
			cy, cx, r := 0.1+0.8*rng.Float64(), 0.1+0.8*rng.Float64(), 0.05+0.25*rng.Float64()
			v := float32(40 + 80*rng.Float64())
			for y := range s {
				dy := float64(y)/float64(s) - cy
				for x := range s {
					dx := float64(x)/float64(s) - cx
					if dy*dy+dx*dx < r*r {
						base[y*s+x] += v
					}
				}
			}
		}
		for c := range imageChannels {
			gain, offset := float32(0.6+0.6*rng.Float64()), float32(95*rng.Float64())
			plane := out[(img*imageChannels+c)*s*s:][:s*s]
			for i, b := range base {
				plane[i] = min(max(b*gain+offset+float32(12*rng.NormFloat64()), 0), 255)
			}
		}
	}
	return out
}

// cycleBatch builds a batch of n images from the given ones (cycled) with the channels' queries
// (cycled), so that a batch mixes modalities as the node's batches do.
func cycleBatch(images []float32, per, n int, chans []ChannelInfo) ([]float32, []int64) {
	k := len(images) / per
	out := make([]float32, 0, n*per)
	queries := make([]int64, n)
	for i := range n {
		j := i % k
		out = append(out, images[j*per:(j+1)*per]...)
		queries[i] = chans[i%len(chans)].Query
	}
	return out, queries
}

func ms(d time.Duration) float64 { return round(float64(d.Microseconds())/1000, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
