package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store"
)

// modelEnv names the default model file when --model is absent.
const modelEnv = config.EnvModel

// segmentFlags are the flags of `espnode segment`.
type segmentFlags struct {
	model, channel, outDir, library, provider, config string
	threads, batch                                    int
	batchWait                                         time.Duration
	fractional, noSEG, quiet, keepImplausible         bool
}

func (f *segmentFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", os.Getenv(modelEnv), "model file (ONNX, espnode contract); default $"+modelEnv+", else the shipped model")
	fs.StringVar(&f.channel, "channel", "", "channel for every input ("+strings.Join(channel.Names(), ", ")+"); default: the routing of `espnode serve` (pipeline.routing)")
	fs.StringVar(&f.config, "config", "", "YAML configuration `file` whose pipeline.routing picks each file's channel, as serve would")
	fs.StringVar(&f.outDir, "o", "", "output directory (required)")
	fs.StringVar(&f.library, "onnxruntime", "", "path of libonnxruntime.so (default: $"+onnx.LibraryEnv+", next to the binary, the system)")
	fs.StringVar(&f.provider, "provider", onnx.ProviderAuto, "execution provider: "+strings.Join(onnx.Providers(), ", "))
	fs.IntVar(&f.threads, "threads", 0, "ONNX Runtime intra-op threads (0: all cores)")
	fs.IntVar(&f.batch, "batch", 4, "most images run together")
	fs.DurationVar(&f.batchWait, "batch-wait", 20*time.Millisecond, "how long an image waits for others to fill a batch")
	fs.BoolVar(&f.fractional, "fractional", false, "write a FRACTIONAL SEG (probabilities) instead of BINARY")
	fs.BoolVar(&f.noSEG, "no-seg", false, "do not write DICOM SEG files")
	fs.BoolVar(&f.quiet, "q", false, "no progress bar")
	fs.BoolVar(&f.keepImplausible, "keep-implausible", false, "write the SEG even when the plausibility guard judges the output implausible for the channel (masks are written either way)")
}

func runSegment(ctx context.Context, env *cliEnv, args []string) error {
	var f segmentFlags
	fs := flag.NewFlagSet("segment", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: espnode segment [--model FILE] [--channel NAME | --config FILE] FILE.dcm... -o DIR")
		fmt.Fprintln(env.stderr, "Writes, per input, NAME_mask.png, NAME_overlay.png (per frame for multi-frame) and NAME_seg.dcm.")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return exitError{2}
	}
	switch {
	case len(files) == 0:
		fs.Usage()
		return errors.New("no input files")
	case f.outDir == "":
		return errors.New("-o DIR is required")
	}
	if f.channel != "" {
		if _, ok := channel.ByName(f.channel); !ok {
			return fmt.Errorf("unknown channel %q (want one of %s)", f.channel, strings.Join(channel.Names(), ", "))
		}
	}
	cfg, err := config.Load(f.config, os.Environ())
	if err != nil {
		return err
	}
	if f.model == "" {
		if f.model, err = shippedModelPath(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(f.outDir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: env.stderr, NoColor: true, TimeFormat: time.TimeOnly}).With().Timestamp().Logger().Level(zerolog.InfoLevel)
	engine, err := onnx.OpenUniversal(f.model, onnx.Options{
		Library: f.library, Provider: f.provider, Threads: f.threads,
		MaxBatch: f.batch, BatchWait: f.batchWait, Logger: log,
	})
	if err != nil {
		return err
	}
	defer engine.Close()

	s := &segmenter{flags: f, seg: segment.New(engine), router: pipeline.NewRouter(routes(cfg.Pipeline.Routing))}
	bar := newProgress(env.stderr, len(files), !f.quiet && len(files) > 1 && isTerminal(env.stderr))
	// One worker per batch slot, so that files decode in parallel and their frames meet in
	// the model's batcher.
	jobs := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for range max(f.batch, 1) {
		wg.Go(func() {
			for file := range jobs {
				res, err := s.segmentFile(ctx, file)
				mu.Lock()
				bar.clear()
				if err != nil {
					failed = append(failed, file)
					fmt.Fprintln(env.stderr, err) // it names the file
				} else {
					outs := res.outputs
					if len(outs) > 3 {
						outs = append(outs[:2:2], fmt.Sprintf("... (%d files)", len(res.outputs)))
					}
					fmt.Fprintf(env.stdout, "%s: %s, %d frame(s), %d foreground pixels -> %s\n", file, res.channel, res.frames, res.foreground, strings.Join(outs, ", "))
					if res.implausible != "" {
						fmt.Fprintf(env.stdout, "%s: %s\n", file, res.implausible)
					}
				}
				bar.step()
				mu.Unlock()
			}
		})
	}
feed:
	for _, file := range files {
		select {
		case jobs <- file:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	bar.done()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d files failed", len(failed), len(files))
	}
	return nil
}

type segmenter struct {
	flags  segmentFlags
	seg    *segment.Segmenter
	router *pipeline.Router
}

type segmentResult struct {
	channel    string
	frames     int
	foreground int
	outputs    []string
	// implausible says what the plausibility guard found, when it judged the output implausible.
	implausible string
}

// route picks a file's channel as the node does for an instance it stores: the attributes the
// store indexes (store.Describe), through the pipeline's router. A file has no calling AE, so
// rules that ask for one do not match.
func (s *segmenter) route(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		return "", err
	}
	inst, err := store.Describe(br, meta.TransferSyntaxUID)
	if err != nil {
		return "", err
	}
	d := s.router.Decide(inst)
	if d.Channel == "" {
		return "", fmt.Errorf("no channel for Modality %q, Body Part Examined %q (routing: %s): pass --channel", inst.Modality, inst.BodyPartExamined, d.Reason)
	}
	return d.Channel, nil
}

// segmentFile segments one DICOM file and writes its outputs.
func (s *segmenter) segmentFile(ctx context.Context, path string) (*segmentResult, error) {
	ch := s.flags.channel
	if ch == "" {
		var err error
		if ch, err = s.route(path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var (
		mu      sync.Mutex
		outputs [][]string // per frame, in frame order
	)
	res, err := s.seg.Segment(ctx, segment.Request{
		Sources:    []segment.Input{segment.File(path)},
		Channel:    ch,
		Fractional: s.flags.fractional,
		NoSEG:      s.flags.noSEG,
		// As serve withholds it (model.reject_implausible): a SEG naming the channel's anatomy
		// over output the channel cannot mean is worse than none.
		RejectImplausible: !s.flags.keepImplausible,
		// Frames go to the model concurrently, up to a batch at a time, so that a
		// multi-frame file fills batches by itself.
		Concurrency: max(s.flags.batch, 1),
		Frame: func(fr segment.Frame) error {
			name := base
			if fr.Count > 1 {
				name = fmt.Sprintf("%s_f%04d", base, fr.Index+1)
			}
			outs, err := s.writeFrame(name, fr)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if outputs == nil {
				outputs = make([][]string, fr.Count)
			}
			outputs[fr.Index] = outs
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	out := &segmentResult{channel: ch, frames: res.Frames, foreground: res.Foreground}
	for _, o := range outputs {
		out.outputs = append(out.outputs, o...)
	}
	if bad := res.Implausible(); len(bad) > 0 {
		c := bad[0]
		bounds, _ := s.seg.Bounds(ch)
		out.implausible = fmt.Sprintf("implausible for %s (%s: foreground %.4f", ch, c.Reason, c.FgFraction)
		if c.HasPatch {
			out.implausible += fmt.Sprintf(", patch confidence %.3f", c.PatchMax)
		}
		out.implausible += fmt.Sprintf("; bounds %s)", bounds)
		switch {
		case res.Withheld:
			out.implausible += ": SEG withheld (--keep-implausible writes it)"
		case !s.flags.noSEG:
			out.implausible += ": SEG written (--keep-implausible)"
		}
	}
	if res.SEG != nil {
		segPath := filepath.Join(s.flags.outDir, base+"_seg.dcm")
		if err := os.WriteFile(segPath, res.SEG.Bytes, 0o644); err != nil {
			return nil, fmt.Errorf("write SEG: %w", err)
		}
		out.outputs = append(out.outputs, segPath)
	}
	return out, nil
}

// writeFrame writes a frame's mask and overlay PNGs.
func (s *segmenter) writeFrame(name string, fr segment.Frame) ([]string, error) {
	maskPath := filepath.Join(s.flags.outDir, name+"_mask.png")
	overlayPath := filepath.Join(s.flags.outDir, name+"_overlay.png")
	if err := writePNG(maskPath, maskImage(fr.Mask)); err != nil {
		return nil, err
	}
	if err := writePNG(overlayPath, overlayImage(fr.RGB, fr.Mask)); err != nil {
		return nil, err
	}
	return []string{maskPath, overlayPath}, nil
}

func maskImage(m *pixel.Mask) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, m.Width, m.Height))
	for i, b := range m.Bits {
		img.Pix[i] = b * 255
	}
	return img
}

// overlayImage tints the foreground red at half opacity over the rendered source.
func overlayImage(src *pixel.RGB, m *pixel.Mask) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, src.Width, src.Height))
	for i := range src.Width * src.Height {
		r, g, b := src.Pix[3*i], src.Pix[3*i+1], src.Pix[3*i+2]
		if m.Bits[i] == 1 {
			r, g, b = uint8((int(r)+255)/2), g/2, b/2
		}
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = r, g, b, 255
	}
	return img
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
