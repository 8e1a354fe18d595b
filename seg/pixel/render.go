package pixel

import (
	"fmt"
	"math"
	"slices"

	"github.com/espnode/espnode/dcm"
)

// RGB is an 8-bit RGB raster, three bytes per pixel, row-major.
type RGB struct {
	Width, Height int
	Pix           []uint8
	// Gray says every pixel's three channels are equal (Render sets it for a grayscale source):
	// resampling then computes one channel and copies it, the same values bit for bit.
	Gray bool
}

// percentile bounds of the fallback window for grayscale images that carry no window or VOI
// LUT: wide enough to keep the anatomy, narrow enough that a few outliers (padding, burned-in
// text, metal) do not flatten it.
const (
	lowPercentile  = 0.005
	highPercentile = 0.995
	// percentileSamples bounds the values sorted to find the percentiles.
	percentileSamples = 1 << 18
)

// Render applies the display pipeline to a decoded frame: for grayscale the modality LUT
// (or rescale), then the VOI LUT, else the data set's first window, else a percentile window,
// then the MONOCHROME1 inversion and replication to three channels; for colour the YBR or
// palette conversion to RGB, scaled to 8 bits.
func (im *Image) Render(f *Frame) (*RGB, error) {
	out := &RGB{Width: f.Columns, Height: f.Rows, Pix: make([]uint8, f.Rows*f.Columns*3)}
	px := f.Rows * f.Columns
	switch f.Photometric {
	case "MONOCHROME1", "MONOCHROME2":
		if f.Samples != 1 {
			return nil, fmt.Errorf("%s with %d samples per pixel", f.Photometric, f.Samples)
		}
		im.grayToRGB(out.Pix, f.Data, im.transform(f.Index), f.Photometric == "MONOCHROME1")
		out.Gray = true
	case "RGB":
		if f.Samples != 3 {
			return nil, fmt.Errorf("RGB with %d samples per pixel", f.Samples)
		}
		shift := max(im.BitsStored-8, 0)
		if im.TransferSyntax == dcm.JPEGBaseline8Bit {
			shift = 0
		}
		for i, v := range f.Data {
			out.Pix[i] = clamp8(float64(v >> shift))
		}
	case "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420":
		if f.Samples != 3 {
			return nil, fmt.Errorf("%s with %d samples per pixel", f.Photometric, f.Samples)
		}
		partial := f.Photometric == "YBR_PARTIAL_422" || f.Photometric == "YBR_PARTIAL_420"
		for i := range px {
			y, cb, cr := float64(f.Data[3*i]), float64(f.Data[3*i+1])-128, float64(f.Data[3*i+2])-128
			var r, g, b float64
			if partial {
				y = 1.1644 * (y - 16)
				r, g, b = y+1.5960*cr, y-0.3917*cb-0.8129*cr, y+2.0172*cb
			} else {
				// PS3.3 C.7.6.3.1.2 (ITU-R BT.601 full range).
				r, g, b = y+1.402*cr, y-0.344136*cb-0.714136*cr, y+1.772*cb
			}
			out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = clamp8(r), clamp8(g), clamp8(b)
		}
	case "PALETTE COLOR":
		if im.Palette == nil || f.Samples != 1 {
			return nil, fmt.Errorf("PALETTE COLOR without a palette or with %d samples", f.Samples)
		}
		for c := range 3 {
			lut := &im.Palette[c]
			shift := max(lut.Bits-8, 0)
			if lut.Bits == 16 && maxEntry(lut.Data) < 256 {
				// Declared 16-bit, filled with 8-bit values: a common writer mistake.
				shift = 0
			}
			for i, v := range f.Data {
				out.Pix[3*i+c] = uint8(lut.Lookup(int(v)) >> shift)
			}
		}
	default:
		return nil, fmt.Errorf("photometric interpretation %q is not supported", f.Photometric)
	}
	return out, nil
}

func maxEntry(d []uint16) uint16 {
	var m uint16
	for _, v := range d {
		m = max(m, v)
	}
	return m
}

func clamp8(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// transform returns frame i's rescale and windows: its functional groups' for enhanced
// multi-frame images, the data set's otherwise.
func (im *Image) transform(i int) FrameTransform {
	if i >= 0 && i < len(im.PerFrame) {
		return im.PerFrame[i]
	}
	return FrameTransform{RescaleSlope: im.RescaleSlope, RescaleIntercept: im.RescaleIntercept, Windows: im.Windows}
}

// modality returns the Modality LUT, or the rescale, as a function of a stored value.
func (im *Image) modality(ft FrameTransform) func(int32) float64 {
	if lut := im.ModalityLUT; lut != nil {
		return func(v int32) float64 { return float64(lut.Lookup(int(v))) }
	}
	return func(v int32) float64 { return float64(v)*ft.RescaleSlope + ft.RescaleIntercept }
}

// displayTableSize bounds the table grayToRGB fills: every stored value of up to 16 bits.
const displayTableSize = 1 << 16

// grayToRGB maps stored grayscale values to 0..255, inverted for MONOCHROME1, into dst, three
// equal bytes a pixel. Each step is a function of the stored value alone, so when the frame's
// values span at most displayTableSize levels (and no more levels than pixels) the mapping runs
// once per level into a table instead of once per pixel: a 1760x1760 radiograph of 12 bits takes
// 4,096 evaluations instead of 3.1 million, and no float64 copy of the frame. The table's entries
// are the values the per-pixel path gives.
func (im *Image) grayToRGB(dst []uint8, stored []int32, ft FrameTransform, invert bool) {
	if len(stored) == 0 {
		return
	}
	modality := im.modality(ft)
	display := im.voi(stored, ft, modality)
	gray := func(v int32) uint8 {
		g := display(modality(v))
		if invert {
			g = 255 - g
		}
		return g
	}
	dst = dst[:3*len(stored)]
	lo, hi := stored[0], stored[0]
	for _, v := range stored {
		lo, hi = min(lo, v), max(hi, v)
	}
	if n := int64(hi) - int64(lo) + 1; n <= displayTableSize && n <= int64(len(stored)) {
		table := make([]uint8, n)
		for k := range table {
			table[k] = gray(lo + int32(k))
		}
		for i, v := range stored {
			g := table[v-lo]
			dst[3*i], dst[3*i+1], dst[3*i+2] = g, g, g
		}
		return
	}
	for i, v := range stored {
		g := gray(v)
		dst[3*i], dst[3*i+1], dst[3*i+2] = g, g, g
	}
}

// voi returns the VOI stage as a function of a modality value: the VOI LUT, else the first
// window, else the percentile window of the frame's modality values.
func (im *Image) voi(stored []int32, ft FrameTransform, modality func(int32) float64) func(float64) uint8 {
	switch {
	case im.VOILUT != nil:
		lut := im.VOILUT
		top := float64(uint32(1)<<uint(lut.Bits) - 1)
		if m := float64(maxEntry(lut.Data)); m < top/2 {
			// Tables whose entries use fewer bits than the descriptor claims.
			top = m
		}
		return func(v float64) uint8 { return clamp8(float64(lut.Lookup(int(math.Round(v)))) * 255 / max(top, 1)) }
	case len(ft.Windows) > 0:
		w := ft.Windows[0]
		return func(v float64) uint8 { return clamp8(applyWindow(v, w)) }
	default:
		lo, hi := percentiles(modalitySample(stored, modality), lowPercentile, highPercentile)
		return func(v float64) uint8 { return clamp8((v - lo) / (hi - lo) * 255) }
	}
}

// modalitySample is the modality values of an even subsample of stored, at most about
// percentileSamples of them.
func modalitySample(stored []int32, modality func(int32) float64) []float64 {
	step := max(1, len(stored)/percentileSamples)
	sample := make([]float64, 0, len(stored)/step+1)
	for i := 0; i < len(stored); i += step {
		sample = append(sample, modality(stored[i]))
	}
	return sample
}

// applyWindow implements PS3.3 C.11.2.1.2 for an output range of 0..255.
func applyWindow(x float64, w Window) float64 {
	const ymax = 255
	c, width := w.Center, w.Width
	switch w.Function {
	case "SIGMOID":
		return ymax / (1 + math.Exp(-4*(x-c)/width))
	case "LINEAR_EXACT":
		switch {
		case x <= c-width/2:
			return 0
		case x > c+width/2:
			return ymax
		}
		return ((x-c)/width + 0.5) * ymax
	default:
		if width < 1 {
			width = 1
		}
		switch {
		case x <= c-0.5-(width-1)/2:
			return 0
		case x > c-0.5+(width-1)/2:
			return ymax
		}
		if width == 1 {
			return ymax
		}
		return ((x-(c-0.5))/(width-1) + 0.5) * ymax
	}
}

// percentiles returns the lo and hi quantiles of a sample (modalitySample), which it sorts.
func percentiles(sample []float64, lo, hi float64) (float64, float64) {
	slices.Sort(sample)
	q := func(p float64) float64 { return sample[int(p*float64(len(sample)-1)+0.5)] }
	a, b := q(lo), q(hi)
	if b <= a {
		// A flat image, or one whose values almost all sit on one level: fall back to min..max.
		a, b = sample[0], sample[len(sample)-1]
		if b <= a {
			b = a + 1
		}
	}
	return a, b
}
