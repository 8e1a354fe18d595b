package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/rs/zerolog"
	"github.com/suyashkumar/dicom"
)

// modelEnv names the default model file when --model is absent.
const modelEnv = "ESPNODE_MODEL"

// defaultRoutes is DESIGN.md's default routing table from the Modality attribute to a channel,
// used when --channel is not given. The node's pipeline has the configurable version.
var defaultRoutes = map[string]string{
	"DMS": "dermoscopy", "XC": "dermoscopy",
	"CR": "xray", "DX": "xray",
	"US": "ultrasound",
	"OP": "fundus",
	"SM": "microscopy", "GM": "microscopy",
	"ES": "colonoscopy",
}

// segmentFlags are the flags of `espnode segment`.
type segmentFlags struct {
	model, channel, outDir, library, provider string
	threads, batch                            int
	batchWait                                 time.Duration
	fractional, noSEG, quiet                  bool
}

func (f *segmentFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", os.Getenv(modelEnv), "model file (ONNX, espnode contract); default $"+modelEnv+", else the shipped model")
	fs.StringVar(&f.channel, "channel", "", "channel for every input (dermoscopy, xray, ultrasound, fundus, microscopy, colonoscopy); default: from each file's Modality")
	fs.StringVar(&f.outDir, "o", "", "output directory (required)")
	fs.StringVar(&f.library, "onnxruntime", "", "path of libonnxruntime.so (default: $"+onnx.LibraryEnv+", next to the binary, the system)")
	fs.StringVar(&f.provider, "provider", onnx.ProviderAuto, "execution provider: "+strings.Join(onnx.Providers(), ", "))
	fs.IntVar(&f.threads, "threads", 0, "ONNX Runtime intra-op threads (0: all cores)")
	fs.IntVar(&f.batch, "batch", 4, "most images run together")
	fs.DurationVar(&f.batchWait, "batch-wait", 20*time.Millisecond, "how long an image waits for others to fill a batch")
	fs.BoolVar(&f.fractional, "fractional", false, "write a FRACTIONAL SEG (probabilities) instead of BINARY")
	fs.BoolVar(&f.noSEG, "no-seg", false, "do not write DICOM SEG files")
	fs.BoolVar(&f.quiet, "q", false, "no progress bar")
}

// parseInterspersed parses flags that may come before, between or after the positional
// arguments, as in `espnode segment a.dcm b.dcm -o out`; the standard flag package stops at
// the first positional argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runSegment(ctx context.Context, env *cliEnv, args []string) error {
	var f segmentFlags
	fs := flag.NewFlagSet("segment", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: espnode segment [--model FILE] [--channel NAME] FILE.dcm... -o DIR")
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
	if f.model == "" {
		if f.model, err = shippedModelPath(); err != nil {
			return err
		}
	}
	if f.channel != "" {
		if _, ok := channel.ByName(f.channel); !ok {
			return fmt.Errorf("unknown channel %q (want one of %s)", f.channel, strings.Join(channelNames(), ", "))
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

	s := &segmenter{flags: f, engine: engine, log: log}
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
				switch {
				case err != nil:
					failed = append(failed, file)
					bar.clear()
					fmt.Fprintf(env.stderr, "%s: %v\n", file, err)
				default:
					bar.clear()
					outs := res.outputs
					if len(outs) > 3 {
						outs = append(outs[:2:2], fmt.Sprintf("... (%d files)", len(res.outputs)))
					}
					fmt.Fprintf(env.stdout, "%s: %s, %d frame(s), %d foreground pixels -> %s\n", file, res.channel, res.frames, res.foreground, strings.Join(outs, ", "))
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

func channelNames() []string {
	var names []string
	for _, c := range channel.Defaults() {
		names = append(names, c.Name)
	}
	return names
}

type segmenter struct {
	flags  segmentFlags
	engine *onnx.Engine
	log    zerolog.Logger
}

type segmentResult struct {
	channel    string
	frames     int
	foreground int
	outputs    []string
}

// segmentFile runs one DICOM file through decoding, pre-processing, the model and
// post-processing, and writes its outputs.
func (s *segmenter) segmentFile(ctx context.Context, path string) (*segmentResult, error) {
	ds, err := pixel.ReadFile(path)
	if err != nil {
		return nil, err
	}
	im, err := pixel.NewImage(ds)
	if err != nil {
		return nil, err
	}
	chName := s.flags.channel
	if chName == "" {
		var ok bool
		if chName, ok = defaultRoutes[strings.ToUpper(im.Modality)]; !ok {
			return nil, fmt.Errorf("no channel for Modality %q: pass --channel", im.Modality)
		}
	}
	route, err := s.engine.Route(chName)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	res := &segmentResult{channel: chName, frames: im.NumFrames()}
	masks := make([][]byte, im.NumFrames())
	// Frames go to the model concurrently, up to a batch at a time, so that a multi-frame
	// file fills batches by itself; outputs keep frame order.
	outputs := make([][]string, im.NumFrames())
	foreground := make([]int, im.NumFrames())
	errs := make([]error, im.NumFrames())
	sem := make(chan struct{}, max(s.flags.batch, 1))
	var wg sync.WaitGroup
	for i := range im.NumFrames() {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := base
			if im.NumFrames() > 1 {
				name = fmt.Sprintf("%s_f%04d", base, i+1)
			}
			mask, outs, err := s.segmentFrame(ctx, im, i, route, name)
			if err != nil {
				errs[i] = fmt.Errorf("frame %d: %w", i+1, err)
				return
			}
			foreground[i] = mask.Foreground()
			outputs[i] = outs
			if s.flags.fractional {
				masks[i] = make([]byte, len(mask.Prob))
				for k, p := range mask.Prob {
					masks[i][k] = byte(p*255 + 0.5)
				}
			} else {
				masks[i] = mask.Bits
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i := range outputs {
		res.foreground += foreground[i]
		res.outputs = append(res.outputs, outputs[i]...)
	}
	if !s.flags.noSEG {
		segPath, err := s.writeSEG(&ds, base, chName, route, masks)
		if err != nil {
			return nil, err
		}
		res.outputs = append(res.outputs, segPath)
	}
	return res, nil
}

// segmentFrame runs one frame through the model and writes its mask and overlay PNGs.
func (s *segmenter) segmentFrame(ctx context.Context, im *pixel.Image, i int, route onnx.Route, name string) (*pixel.Mask, []string, error) {
	fr, err := im.Frame(i)
	if err != nil {
		return nil, nil, err
	}
	rgb, err := im.Render(fr)
	if err != nil {
		return nil, nil, err
	}
	input, geom, err := pixel.Preprocess(rgb, route.Model.InputSize())
	if err != nil {
		return nil, nil, err
	}
	logits, err := route.Model.Infer(ctx, input, route.Channel.Query)
	if err != nil {
		return nil, nil, err
	}
	mask, err := pixel.Postprocess(logits, geom, route.Model.Metadata().Threshold, s.flags.fractional)
	if err != nil {
		return nil, nil, err
	}
	maskPath := filepath.Join(s.flags.outDir, name+"_mask.png")
	overlayPath := filepath.Join(s.flags.outDir, name+"_overlay.png")
	if err := writePNG(maskPath, maskImage(mask)); err != nil {
		return nil, nil, err
	}
	if err := writePNG(overlayPath, overlayImage(rgb, mask)); err != nil {
		return nil, nil, err
	}
	return mask, []string{maskPath, overlayPath}, nil
}

func (s *segmenter) writeSEG(ds *dicom.Dataset, base, chName string, route onnx.Route, masks [][]byte) (string, error) {
	src, err := dicomseg.SourceFromDataset(ds)
	if err != nil {
		return "", fmt.Errorf("SEG source: %w", err)
	}
	ch, ok := channel.ByName(chName)
	if !ok {
		// A model may serve a channel outside the node's table; take its own description.
		ch = route.Channel.Channel
		ch.Name = chName
	}
	md := route.Model.Metadata()
	typ := dicomseg.Binary
	if s.flags.fractional {
		typ = dicomseg.Fractional
	}
	out, err := dicomseg.Encode(src, []dicomseg.Segment{dicomseg.SegmentForChannel(ch, masks)}, dicomseg.Options{
		Type: typ, AlgorithmName: md.ModelName, AlgorithmVersion: md.ModelVersion,
	})
	if err != nil {
		return "", fmt.Errorf("encode SEG: %w", err)
	}
	segPath := filepath.Join(s.flags.outDir, base+"_seg.dcm")
	if err := os.WriteFile(segPath, out.Bytes, 0o644); err != nil {
		return "", fmt.Errorf("write SEG: %w", err)
	}
	return segPath, nil
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

// runModel implements `espnode model info FILE.onnx`.
func runModel(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] != "info" {
		fmt.Fprintln(env.stderr, "usage: espnode model info [--onnxruntime LIB] FILE.onnx")
		return exitError{2}
	}
	fs := flag.NewFlagSet("model info", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	library := fs.String("onnxruntime", "", "path of libonnxruntime.so")
	files, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return exitError{2}
	}
	if len(files) != 1 {
		return errors.New("model info takes one FILE.onnx")
	}
	libPath, version, err := onnx.LoadLibrary(*library)
	if err != nil {
		return err
	}
	info, err := onnx.Inspect(files[0])
	if err != nil {
		return err
	}
	printModelInfo(env.stdout, info, libPath, version)
	return nil
}

func printModelInfo(w io.Writer, info *onnx.ModelInfo, libPath, version string) {
	md := info.Metadata
	fmt.Fprintf(w, "file:              %s\n", info.Path)
	fmt.Fprintf(w, "model:             %s %s\n", md.ModelName, md.ModelVersion)
	fmt.Fprintf(w, "input size:        %d\n", md.InputSize)
	fmt.Fprintf(w, "threshold:         %g\n", md.Threshold)
	if md.Normalization != "" {
		fmt.Fprintf(w, "normalization:     %s\n", md.Normalization)
	}
	if md.CheckpointSHA256 != "" {
		fmt.Fprintf(w, "checkpoint sha256: %s\n", md.CheckpointSHA256)
	}
	for _, line := range info.Signature() {
		kind, rest, _ := strings.Cut(line, " ")
		fmt.Fprintf(w, "%-19s%s\n", kind+":", rest)
	}
	fmt.Fprintln(w, "channels:")
	for _, c := range md.Channels {
		fmt.Fprintf(w, "  %d %-12s query %d  %q  category %s %s %q  type %s %s %q\n", c.Index, c.Name, c.Query, c.Label,
			c.Category.Scheme, c.Category.Value, c.Category.Meaning, c.Type.Scheme, c.Type.Value, c.Type.Meaning)
	}
	if len(md.Extra) > 0 {
		keys := make([]string, 0, len(md.Extra))
		for k := range md.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "other metadata:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s = %s\n", k, md.Extra[k])
		}
	}
	fmt.Fprintf(w, "onnx runtime:      %s (%s)\n", version, libPath)
}
