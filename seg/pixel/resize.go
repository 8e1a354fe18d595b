package pixel

import (
	"fmt"
	"math"
)

// resampleWeights are, for each output coordinate, the first input index and the normalised
// weights of the inputs it draws from.
type resampleWeights struct {
	start []int
	w     [][]float32
}

// triangle weights: bilinear interpolation when enlarging (pixel centres at +0.5, which is
// PyTorch's align_corners=False), and, when reducing, a triangle widened by the scale so that
// every input pixel contributes (an area-like antialiasing filter, as PIL's BILINEAR does)
// instead of skipping pixels and aliasing thin structures such as vessels.
func triangleWeights(in, out int) resampleWeights {
	scale := float64(in) / float64(out)
	support := max(scale, 1)
	rw := resampleWeights{start: make([]int, out), w: make([][]float32, out)}
	for i := range out {
		center := (float64(i) + 0.5) * scale
		lo := max(int(math.Floor(center-support)), 0)
		hi := min(int(math.Ceil(center+support)), in)
		var ws []float32
		var sum float64
		for j := lo; j < hi; j++ {
			d := math.Abs((float64(j) + 0.5 - center) / support)
			w := max(1-d, 0)
			ws = append(ws, float32(w))
			sum += w
		}
		if sum == 0 {
			// Enlarging by a lot puts the centre between two pixels at the border: take the nearest.
			j := min(max(int(center), 0), in-1)
			lo, ws, sum = j, []float32{1}, 1
		}
		for k := range ws {
			ws[k] = float32(float64(ws[k]) / sum)
		}
		rw.start[i], rw.w[i] = lo, ws
	}
	return rw
}

// Resample resizes an interleaved raster of ch channels from w x h to dw x dh with the node's
// triangle filter (the one Preprocess and Postprocess use): along rows first, then along
// columns, in float32. The source may be the 8-bit pixels themselves (RGB.Pix), which saves
// converting a whole radiograph to float32 first (a 1760x1760 RGB is 37 MB of it), or float32
// (logits, probabilities). The source is returned converted when the sizes are equal. The
// model's tiled input mode (seg/onnx) resizes to its working size and back with it, so that
// tiles and letterbox share one resampler, and model/espmedsam/infer.py reproduces it.
func Resample[T uint8 | float32](src []T, w, h, ch, dw, dh int) []float32 {
	return resample(src, w, h, ch, dw, dh, false)
}

// Resample resizes the image to dw x dh as Resample does its pixels (three channels, float32).
func (img *RGB) Resample(dw, dh int) []float32 {
	return resample(img.Pix, img.Width, img.Height, 3, dw, dh, img.Gray)
}

// resample is Resample; gray says the source's three channels are equal, so that the row pass,
// where a reduction's taps are, sums one channel and copies it.
func resample[T uint8 | float32](src []T, w, h, ch, dw, dh int, gray bool) []float32 {
	if w == dw && h == dh {
		out := make([]float32, len(src))
		for i, v := range src {
			out[i] = float32(v)
		}
		return out
	}
	tmp := rowPass(src, w, h, ch, dw, gray)
	yw := triangleWeights(h, dh)
	out := make([]float32, dh*dw*ch)
	for y := range dh {
		columnPass(out[y*dw*ch:(y+1)*dw*ch], tmp, yw, y)
	}
	return out
}

// ResampleMask is Threshold(Resample(src, w, h, 1, dw, dh), dw, dh, threshold, false), the same
// bits, made one output row at a time: the source-size logits (12 MB for a 1760x1760 radiograph)
// are never held.
func ResampleMask(src []float32, w, h, dw, dh int, threshold float32) (*Mask, error) {
	if w <= 0 || h <= 0 || dw <= 0 || dh <= 0 || len(src) != w*h {
		return nil, fmt.Errorf("resample mask: %d logits for %dx%d to %dx%d", len(src), w, h, dw, dh)
	}
	m := &Mask{Width: dw, Height: dh, Bits: make([]uint8, dw*dh)}
	mark := func(bits []uint8, row []float32) {
		for i, v := range row {
			if v >= threshold {
				bits[i] = 1
			}
		}
	}
	if w == dw && h == dh {
		mark(m.Bits, src)
		return m, nil
	}
	tmp := rowPass(src, w, h, 1, dw, false)
	yw := triangleWeights(h, dh)
	row := make([]float32, dw)
	for y := range dh {
		clear(row)
		columnPass(row, tmp, yw, y)
		mark(m.Bits[y*dw:(y+1)*dw], row)
	}
	return m, nil
}

// rowPass resizes each row of the source to dw pixels (ch channels interleaved, float32).
func rowPass[T uint8 | float32](src []T, w, h, ch, dw int, gray bool) []float32 {
	xw := triangleWeights(w, dw)
	tmp := make([]float32, h*dw*ch)
	for y := range h {
		row := src[y*w*ch : (y+1)*w*ch]
		dst := tmp[y*dw*ch : (y+1)*dw*ch]
		if ch == 3 {
			// The three channels of a tap side by side: one pass over the source row instead
			// of three strided ones; each channel's sum keeps the taps' order. Three equal
			// channels (gray) take one sum, copied.
			for x := range dw {
				ws := xw.w[x]
				px := row[xw.start[x]*3 : (xw.start[x]+len(ws))*3]
				if gray {
					var v float32
					for k, wt := range ws {
						v += wt * float32(px[3*k])
					}
					dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
					continue
				}
				var r, g, b float32
				for k, wt := range ws {
					r += wt * float32(px[3*k])
					g += wt * float32(px[3*k+1])
					b += wt * float32(px[3*k+2])
				}
				dst[3*x], dst[3*x+1], dst[3*x+2] = r, g, b
			}
			continue
		}
		for x := range dw {
			s := xw.start[x]
			for c := range ch {
				var acc float32
				for k, wt := range xw.w[x] {
					acc += wt * float32(row[(s+k)*ch+c])
				}
				dst[x*ch+c] = acc
			}
		}
	}
	return tmp
}

// columnPass adds output row y of the column resize of the row-resized rows tmp into dst (zero,
// one output row long), the taps in order.
func columnPass(dst, tmp []float32, yw resampleWeights, y int) {
	n := len(dst)
	s := yw.start[y]
	for k, wt := range yw.w[y] {
		srow := tmp[(s+k)*n : (s+k+1)*n]
		for i, v := range srow {
			dst[i] += wt * v
		}
	}
}

// Geometry records how a source image was fitted into the model's S x S input, so that the
// output can be mapped back.
type Geometry struct {
	// SrcWidth and SrcHeight are the source image's size.
	SrcWidth, SrcHeight int
	// Width and Height are the resized image's size inside the input, at its top left.
	Width, Height int
	// Size is S.
	Size int
}

// Fit computes the geometry that resizes the longer side to size, keeping the aspect ratio.
func Fit(srcWidth, srcHeight, size int) Geometry {
	g := Geometry{SrcWidth: srcWidth, SrcHeight: srcHeight, Size: size}
	long := max(srcWidth, srcHeight)
	g.Width = max(1, int(math.Round(float64(srcWidth)*float64(size)/float64(long))))
	g.Height = max(1, int(math.Round(float64(srcHeight)*float64(size)/float64(long))))
	g.Width, g.Height = min(g.Width, size), min(g.Height, size)
	return g
}

// Preprocess resizes an RGB image so that its longer side is size, pads it with zeros at the
// bottom and right, and returns it as the model's float32 [3,size,size] input (RGB, 0..255).
func Preprocess(img *RGB, size int) ([]float32, Geometry, error) {
	if img.Width <= 0 || img.Height <= 0 || len(img.Pix) != img.Width*img.Height*3 {
		return nil, Geometry{}, fmt.Errorf("preprocess: %dx%d image with %d bytes", img.Width, img.Height, len(img.Pix))
	}
	if size <= 0 {
		return nil, Geometry{}, fmt.Errorf("preprocess: input size %d", size)
	}
	g := Fit(img.Width, img.Height, size)
	scaled := img.Resample(g.Width, g.Height)
	out := make([]float32, 3*size*size)
	for y := range g.Height {
		for x := range g.Width {
			for c := range 3 {
				v := scaled[(y*g.Width+x)*3+c]
				out[c*size*size+y*size+x] = min(max(v, 0), 255)
			}
		}
	}
	return out, g, nil
}

// Mask is a segmentation on the source image's pixel grid.
type Mask struct {
	Width, Height int
	// Bits holds 1 for foreground and 0 for background, row-major.
	Bits []uint8
	// Prob holds the foreground probability (the sigmoid of the logit) when asked for, for
	// FRACTIONAL segmentations.
	Prob []float32
}

// Foreground counts the foreground pixels.
func (m *Mask) Foreground() int {
	n := 0
	for _, b := range m.Bits {
		n += int(b)
	}
	return n
}

// Postprocess maps the model's logits [S,S] back to the source: it crops the padding, resizes
// the logits (bilinearly, before thresholding, so edges stay smooth) to the source size and
// thresholds them; with probabilities it also keeps the sigmoid of the resized logits.
func Postprocess(logits []float32, g Geometry, threshold float32, probabilities bool) (*Mask, error) {
	s := g.Size
	if len(logits) != s*s {
		return nil, fmt.Errorf("postprocess: %d logits for a %dx%d output", len(logits), s, s)
	}
	if g.Width <= 0 || g.Height <= 0 || g.Width > s || g.Height > s || g.SrcWidth <= 0 || g.SrcHeight <= 0 {
		return nil, fmt.Errorf("postprocess: bad geometry %+v", g)
	}
	crop := make([]float32, g.Width*g.Height)
	for y := range g.Height {
		copy(crop[y*g.Width:(y+1)*g.Width], logits[y*s:y*s+g.Width])
	}
	return Threshold(Resample(crop, g.Width, g.Height, 1, g.SrcWidth, g.SrcHeight), g.SrcWidth, g.SrcHeight, threshold, probabilities)
}

// Threshold makes the mask of source-size logits (width x height, row-major): foreground where
// a logit reaches threshold; with probabilities it also keeps the sigmoid of each logit.
func Threshold(logits []float32, width, height int, threshold float32, probabilities bool) (*Mask, error) {
	if width <= 0 || height <= 0 || len(logits) != width*height {
		return nil, fmt.Errorf("threshold: %d logits for a %dx%d mask", len(logits), width, height)
	}
	m := &Mask{Width: width, Height: height, Bits: make([]uint8, len(logits))}
	for i, v := range logits {
		if v >= threshold {
			m.Bits[i] = 1
		}
	}
	if probabilities {
		m.Prob = make([]float32, len(logits))
		for i, v := range logits {
			m.Prob[i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	}
	return m, nil
}
