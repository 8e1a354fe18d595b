// Package segment is the segmentation step of the node: DICOM images in, a DICOM
// Segmentation out. It decodes every frame, runs the channel's model on each, and
// encodes one SEG per instance, or one over several instances of a series,
// reporting how long each stage took so that callers can export latency per
// channel and execution provider.
package segment

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/pixel"
)

// ErrUndecodable is wrapped by the error for a source whose pixel data or
// attributes this node cannot use (an unsupported transfer syntax, a missing
// attribute): retrying does not help.
var ErrUndecodable = errors.New("source cannot be segmented")

// Source is one decoded DICOM image: its file, its pixels and the attributes the SEG references
// (nil when read without them, Request.NoSEG), all from one parse of the file.
type Source struct {
	File  *dcm.File
	Image *pixel.Image
	SEG   *dicomseg.Source
}

// Input is one source to segment: a name for messages and how to read it.
type Input struct {
	// Name identifies the source in errors: a path, a SOP Instance UID.
	Name string
	// Open returns the source's Part-10 bytes (file meta, then data set).
	Open func() (io.ReadCloser, error)
}

// File is the Input of a Part-10 file.
func File(path string) Input {
	return Input{Name: path, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// ReadFile parses and checks a DICOM Part-10 file for segmentation: it reads the file once, and
// the pixels and the SEG's source attributes both come from that data set. Its errors wrap
// ErrUndecodable.
func ReadFile(path string) (*Source, error) {
	src, err := read(File(path), true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return src, nil
}

// read parses and checks one input; withSEG also requires what a SEG
// references. Its parse errors wrap ErrUndecodable.
func read(in Input, withSEG bool) (*Source, error) {
	rc, err := in.Open()
	if err != nil {
		// A source that is not there (fs.ErrNotExist: a missing file, object or index row)
		// will not come back, as one that cannot be parsed; any other failure to open it (the
		// index or the object store out of reach for a moment, a database restarting) is the
		// caller's to retry.
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
		}
		return nil, fmt.Errorf("open: %w", err)
	}
	f, err := pixel.ReadPart10(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	im, err := pixel.NewImage(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	src := &Source{File: f, Image: im}
	if withSEG {
		if src.SEG, err = dicomseg.SourceFromDataSet(f.DataSet); err != nil {
			return nil, fmt.Errorf("%w: SEG source: %w", ErrUndecodable, err)
		}
	}
	return src, nil
}

// Timing is where the time of one segmentation went.
type Timing struct {
	// Decode covers parsing, decoding, rendering and pre-processing.
	Decode time.Duration
	// Infer is the time spent waiting for the model, batching included.
	Infer time.Duration
	// Post covers post-processing of the logits into masks.
	Post time.Duration
	// Encode is the SEG encoding.
	Encode time.Duration
}

// Total is the sum of the stages.
func (t Timing) Total() time.Duration { return t.Decode + t.Infer + t.Post + t.Encode }

// Frame is one segmented frame as Request.Frame sees it.
type Frame struct {
	// Source is the index of the source in Request.Sources; Index is the
	// frame's (0-based) among the source's Count frames.
	Source, Index, Count int
	RGB                  *pixel.RGB
	Mask                 *pixel.Mask
}

// FrameFunc, when given, sees every frame's rendered image and mask; the
// command-line segmenter writes PNGs with it.
type FrameFunc func(Frame) error

// Request is one segmentation: the sources (one instance, or the instances of
// a series in order) and the channel to run.
type Request struct {
	Sources []Input
	Channel string
	// Fractional writes probabilities instead of a binary mask.
	Fractional bool
	// SEG are the encoder options; Segmenter fills AlgorithmName and
	// AlgorithmVersion from the model when they are empty.
	SEG dicomseg.Options
	// NoSEG makes no SEG: only the masks (Frame) are wanted, and a source
	// lacking what a SEG references is fine.
	NoSEG bool
	// Frame, when set, is called for each frame after post-processing.
	Frame FrameFunc
	// Concurrency is how many frames of a source are decoded, inferred and
	// post-processed at once; 0 or 1 takes them one after the other. More
	// lets one multi-frame source fill the model's batches by itself; Frame
	// is then called from several goroutines.
	Concurrency int
	// RejectImplausible withholds the SEG when the plausibility guard judges a source's masks
	// implausible (onnx.ChannelBounds.Judge: the foreground fraction or the patch confidence
	// outside the channel's bounds from the model's metadata): Result.Withheld is set and no
	// SEG is made. Without it the checks are still made and reported (Result.Checks).
	RejectImplausible bool
	// PerSource, when set, lets sources that cannot share one SEG (no
	// common frame of reference and plane geometry: photographs) get one
	// SEG each, with the SOP Instance UID PerSource returns for the source's.
	PerSource func(sourceSOPInstanceUID string) string
}

// Result is a finished segmentation.
type Result struct {
	// SEG is the one SEG covering every source, or, when the sources could
	// not share one and Request.PerSource was set, nil: SEGs has one per
	// source instead, in source order. Both are empty with Request.NoSEG.
	SEG        *dicomseg.Result
	SEGs       []*dicomseg.Result
	Channel    string
	Provider   string
	Model      string // model name
	Version    string // model version
	Frames     int
	Foreground int
	Timing     Timing
	// Checks are the plausibility guard's verdicts, one per source in source order; a channel
	// without bounds in the model (Guarded false) is never implausible.
	Checks  []Check
	Guarded bool
	// Withheld is set when Request.RejectImplausible withheld the SEG: SEG and SEGs are empty.
	Withheld bool
}

// Check is the plausibility verdict on one source: over all its frames, the share of pixels
// that are foreground and the highest patch confidence.
type Check struct {
	Source string
	onnx.Check
}

// Implausible returns the checks that failed.
func (r *Result) Implausible() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Implausible() {
			out = append(out, c)
		}
	}
	return out
}

// Segmenter runs segmentation requests on an engine. It is safe for
// concurrent use; concurrent requests meet in the model's batcher.
type Segmenter struct {
	engine *onnx.Engine
}

// New returns a Segmenter on engine.
func New(engine *onnx.Engine) *Segmenter { return &Segmenter{engine: engine} }

// ModelVersion returns the name and version of the model serving a channel,
// which name the SEG's algorithm and key its idempotent UIDs.
func (s *Segmenter) ModelVersion(ch string) (name, version string, err error) {
	route, err := s.engine.Route(ch)
	if err != nil {
		return "", "", err
	}
	md := route.Model.Metadata()
	return md.ModelName, md.ModelVersion, nil
}

// Bounds returns the plausibility bounds of the model serving a channel, nil when the model gives
// none for it (the guard then passes everything).
func (s *Segmenter) Bounds(ch string) (*onnx.ChannelBounds, error) {
	route, err := s.engine.Route(ch)
	if err != nil {
		return nil, err
	}
	return route.Bounds, nil
}

// Channels returns the channels the segmenter serves, sorted.
func (s *Segmenter) Channels() []string { return s.engine.Channels() }

// Segment decodes every frame of every source, segments it with the
// request's channel and encodes one SEG covering all of them.
func (s *Segmenter) Segment(ctx context.Context, req Request) (*Result, error) {
	if len(req.Sources) == 0 {
		return nil, errors.New("segment: no source")
	}
	route, err := s.engine.Route(req.Channel)
	if err != nil {
		return nil, err
	}
	md := route.Model.Metadata()
	res := &Result{Channel: req.Channel, Provider: route.Model.Provider(), Model: md.ModelName, Version: md.ModelVersion,
		Guarded: route.Bounds != nil}

	var (
		sources []*dicomseg.Source
		masks   [][]byte
		each    [][][]byte // masks per source
	)
	for si, in := range req.Sources {
		start := time.Now()
		src, err := read(in, !req.NoSEG)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		res.Timing.Decode += time.Since(start)
		m, st, err := s.frames(ctx, route, src, si, req, res)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		res.Checks = append(res.Checks, Check{Source: in.Name,
			Check: route.Bounds.Judge(float64(st.foreground)/float64(max(st.pixels, 1)), st.patchMax, st.hasPatch)})
		sources = append(sources, src.SEG)
		masks = append(masks, m...)
		each = append(each, m)
	}
	if req.NoSEG {
		return res, nil
	}
	if req.RejectImplausible && len(res.Implausible()) > 0 {
		// A SEG that names the channel's anatomy over output the channel cannot mean is worse
		// than none; in series mode one implausible instance withholds the series' SEG.
		res.Withheld = true
		return res, nil
	}

	ch, ok := channel.ByName(req.Channel)
	if !ok {
		// A model may serve a channel outside the node's table; take its own description.
		ch = route.Channel.Channel
		ch.Name = req.Channel
	}
	opts := req.SEG
	if req.Fractional {
		opts.Type = dicomseg.Fractional
	}
	if opts.AlgorithmName == "" {
		opts.AlgorithmName = md.ModelName
	}
	if opts.AlgorithmVersion == "" {
		opts.AlgorithmVersion = md.ModelVersion
	}
	start := time.Now()
	defer func() { res.Timing.Encode = time.Since(start) }()
	out, err := dicomseg.EncodeSeries(sources, []dicomseg.Segment{dicomseg.SegmentForChannel(ch, masks)}, opts)
	if err == nil {
		res.SEG = out
		res.SEGs = []*dicomseg.Result{out}
		return res, nil
	}
	if req.PerSource == nil || len(sources) == 1 {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	// Sources without a shared geometry cannot be frames of one SEG.
	for i, src := range sources {
		o := opts
		o.SOPInstanceUID = req.PerSource(src.SOPInstanceUID)
		out, err := dicomseg.Encode(src, []dicomseg.Segment{dicomseg.SegmentForChannel(ch, each[i])}, o)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, req.Sources[i].Name, err)
		}
		res.SEGs = append(res.SEGs, out)
	}
	return res, nil
}

// sourceStats is what the plausibility guard judges a source by, over all its frames.
type sourceStats struct {
	foreground, pixels int
	patchMax           float64
	hasPatch           bool
}

// frames segments every frame of one source, req.Concurrency at a time, and
// returns its masks in frame order.
func (s *Segmenter) frames(ctx context.Context, route onnx.Route, src *Source, si int, req Request, res *Result) ([][]byte, sourceStats, error) {
	var st sourceStats
	n := src.Image.NumFrames()
	masks := make([][]byte, n)
	errs := make([]error, n)
	var mu sync.Mutex // res
	sem := make(chan struct{}, max(req.Concurrency, 1))
	var wg sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var t Timing
			m, fs, err := s.frame(ctx, route, src, si, i, req, &t)
			mu.Lock()
			defer mu.Unlock()
			res.Timing.Decode += t.Decode
			res.Timing.Infer += t.Infer
			res.Timing.Post += t.Post
			if err != nil {
				errs[i] = err
				return
			}
			masks[i] = m
			res.Foreground += fs.foreground
			res.Frames++
			st.foreground += fs.foreground
			st.pixels += fs.pixels
			if fs.hasPatch {
				st.patchMax, st.hasPatch = max(st.patchMax, fs.patchMax), true
			}
		})
		if req.Concurrency <= 1 {
			// One at a time: the first failure stops the source, as it always did.
			wg.Wait()
			if errs[i] != nil {
				return nil, st, errs[i]
			}
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, st, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, st, err
	}
	return masks, st, nil
}

// frame segments frame i of a source through the channel's input mode (onnx.Route.Predict)
// and returns its mask (bits, or probabilities scaled to 0..255) and what the guard needs.
func (s *Segmenter) frame(ctx context.Context, route onnx.Route, src *Source, si, i int, req Request, t *Timing) ([]byte, sourceStats, error) {
	var st sourceStats
	im := src.Image
	start := time.Now()
	fr, err := im.Frame(i)
	if err != nil {
		return nil, st, fmt.Errorf("%w: frame %d: %w", ErrUndecodable, i+1, err)
	}
	rgb, err := im.Render(fr)
	if err != nil {
		return nil, st, fmt.Errorf("%w: frame %d: %w", ErrUndecodable, i+1, err)
	}
	t.Decode += time.Since(start)

	p, err := route.Predict(ctx, rgb)
	if err != nil {
		return nil, st, fmt.Errorf("frame %d: %w", i+1, err)
	}
	t.Decode += p.Prepare
	t.Infer += p.Infer
	t.Post += p.Assemble

	start = time.Now()
	mask, err := p.Mask(route.Model.Metadata().Threshold, req.Fractional)
	if err != nil {
		return nil, st, fmt.Errorf("frame %d: %w", i+1, err)
	}
	out := mask.Bits
	if req.Fractional {
		out = make([]byte, len(mask.Prob))
		for k, p := range mask.Prob {
			out[k] = byte(p*255 + 0.5)
		}
	}
	t.Post += time.Since(start)
	if req.Frame != nil {
		if err := req.Frame(Frame{Source: si, Index: i, Count: im.NumFrames(), RGB: rgb, Mask: mask}); err != nil {
			return nil, st, err
		}
	}
	st = sourceStats{foreground: mask.Foreground(), pixels: mask.Width * mask.Height, patchMax: p.PatchMax, hasPatch: p.HasPatch}
	return out, st, nil
}

// DerivedUID returns a UID determined by its parts: "2.25." and the decimal
// value of a version-8 UUID made from their SHA-256 (PS3.5 §B.2). The same
// parts always give the same UID, which is what makes a rerun replace its
// earlier SEG instead of adding a second one.
func DerivedUID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x80 // version 8: custom
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return "2.25." + new(big.Int).SetBytes(u).String()
}
