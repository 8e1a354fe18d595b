package onnx

import (
	"context"
	"errors"
	"fmt"
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
	wait     time.Duration
	log      zerolog.Logger

	// runMu keeps Close from destroying the session under a running Run.
	runMu     sync.RWMutex
	closed    bool
	reqs      chan *request
	done      chan struct{}
	closeOnce sync.Once
	loopDone  chan struct{}
}

type request struct {
	ctx   context.Context
	image []float32
	query int64
	res   chan result
}

type result struct {
	logits []float32
	err    error
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

// Provider returns the execution provider the session runs on.
func (m *Model) Provider() string { return m.provider }

// Skipped returns why each provider tried before Provider() failed (ProviderAuto only), each a
// *ProviderError.
func (m *Model) Skipped() []error { return append([]error(nil), m.skipped...) }

// Infer segments one pre-processed image (float32 [3,S,S], RGB 0..255) with the decoding
// query and returns its logits [S,S]. Concurrent calls are gathered into batches of up to
// MaxBatch images that arrive within BatchWait of each other.
func (m *Model) Infer(ctx context.Context, image []float32, query int64) ([]float32, error) {
	s := m.md.InputSize
	if len(image) != imageChannels*s*s {
		return nil, fmt.Errorf("infer: image has %d values, want 3x%dx%d = %d", len(image), s, s, imageChannels*s*s)
	}
	r := &request{ctx: ctx, image: image, query: query, res: make(chan result, 1)}
	select {
	case m.reqs <- r:
	case <-m.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.res:
		return res.logits, res.err
	case <-ctx.Done():
		// The batch may still run this image; its result goes to the buffered channel and is dropped.
		return nil, ctx.Err()
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
		if m.maxBatch > 1 && m.wait > 0 {
			timer := time.NewTimer(m.wait)
		gather:
			for len(batch) < m.maxBatch {
				select {
				case r := <-m.reqs:
					batch = append(batch, r)
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
	per := imageChannels * m.md.InputSize * m.md.InputSize
	images := make([]float32, 0, len(live)*per)
	queries := make([]int64, 0, len(live))
	for _, r := range live {
		images = append(images, r.image...)
		queries = append(queries, r.query)
	}
	start := time.Now()
	logits, err := m.Run(images, queries)
	m.log.Debug().Int("batch", len(live)).Dur("took", time.Since(start)).Msg("batch run")
	out := m.md.InputSize * m.md.InputSize
	for i, r := range live {
		if err != nil {
			r.res <- result{err: err}
			continue
		}
		r.res <- result{logits: logits[i*out : (i+1)*out : (i+1)*out]}
	}
}

// Run runs one batch directly, without the batcher: images is float32 [N,3,S,S] and queries
// [N]; the result is the logits [N,1,S,S]. It is safe for concurrent use (ONNX Runtime
// sessions allow concurrent runs), and is what benchmarks and parity tests call.
func (m *Model) Run(images []float32, queries []int64) ([]float32, error) {
	n, s := len(queries), m.md.InputSize
	if n == 0 {
		return nil, errors.New("run: empty batch")
	}
	if len(images) != n*imageChannels*s*s {
		return nil, fmt.Errorf("run: %d images need %d values, got %d", n, n*imageChannels*s*s, len(images))
	}
	m.runMu.RLock()
	defer m.runMu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	for i, q := range queries {
		if !m.hasQuery(q) {
			return nil, fmt.Errorf("run: image %d asks for query %d, which no channel of %s uses", i, q, m.path)
		}
	}
	img, err := ort.NewTensor(ort.NewShape(int64(n), imageChannels, int64(s), int64(s)), images)
	if err != nil {
		return nil, fmt.Errorf("run: image tensor: %w", err)
	}
	defer img.Destroy()
	mod, err := ort.NewTensor(ort.NewShape(int64(n)), queries)
	if err != nil {
		return nil, fmt.Errorf("run: modality tensor: %w", err)
	}
	defer mod.Destroy()
	logits := make([]float32, n*s*s)
	out, err := ort.NewTensor(ort.NewShape(int64(n), logitsChannels, int64(s), int64(s)), logits)
	if err != nil {
		return nil, fmt.Errorf("run: logits tensor: %w", err)
	}
	defer out.Destroy()
	if err := m.sess.Run([]ort.Value{img, mod}, []ort.Value{out}); err != nil {
		return nil, fmt.Errorf("run %s on %d images: %w", m.path, n, err)
	}
	return logits, nil
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
