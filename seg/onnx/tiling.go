package onnx

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/espnode/espnode/seg/pixel"
)

// Prediction is one source image through its channel's input mode: its logits and what the
// guard needs.
type Prediction struct {
	// Width and Height are the source's size, the mask's.
	Width, Height int
	// Work are the logits assembled at WorkWidth x WorkHeight, float32 row-major; Logits resizes
	// them to the source, Mask thresholds them there.
	Work []float32
	// PatchMax is the patch confidence, the largest sigmoid of a patch logit over every model
	// input run for the image (tiles and flipped variants, padded cells included); valid when
	// HasPatch.
	PatchMax float64
	HasPatch bool
	// Inputs is how many model inputs the image took (tiles x variants).
	Inputs int
	// WorkWidth and WorkHeight are the size the model's output was assembled at: the letterbox's
	// content region, or the tiles' working size.
	WorkWidth, WorkHeight int
	// Prepare covers resizing, flipping and cutting the inputs; Infer the wait for the model,
	// batching included; Assemble the blending, flipping back and averaging (the resize to the
	// source is Mask's).
	Prepare, Infer, Assemble time.Duration
}

// Predict runs one RGB image through the route's model as the channel's input mode says
// (model/README.md, "Tiling contract"; the reference is model/espmedsam/infer.py): the letterbox
// of the whole image, or overlapping tiles of the image resized to the working size with their
// logits blended by a Hann window; each flip listed runs as well, flipped back and averaged in.
// Every model input of the image goes to the batcher as one request.
func (r Route) Predict(ctx context.Context, img *pixel.RGB) (*Prediction, error) {
	if img == nil || img.Width <= 0 || img.Height <= 0 || len(img.Pix) != img.Width*img.Height*3 {
		return nil, fmt.Errorf("predict: bad RGB image")
	}
	m := r.Model
	s := m.InputSize()
	spec := r.Input
	if spec.Mode == "" {
		spec.Mode = ModeLetterbox
	}
	if err := spec.validate(s); err != nil {
		return nil, fmt.Errorf("predict: channel %s: %w", r.Channel.Name, err)
	}
	start := time.Now()
	p := &Prediction{Width: img.Width, Height: img.Height}
	variants := append([]string{""}, spec.Flips...)
	per := imageChannels * s * s

	var (
		inputs []float32
		passes []pass
	)
	if spec.Tiled() {
		w, h := WorkingSize(img.Width, img.Height, spec.LongSide)
		work := img.Resample(w, h)
		for i, v := range work {
			work[i] = min(max(v, 0), 255)
		}
		xs, ys := TileOrigins(w, s, spec.Stride), TileOrigins(h, s, spec.Stride)
		inputs = make([]float32, 0, len(variants)*len(xs)*len(ys)*per)
		for _, f := range variants {
			fw := flipRaster(work, w, h, 3, f)
			ps := pass{flip: f, first: len(inputs) / per, w: w, h: h}
			for _, y := range ys {
				for _, x := range xs {
					inputs = appendTile(inputs, fw, w, h, x, y, s)
					ps.origins = append(ps.origins, [2]int{x, y})
				}
			}
			passes = append(passes, ps)
		}
		p.WorkWidth, p.WorkHeight = w, h
	} else {
		inputs = make([]float32, 0, len(variants)*per)
		for _, f := range variants {
			fi := img
			if f != "" {
				fi = &pixel.RGB{Width: img.Width, Height: img.Height, Pix: flipPix(img.Pix, img.Width, img.Height, f), Gray: img.Gray}
			}
			in, g, err := pixel.Preprocess(fi, s)
			if err != nil {
				return nil, fmt.Errorf("predict: %w", err)
			}
			passes = append(passes, pass{flip: f, first: len(inputs) / per, w: g.Width, h: g.Height, origins: [][2]int{{0, 0}}})
			inputs = append(inputs, in...)
			p.WorkWidth, p.WorkHeight = g.Width, g.Height
		}
	}
	n := len(inputs) / per
	queries := make([]int64, n)
	for i := range queries {
		queries[i] = r.Channel.Query
	}
	p.Inputs = n
	p.Prepare = time.Since(start)

	start = time.Now()
	out, err := m.InferMany(ctx, inputs, queries)
	if err != nil {
		return nil, err
	}
	p.Infer = time.Since(start)

	start = time.Now()
	w, h := p.WorkWidth, p.WorkHeight
	mean := make([]float64, w*h)
	var win []float32
	if spec.Tiled() {
		win = HannWindow(s)
	}
	for _, ps := range passes {
		var lg []float32
		if spec.Tiled() {
			lg = blend(out.Logits, ps, s, win)
		} else {
			lg = crop(out.Logits[ps.first*s*s:(ps.first+1)*s*s], s, w, h)
		}
		lg = flipRaster(lg, w, h, 1, ps.flip)
		for i, v := range lg {
			mean[i] += float64(v)
		}
	}
	avg := make([]float32, w*h)
	for i, v := range mean {
		avg[i] = float32(v / float64(len(passes)))
	}
	p.Work = avg
	if out.Patch != nil {
		best := math.Inf(-1)
		for _, v := range out.Patch {
			best = max(best, float64(v))
		}
		p.PatchMax, p.HasPatch = 1/(1+math.Exp(-best)), true
	}
	p.Assemble = time.Since(start)
	return p, nil
}

// Logits are the logits at the source size, float32 [Height, Width], row-major; foreground
// where they reach the model's threshold.
func (p *Prediction) Logits() []float32 {
	return pixel.Resample(p.Work, p.WorkWidth, p.WorkHeight, 1, p.Width, p.Height)
}

// Mask is the prediction thresholded at the source size; with probabilities it keeps the
// sigmoid of each logit too. Without them the resize and the threshold go row by row
// (pixel.ResampleMask): the same bits as thresholding Logits, without holding them.
func (p *Prediction) Mask(threshold float32, probabilities bool) (*pixel.Mask, error) {
	if probabilities {
		return pixel.Threshold(p.Logits(), p.Width, p.Height, threshold, true)
	}
	return pixel.ResampleMask(p.Work, p.WorkWidth, p.WorkHeight, p.Width, p.Height, threshold)
}

// pass is one variant of the image (itself, or a flip) and where its inputs are in the batch.
type pass struct {
	flip    string
	first   int      // index of its first model input
	w, h    int      // the size its logits are assembled at
	origins [][2]int // tile origins (x, y), in input order; letterbox: one at 0, 0
}

// WorkingSize is the size a tiled channel's source is resized to: the longer side to longSide
// (aspect kept, rounded half up, at least 1; it may enlarge and is not capped at the input size),
// or the source size when longSide is 0.
func WorkingSize(width, height, longSide int) (int, int) {
	if longSide == 0 {
		return width, height
	}
	long := float64(max(width, height))
	w := max(1, int(math.Floor(float64(width)*float64(longSide)/long+0.5)))
	h := max(1, int(math.Floor(float64(height)*float64(longSide)/long+0.5)))
	return w, h
}

// TileOrigins are the tile origins along an axis of n pixels: one at 0 when the axis fits in a
// tile, else k = ceil((n - tile) / stride) + 1 origins spread evenly from 0 to n - tile, each
// rounded half up in integer arithmetic.
func TileOrigins(n, tile, stride int) []int {
	if n <= tile {
		return []int{0}
	}
	span := n - tile
	k := (span+stride-1)/stride + 1
	out := make([]int, k)
	for i := range k {
		out[i] = (2*i*span + (k - 1)) / (2 * (k - 1))
	}
	return out
}

// HannWindow is the tiles' blending weight, w(y, x) = h(y) h(x) with h(k) = sin^2(pi (k + 0.5) / S),
// computed in float64 and stored as float32 [S,S], as the reference does. It is positive
// everywhere, so a pixel under one tile takes that tile's logit.
func HannWindow(s int) []float32 {
	h := make([]float64, s)
	for k := range s {
		v := math.Sin(math.Pi * (float64(k) + 0.5) / float64(s))
		h[k] = v * v
	}
	out := make([]float32, s*s)
	for y := range s {
		for x := range s {
			out[y*s+x] = float32(h[y] * h[x])
		}
	}
	return out
}

// appendTile appends the planar [3,S,S] tile of the interleaved w x h RGB raster at origin
// (x0, y0); pixels beyond the raster are 0.
func appendTile(dst, work []float32, w, h, x0, y0, s int) []float32 {
	at := len(dst)
	dst = append(dst, make([]float32, imageChannels*s*s)...)
	t := dst[at:]
	for ty := range min(s, h-y0) {
		row := work[((y0+ty)*w+x0)*3:]
		for tx := range min(s, w-x0) {
			for c := range 3 {
				t[c*s*s+ty*s+tx] = row[tx*3+c]
			}
		}
	}
	return dst
}

// blend assembles one pass's tile logits into its working-size map: a weighted mean by the Hann
// window over the tiles covering each pixel, summed in float64 as the reference sums.
func blend(logits []float32, ps pass, s int, win []float32) []float32 {
	acc := make([]float64, ps.w*ps.h)
	wsum := make([]float64, ps.w*ps.h)
	for t, o := range ps.origins {
		lg := logits[(ps.first+t)*s*s:]
		x0, y0 := o[0], o[1]
		for ty := range min(s, ps.h-y0) {
			arow := acc[(y0+ty)*ps.w+x0:]
			wrow := wsum[(y0+ty)*ps.w+x0:]
			for tx := range min(s, ps.w-x0) {
				wt := win[ty*s+tx]
				arow[tx] += float64(wt * lg[ty*s+tx])
				wrow[tx] += float64(wt)
			}
		}
	}
	out := make([]float32, len(acc))
	for i := range acc {
		out[i] = float32(acc[i] / wsum[i])
	}
	return out
}

// crop returns the top-left w x h region of an S x S map.
func crop(lg []float32, s, w, h int) []float32 {
	out := make([]float32, w*h)
	for y := range h {
		copy(out[y*w:(y+1)*w], lg[y*s:y*s+w])
	}
	return out
}

// flipRaster returns an interleaved w x h raster of ch channels flipped left-right (h),
// top-bottom (v) or both (hv); "" returns it as it is. A flip is its own inverse, so the same
// call flips a variant's logits back.
func flipRaster(src []float32, w, h, ch int, f string) []float32 {
	if f == "" {
		return src
	}
	fh, fv := f == FlipH || f == FlipHV, f == FlipV || f == FlipHV
	out := make([]float32, len(src))
	for y := range h {
		sy := y
		if fv {
			sy = h - 1 - y
		}
		for x := range w {
			sx := x
			if fh {
				sx = w - 1 - x
			}
			copy(out[(y*w+x)*ch:(y*w+x+1)*ch], src[(sy*w+sx)*ch:(sy*w+sx+1)*ch])
		}
	}
	return out
}

// flipPix is flipRaster for 8-bit RGB.
func flipPix(src []uint8, w, h int, f string) []uint8 {
	fh, fv := f == FlipH || f == FlipHV, f == FlipV || f == FlipHV
	out := make([]uint8, len(src))
	for y := range h {
		sy := y
		if fv {
			sy = h - 1 - y
		}
		for x := range w {
			sx := x
			if fh {
				sx = w - 1 - x
			}
			copy(out[(y*w+x)*3:(y*w+x+1)*3], src[(sy*w+sx)*3:(sy*w+sx+1)*3])
		}
	}
	return out
}
