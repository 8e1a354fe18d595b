package onnx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	ort "github.com/yalue/onnxruntime_go"
)

// Options configure how a model file is loaded and served.
type Options struct {
	// Library is an explicit path to libonnxruntime.so (a flag or the configuration); empty
	// means the search that FindLibrary describes.
	Library string
	// Provider is one of Providers(); empty means ProviderAuto.
	Provider string
	// DeviceID is the GPU index for the GPU providers.
	DeviceID int
	// Threads is ONNX Runtime's intra-op thread count; 0 lets ONNX Runtime choose (all cores).
	Threads int
	// Spin lets ONNX Runtime's idle intra-op threads spin-wait for work instead of sleeping.
	// Off by default: the node shares its cores with DICOM I/O and other work, and on two
	// shared cores spinning made S=256 runs 2.5 times slower and S=1024 runs 1.1 to 1.7
	// times slower (docs/PERFORMANCE.md); on cores dedicated to inference it can save latency.
	Spin bool
	// MaxBatch is the most images run together (B); 0 means 1. DefaultBatch is the node's
	// choice when the configuration leaves it open.
	MaxBatch int
	// BatchWait is how long the first image of a batch waits for others to join it.
	BatchWait time.Duration
	// Logger receives provider selection and batching events.
	Logger zerolog.Logger

	// outputs are the outputs the session computes; Open sets them from the file's signature.
	outputs []string
}

// sessionOutputs are the output names a session is created for: logits, and patch_logits when
// the file has that output.
func sessionOutputs(o Options) []string {
	if len(o.outputs) == 0 {
		return []string{OutputLogits}
	}
	return o.outputs
}

// DefaultBatch is the batch size for a requested provider when none is configured: 2 on the CPU,
// where ONNX Runtime already spreads one image over every core and a larger batch only adds
// waiting, and 8 for a GPU provider, whose throughput grows with the batch. ProviderAuto takes 8
// even when it falls back to the CPU: a batch waits only BatchWait for company, so a lone image
// is never held longer.
func DefaultBatch(provider string) int {
	if provider == ProviderCPU {
		return 2
	}
	return 8
}

// ErrClosed is returned by Infer on a closed model.
var ErrClosed = errors.New("model is closed")

// Model is one loaded model file: a single ONNX Runtime session shared by all callers, with a
// batcher in front of it. It is safe for concurrent use.
type Model struct {
	path     string
	md       *Metadata
	provider string
	skipped  []error
	sess     *ort.DynamicAdvancedSession
	maxBatch int
	// patch is whether the session also computes patch_logits.
	patch bool
	wait  time.Duration
	log   zerolog.Logger

	// runMu keeps Close from destroying the session under a running Run.
	runMu     sync.RWMutex
	closed    bool
	reqs      chan *request
	done      chan struct{}
	closeOnce sync.Once
	loopDone  chan struct{}
}

// request is one caller's images (float32 [n,3,S,S]) with a query each; the batcher runs them
// in one session run, with other requests' when they fit.
type request struct {
	ctx     context.Context
	images  []float32
	queries []int64
	res     chan result
}

type result struct {
	out Outputs
	err error
}

// Outputs are a run's outputs for n images: Logits float32 [n,1,S,S] and, when the file has the
// output (Model.HasPatch), Patch float32 [n,1,S/32,S/32], else nil.
type Outputs struct {
	Logits []float32
	Patch  []float32
}

// Open loads the ONNX Runtime library if needed, validates the model file against the
// contract, creates its session on the chosen execution provider and starts its batcher.
func Open(path string, opts Options) (*Model, error) {
	lib, _, err := LoadLibrary(opts.Library)
	if err != nil {
		return nil, err
	}
	provider, err := ParseProvider(opts.Provider)
	if err != nil {
		return nil, err
	}
	info, err := Inspect(path)
	if err != nil {
		return nil, err
	}
	patch := hasOutput(info.Outputs, OutputPatch)
	if patch {
		opts.outputs = []string{OutputLogits, OutputPatch}
	}
	sess, used, skipped, err := newSession(path, lib, provider, opts, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w", path, err)
	}
	m := &Model{
		path:     path,
		md:       info.Metadata,
		provider: used,
		skipped:  skipped,
		sess:     sess,
		maxBatch: max(opts.MaxBatch, 1),
		patch:    patch,
		wait:     max(opts.BatchWait, 0),
		log:      opts.Logger,
		reqs:     make(chan *request),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	go m.loop()
	return m, nil
}

// Path returns the model file's path.
func (m *Model) Path() string { return m.path }

// Metadata returns the model's validated metadata. The caller must not modify it.
func (m *Model) Metadata() *Metadata { return m.md }

// InputSize returns S, the side of the square input the model takes.
func (m *Model) InputSize() int { return m.md.InputSize }

// MaxBatch returns the most images the model runs together.
func (m *Model) MaxBatch() int { return m.maxBatch }

// HasPatch reports whether the file has the optional output patch_logits (Outputs.Patch).
func (m *Model) HasPatch() bool { return m.patch }

// Provider returns the execution provider the session runs on.
func (m *Model) Provider() string { return m.provider }

// Skipped returns why each provider tried before Provider() failed (ProviderAuto only), each a
// *ProviderError.
func (m *Model) Skipped() []error { return append([]error(nil), m.skipped...) }

// Infer segments one pre-processed image (float32 [3,S,S], RGB 0..255) with the decoding
// query and returns its logits [S,S]. Concurrent calls are gathered into batches of up to
// MaxBatch images that arrive within BatchWait of each other.
func (m *Model) Infer(ctx context.Context, image []float32, query int64) ([]float32, error) {
	out, err := m.InferMany(ctx, image, []int64{query})
	if err != nil {
		return nil, err
	}
	return out.Logits, nil
}

// InferMany segments n pre-processed images (float32 [n,3,S,S]) with a query each (the tiles
// and flipped variants of one source image) through the batcher, as one request: joined by other
// callers' images while the batch has room, and run in session runs of at most MaxBatch images
// one after the other (runChunks), so that the image's inputs are never interleaved with other
// work and come back together.
func (m *Model) InferMany(ctx context.Context, images []float32, queries []int64) (Outputs, error) {
	s := m.md.InputSize
	per := imageChannels * s * s
	if len(queries) == 0 || len(images) != len(queries)*per {
		return Outputs{}, fmt.Errorf("infer: %d values for %d images of 3x%dx%d", len(images), len(queries), s, s)
	}
	r := &request{ctx: ctx, images: images, queries: queries, res: make(chan result, 1)}
	select {
	case m.reqs <- r:
	case <-m.done:
		return Outputs{}, ErrClosed
	case <-ctx.Done():
		return Outputs{}, ctx.Err()
	}
	select {
	case res := <-r.res:
		return res.out, res.err
	case <-ctx.Done():
		// The batch may still run these images; the result goes to the buffered channel and is dropped.
		return Outputs{}, ctx.Err()
	}
}

func (m *Model) loop() {
	defer close(m.loopDone)
	for {
		var batch []*request
		select {
		case <-m.done:
			return
		case r := <-m.reqs:
			batch = append(batch, r)
		}
		n := len(batch[0].queries)
		if n < m.maxBatch && m.wait > 0 {
			timer := time.NewTimer(m.wait)
		gather:
			for n < m.maxBatch {
				select {
				case r := <-m.reqs:
					batch = append(batch, r)
					n += len(r.queries)
				case <-timer.C:
					break gather
				case <-m.done:
					break gather
				}
			}
			timer.Stop()
		}
		m.runBatch(batch)
	}
}

func (m *Model) runBatch(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.res <- result{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	var total int
	for _, r := range live {
		total += len(r.queries)
	}
	if len(live) == 1 && total <= m.maxBatch {
		// One request that fits: its own buffers go to the session as they are.
		out, err := m.RunOutputs(live[0].images, live[0].queries)
		live[0].res <- result{out: out, err: err}
		return
	}
	s := m.md.InputSize
	per := imageChannels * s * s
	images := make([]float32, 0, total*per)
	queries := make([]int64, 0, total)
	for _, r := range live {
		images = append(images, r.images...)
		queries = append(queries, r.queries...)
	}
	start := time.Now()
	out, err := m.runChunks(images, queries)
	m.log.Debug().Int("images", total).Int("requests", len(live)).Dur("took", time.Since(start)).Msg("batch run")
	lp, pp := s*s, (s/PatchCell)*(s/PatchCell)
	at := 0
	for _, r := range live {
		if err != nil {
			r.res <- result{err: err}
			continue
		}
		k := len(r.queries)
		o := Outputs{Logits: out.Logits[at*lp : (at+k)*lp : (at+k)*lp]}
		if out.Patch != nil {
			o.Patch = out.Patch[at*pp : (at+k)*pp : (at+k)*pp]
		}
		r.res <- result{out: o}
		at += k
	}
}

// runChunks runs images in session runs of at most MaxBatch. A request of many inputs (the 9
// tiles of a fundus image) is not run as one batch on the CPU: there one run of 9 inputs took 3
// to 5 times as long as 9 runs of 1 to 3 (seg/segment BenchmarkTileRuns, docs/MODEL.md), while
// on a GPU (MaxBatch 8) the tiles still run together.
func (m *Model) runChunks(images []float32, queries []int64) (Outputs, error) {
	n := len(queries)
	if n <= m.maxBatch {
		return m.RunOutputs(images, queries)
	}
	s := m.md.InputSize
	per, lp, pp := imageChannels*s*s, s*s, (s/PatchCell)*(s/PatchCell)
	all := Outputs{Logits: make([]float32, 0, n*lp)}
	for at := 0; at < n; at += m.maxBatch {
		k := min(m.maxBatch, n-at)
		out, err := m.RunOutputs(images[at*per:(at+k)*per], queries[at:at+k])
		if err != nil {
			return Outputs{}, err
		}
		all.Logits = append(all.Logits, out.Logits...)
		if out.Patch != nil {
			all.Patch = append(slices.Grow(all.Patch, n*pp), out.Patch...)
		}
	}
	return all, nil
}

// Run runs one batch directly, without the batcher: images is float32 [N,3,S,S] and queries
// [N]; the result is the logits [N,1,S,S]. It is safe for concurrent use (ONNX Runtime
// sessions allow concurrent runs), and is what benchmarks and parity tests call.
func (m *Model) Run(images []float32, queries []int64) ([]float32, error) {
	out, err := m.RunOutputs(images, queries)
	return out.Logits, err
}

// RunOutputs is Run with every output the session computes (patch_logits too, when the file
// has it).
func (m *Model) RunOutputs(images []float32, queries []int64) (Outputs, error) {
	n, s := len(queries), m.md.InputSize
	if n == 0 {
		return Outputs{}, errors.New("run: empty batch")
	}
	if len(images) != n*imageChannels*s*s {
		return Outputs{}, fmt.Errorf("run: %d images need %d values, got %d", n, n*imageChannels*s*s, len(images))
	}
	m.runMu.RLock()
	defer m.runMu.RUnlock()
	if m.closed {
		return Outputs{}, ErrClosed
	}
	for i, q := range queries {
		if !m.hasQuery(q) {
			return Outputs{}, fmt.Errorf("run: image %d asks for query %d, which no channel of %s uses", i, q, m.path)
		}
	}
	img, err := ort.NewTensor(ort.NewShape(int64(n), imageChannels, int64(s), int64(s)), images)
	if err != nil {
		return Outputs{}, fmt.Errorf("run: image tensor: %w", err)
	}
	defer img.Destroy()
	mod, err := ort.NewTensor(ort.NewShape(int64(n)), queries)
	if err != nil {
		return Outputs{}, fmt.Errorf("run: modality tensor: %w", err)
	}
	defer mod.Destroy()
	out := Outputs{Logits: make([]float32, n*s*s)}
	lg, err := ort.NewTensor(ort.NewShape(int64(n), logitsChannels, int64(s), int64(s)), out.Logits)
	if err != nil {
		return Outputs{}, fmt.Errorf("run: logits tensor: %w", err)
	}
	defer lg.Destroy()
	outs := []ort.Value{lg}
	if m.patch {
		p := int64(s / PatchCell)
		out.Patch = make([]float32, n*int(p*p))
		pt, err := ort.NewTensor(ort.NewShape(int64(n), logitsChannels, p, p), out.Patch)
		if err != nil {
			return Outputs{}, fmt.Errorf("run: patch logits tensor: %w", err)
		}
		defer pt.Destroy()
		outs = append(outs, pt)
	}
	if err := m.sess.Run([]ort.Value{img, mod}, outs); err != nil {
		return Outputs{}, fmt.Errorf("run %s on %d images: %w", m.path, n, err)
	}
	return out, nil
}

func (m *Model) hasQuery(q int64) bool {
	for _, c := range m.md.Channels {
		if c.Query == q {
			return true
		}
	}
	return false
}

// Close stops the batcher, fails queued callers with ErrClosed and releases the session.
func (m *Model) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		<-m.loopDone
		m.runMu.Lock()
		defer m.runMu.Unlock()
		m.closed = true
		if e := m.sess.Destroy(); e != nil {
			err = fmt.Errorf("close model %s: %w", m.path, e)
		}
	})
	return err
}
