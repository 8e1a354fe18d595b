// Package eval scores the model on a seg2d tree (images, reference masks and a MANIFEST.csv
// naming their channel, dataset and split): every pair goes through the node's own
// pre-processing, ONNX Runtime and post-processing, and the mask at the source's resolution is
// scored against the reference with Dice and IoU, per channel and dataset, beside the share of
// images the plausibility guard would withhold the SEG of.
package eval

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/png" // the seg2d images and masks
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/pixel"
)

// Excluded are the datasets whose target is not their channel's: they are not scored.
// fundus/drishti-gs1 is the optic disc; the fundus channel segments retinal vessels.
// Excluded returns them, keyed channel/dataset, with the reason.
func Excluded() map[string]string {
	return map[string]string{
		"fundus/drishti-gs1": "its target is the optic disc; the fundus channel segments retinal vessels",
	}
}

// Pair is one image/mask pair of a seg2d MANIFEST.csv; paths are relative to its folder.
type Pair struct {
	Channel, Dataset, Image, Mask string
}

// Score is one line of the result: the mean Dice and IoU over a dataset's images, and how many
// of them the plausibility guard judges implausible (the node would withhold their SEG).
type Score struct {
	Channel string  `json:"channel"`
	Dataset string  `json:"dataset"`
	N       int     `json:"n"`
	Dice    float64 `json:"dice"`
	IoU     float64 `json:"iou"`
	// Withheld counts the images the guard judges implausible; Guarded is false when the model
	// gives no plausibility bounds for the channel (nothing is judged).
	Withheld int  `json:"withheld"`
	Guarded  bool `json:"guarded"`
}

// WithheldShare is the share of the images whose SEG the guard would withhold.
func (s Score) WithheldShare() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Withheld) / float64(s.N)
}

// ReadManifest returns the pairs of one split of dir/MANIFEST.csv, sorted by channel index,
// dataset and image, at most limit per dataset when limit > 0, and the datasets left out
// (Excluded). A modality that is no channel of the node is an error.
func ReadManifest(dir, split string, limit int) ([]Pair, []string, error) {
	excluded := Excluded()
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
	var rows []Pair
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
		if _, ok := excluded[key]; ok {
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
		rows = append(rows, Pair{Channel: ch, Dataset: ds, Image: rec[col["image"]], Mask: rec[col["mask"]]})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		ca, _ := channel.ByName(a.Channel)
		cb, _ := channel.ByName(b.Channel)
		if ca.Index != cb.Index {
			return ca.Index < cb.Index
		}
		if a.Dataset != b.Dataset {
			return a.Dataset < b.Dataset
		}
		return a.Image < b.Image
	})
	var skip []string
	for k := range skipped {
		skip = append(skip, k)
	}
	sort.Strings(skip)
	return rows, skip, nil
}

// Evaluate scores every pair (paths relative to dir) with workers goroutines, so that images
// meet in the model's batcher, and returns the mean per channel and dataset, in the pairs' order.
func Evaluate(ctx context.Context, engine *onnx.Engine, dir string, rows []Pair, workers int) ([]Score, error) {
	type result struct {
		dice, iou float64
		check     onnx.Check
		guarded   bool
	}
	results := make([]result, len(rows))
	errs := make([]error, len(rows))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for i := range jobs {
				d, u, c, guarded, err := scorePair(ctx, engine, dir, rows[i])
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", rows[i].Image, err)
					continue
				}
				results[i] = result{d, u, c, guarded}
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
	var out []Score
	for i, r := range rows {
		if len(out) == 0 || out[len(out)-1].Channel != r.Channel || out[len(out)-1].Dataset != r.Dataset {
			out = append(out, Score{Channel: r.Channel, Dataset: r.Dataset})
		}
		s := &out[len(out)-1]
		s.N++
		s.Dice += results[i].dice
		s.IoU += results[i].iou
		s.Guarded = results[i].guarded
		if results[i].check.Implausible() {
			s.Withheld++
		}
	}
	for i := range out {
		out[i].Dice /= float64(out[i].N)
		out[i].IoU /= float64(out[i].N)
	}
	return out, nil
}

// scorePair segments one image as the node does (onnx.Route.Predict: the channel's input mode,
// letterbox or tiles, flips; logits at the source size, thresholded), scores the mask against the
// reference and judges it as the node's guard does (seg/segment: foreground share and patch
// confidence against the channel's bounds; guarded is false when the model has none).
func scorePair(ctx context.Context, engine *onnx.Engine, dir string, row Pair) (dice, iou float64, check onnx.Check, guarded bool, err error) {
	route, err := engine.Route(row.Channel)
	if err != nil {
		return 0, 0, check, false, err
	}
	img, err := readPNG(filepath.Join(dir, row.Image))
	if err != nil {
		return 0, 0, check, false, err
	}
	ref, err := readPNG(filepath.Join(dir, row.Mask))
	if err != nil {
		return 0, 0, check, false, err
	}
	rgb := toRGB(img)
	b := ref.Bounds()
	if b.Dx() != rgb.Width || b.Dy() != rgb.Height {
		return 0, 0, check, false, fmt.Errorf("mask %dx%d, image %dx%d", b.Dx(), b.Dy(), rgb.Width, rgb.Height)
	}
	p, err := route.Predict(ctx, rgb)
	if err != nil {
		return 0, 0, check, false, err
	}
	mask, err := p.Mask(route.Model.Metadata().Threshold, false)
	if err != nil {
		return 0, 0, check, false, err
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
	dice, iou = DiceIoU(inter, pred, truth)
	check = route.Bounds.Judge(float64(pred)/float64(max(len(mask.Bits), 1)), p.PatchMax, p.HasPatch)
	return dice, iou, check, route.Bounds != nil, nil
}

// DiceIoU scores one mask: 2|P∩T|/(|P|+|T|) and |P∩T|/|P∪T|; both 1 when both masks are empty.
func DiceIoU(inter, pred, truth int) (float64, float64) {
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

// WriteTable writes the scores as a table, with each channel's image-weighted mean after its
// datasets and the mean over everything last. The withheld column is the share of images the
// guard would withhold the SEG of, "-" where the model gives the channel no bounds.
func WriteTable(w io.Writer, scores []Score) {
	fmt.Fprintf(w, "%-12s %-18s %5s %7s %7s %8s\n", "channel", "dataset", "n", "dice", "iou", "withheld")
	line := func(s Score) {
		withheld := "-"
		if s.Guarded {
			withheld = fmt.Sprintf("%7.1f%%", 100*s.WithheldShare())
		}
		fmt.Fprintf(w, "%-12s %-18s %5d %7.4f %7.4f %8s\n", s.Channel, s.Dataset, s.N, s.Dice, s.IoU, withheld)
	}
	all := Score{Channel: "(all)", Dataset: "(all)"}
	for i, s := range scores {
		line(s)
		if i+1 < len(scores) && scores[i+1].Channel == s.Channel {
			continue
		}
		sum := Score{Channel: s.Channel, Dataset: "(all)"}
		for _, o := range scores {
			if o.Channel == s.Channel {
				sum.add(o)
			}
		}
		if sum.N != s.N {
			line(sum.mean())
		}
		all.add(sum.mean())
	}
	if all.N > 0 {
		line(all.mean())
	}
}

// add sums o into s, Dice and IoU weighted by images (mean divides them back).
func (s *Score) add(o Score) {
	s.N += o.N
	s.Dice += o.Dice * float64(o.N)
	s.IoU += o.IoU * float64(o.N)
	s.Withheld += o.Withheld
	s.Guarded = s.Guarded || o.Guarded
}

func (s Score) mean() Score {
	s.Dice /= float64(s.N)
	s.IoU /= float64(s.N)
	return s
}
