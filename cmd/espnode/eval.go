package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/draw"
	_ "image/png" // the seg2d images and masks
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/seg/segment"
)

// evalExcluded are the datasets whose target is not their channel's: they are not scored.
// fundus/drishti-gs1 is the optic disc; the fundus channel segments retinal vessels.
var evalExcluded = map[string]string{
	"fundus/drishti-gs1": "its target is the optic disc; the fundus channel segments retinal vessels",
}

// evalRow is one image/mask pair of a seg2d MANIFEST.csv.
type evalRow struct {
	channel, dataset, image, mask string
}

// evalScore is one line of the result: the mean Dice and IoU over a dataset's images.
type evalScore struct {
	Channel string  `json:"channel"`
	Dataset string  `json:"dataset"`
	N       int     `json:"n"`
	Dice    float64 `json:"dice"`
	IoU     float64 `json:"iou"`
}

// runEval implements `espnode eval --data DIR [--json]`: every test pair of a seg2d tree goes
// through the node's own pre-processing, ONNX Runtime and post-processing, and the masks at the
// source resolution are scored against the reference masks.
func runEval(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	dataDir := fs.String("data", "", "seg2d folder holding MANIFEST.csv (required)")
	model := fs.String("model", os.Getenv(modelEnv), "model file (ONNX, espnode contract); default $"+modelEnv+", else the shipped model")
	split := fs.String("split", "test", "manifest split to score")
	asJSON := fs.Bool("json", false, "print a JSON array of {channel, dataset, n, dice, iou}")
	library := fs.String("onnxruntime", "", "path of libonnxruntime.so (default: $"+onnx.LibraryEnv+", next to the binary, the system)")
	provider := fs.String("provider", onnx.ProviderAuto, "execution provider: "+strings.Join(onnx.Providers(), ", "))
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0: all cores)")
	batch := fs.Int("batch", 4, "most images run together")
	limit := fs.Int("limit", 0, "score at most this many pairs per dataset (0: all)")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: espnode eval --data DIR [--json] [--model FILE.onnx]")
		fmt.Fprintln(env.stderr, "Scores the model on a seg2d tree's test split: Dice and IoU per channel and dataset.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError{2}
	}
	if *dataDir == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitError{2}
	}
	rows, skipped, err := readEvalManifest(*dataDir, *split, *limit)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(env.stderr, "eval: %s not scored: %s\n", s, evalExcluded[s])
	}
	if len(rows) == 0 {
		return fmt.Errorf("no %q pairs in %s", *split, filepath.Join(*dataDir, "MANIFEST.csv"))
	}
	path := *model
	if path == "" {
		if path, err = shippedModelPath(); err != nil {
			return err
		}
	}
	engine, err := onnx.OpenUniversal(path, onnx.Options{
		Library: *library, Provider: *provider, Threads: *threads,
		MaxBatch: *batch, BatchWait: 5 * time.Millisecond, Logger: zerolog.Nop(),
	})
	if err != nil {
		return err
	}
	defer engine.Close()
	scores, err := evaluate(ctx, engine, *dataDir, rows, max(*batch, 1))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", " ")
		return enc.Encode(scores)
	}
	printEval(env.stdout, scores)
	return nil
}

// shippedModelPath writes the model the binary carries to the user's cache (or the temporary
// folder) and returns its path: ONNX Runtime loads models from files.
func shippedModelPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return segment.WriteShippedModel(filepath.Join(dir, "espnode", "models"))
}

// readEvalManifest returns the rows of one split whose channel the node has, sorted by channel
// index, dataset and image, and the datasets left out (evalExcluded).
func readEvalManifest(dir, split string, limit int) ([]evalRow, []string, error) {
	f, err := os.Open(filepath.Join(dir, "MANIFEST.csv"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("MANIFEST.csv: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, want := range []string{"modality", "dataset", "split", "image", "mask"} {
		if _, ok := col[want]; !ok {
			return nil, nil, fmt.Errorf("MANIFEST.csv: no %q column", want)
		}
	}
	var rows []evalRow
	skipped := map[string]bool{}
	count := map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("MANIFEST.csv: %w", err)
		}
		if rec[col["split"]] != split {
			continue
		}
		ch, ds := rec[col["modality"]], rec[col["dataset"]]
		key := ch + "/" + ds
		if _, ok := evalExcluded[key]; ok {
			skipped[key] = true
			continue
		}
		if _, ok := channel.ByName(ch); !ok {
			return nil, nil, fmt.Errorf("MANIFEST.csv: modality %q is no channel of the node", ch)
		}
		if limit > 0 && count[key] >= limit {
			continue
		}
		count[key]++
		rows = append(rows, evalRow{channel: ch, dataset: ds, image: rec[col["image"]], mask: rec[col["mask"]]})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		ca, _ := channel.ByName(a.channel)
		cb, _ := channel.ByName(b.channel)
		if ca.Index != cb.Index {
			return ca.Index < cb.Index
		}
		if a.dataset != b.dataset {
			return a.dataset < b.dataset
		}
		return a.image < b.image
	})
	var skip []string
	for k := range skipped {
		skip = append(skip, k)
	}
	sort.Strings(skip)
	return rows, skip, nil
}

// evaluate scores every row with workers goroutines, so that images meet in the model's batcher.
func evaluate(ctx context.Context, engine *onnx.Engine, dir string, rows []evalRow, workers int) ([]evalScore, error) {
	type result struct{ dice, iou float64 }
	results := make([]result, len(rows))
	errs := make([]error, len(rows))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				d, u, err := evalPair(ctx, engine, dir, rows[i])
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", rows[i].image, err)
					continue
				}
				results[i] = result{d, u}
			}
		})
	}
feed:
	for i := range rows {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []evalScore
	for i, r := range rows {
		if len(out) == 0 || out[len(out)-1].Channel != r.channel || out[len(out)-1].Dataset != r.dataset {
			out = append(out, evalScore{Channel: r.channel, Dataset: r.dataset})
		}
		s := &out[len(out)-1]
		s.N++
		s.Dice += results[i].dice
		s.IoU += results[i].iou
	}
	for i := range out {
		out[i].Dice /= float64(out[i].N)
		out[i].IoU /= float64(out[i].N)
	}
	return out, nil
}

// evalPair segments one image as the node does (letterbox to the model's size, ONNX Runtime,
// logits resized to the source and thresholded) and scores the mask against the reference.
func evalPair(ctx context.Context, engine *onnx.Engine, dir string, row evalRow) (dice, iou float64, err error) {
	route, err := engine.Route(row.channel)
	if err != nil {
		return 0, 0, err
	}
	img, err := readPNG(filepath.Join(dir, row.image))
	if err != nil {
		return 0, 0, err
	}
	ref, err := readPNG(filepath.Join(dir, row.mask))
	if err != nil {
		return 0, 0, err
	}
	rgb := toRGB(img)
	b := ref.Bounds()
	if b.Dx() != rgb.Width || b.Dy() != rgb.Height {
		return 0, 0, fmt.Errorf("mask %dx%d, image %dx%d", b.Dx(), b.Dy(), rgb.Width, rgb.Height)
	}
	input, geom, err := pixel.Preprocess(rgb, route.Model.InputSize())
	if err != nil {
		return 0, 0, err
	}
	logits, err := route.Model.Infer(ctx, input, route.Channel.Query)
	if err != nil {
		return 0, 0, err
	}
	mask, err := pixel.Postprocess(logits, geom, route.Model.Metadata().Threshold, false)
	if err != nil {
		return 0, 0, err
	}
	gray := image.NewGray(b)
	draw.Draw(gray, b, ref, b.Min, draw.Src)
	var inter, pred, truth int
	for i, p := range mask.Bits {
		t := gray.Pix[i] >= 128
		if p == 1 {
			pred++
			if t {
				inter++
			}
		}
		if t {
			truth++
		}
	}
	dice, iou = diceIoU(inter, pred, truth)
	return dice, iou, nil
}

// diceIoU scores one mask: 2|P∩T|/(|P|+|T|) and |P∩T|/|P∪T|; both 1 when both masks are empty.
func diceIoU(inter, pred, truth int) (float64, float64) {
	if pred+truth == 0 {
		return 1, 1
	}
	return 2 * float64(inter) / float64(pred+truth), float64(inter) / float64(pred+truth-inter)
}

func readPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// toRGB converts a decoded image to the node's RGB raster (grey replicated to three channels).
func toRGB(img image.Image) *pixel.RGB {
	b := img.Bounds()
	rgba := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	out := &pixel.RGB{Width: b.Dx(), Height: b.Dy(), Pix: make([]uint8, b.Dx()*b.Dy()*3)}
	for i := range b.Dx() * b.Dy() {
		copy(out.Pix[3*i:3*i+3], rgba.Pix[4*i:4*i+3])
	}
	return out
}

// printEval prints the scores as a table, with each channel's image-weighted mean after its datasets.
func printEval(w io.Writer, scores []evalScore) {
	fmt.Fprintf(w, "%-12s %-18s %5s %7s %7s\n", "channel", "dataset", "n", "dice", "iou")
	var allN int
	var allD, allU float64
	for i, s := range scores {
		fmt.Fprintf(w, "%-12s %-18s %5d %7.4f %7.4f\n", s.Channel, s.Dataset, s.N, s.Dice, s.IoU)
		if i+1 < len(scores) && scores[i+1].Channel == s.Channel {
			continue
		}
		var n int
		var d, u float64
		for _, o := range scores {
			if o.Channel == s.Channel {
				n += o.N
				d += o.Dice * float64(o.N)
				u += o.IoU * float64(o.N)
			}
		}
		if n != s.N {
			fmt.Fprintf(w, "%-12s %-18s %5d %7.4f %7.4f\n", s.Channel, "(all)", n, d/float64(n), u/float64(n))
		}
		allN += n
		allD += d
		allU += u
	}
	if allN > 0 {
		fmt.Fprintf(w, "%-12s %-18s %5d %7.4f %7.4f\n", "(all)", "(all)", allN, allD/float64(allN), allU/float64(allN))
	}
}
