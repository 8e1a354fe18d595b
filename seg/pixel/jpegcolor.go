package pixel

import "image"

// Colour conversion of decoded JPEG frames the way libjpeg does it (IJG 6b, which DCMTK
// bundles, and libjpeg-turbo, which PIL and OpenCV use to prepare training images): chroma
// upsampled with the "fancy" triangle filter rather than replicated, then YCbCr to RGB in
// 16-bit fixed point. Go's image/jpeg stops at subsampled YCbCr; converting here keeps what
// the model sees close to what it was trained on, edges included.

const (
	fixBits = 16
	fixHalf = 1 << (fixBits - 1)
)

func fix(x float64) int32 { return int32(x*(1<<fixBits) + 0.5) }

var (
	fixCrR = fix(1.40200)
	fixCbB = fix(1.77200)
	fixCrG = fix(0.71414)
	fixCbG = fix(0.34414)
)

// ycbcrToRGB converts the top-left w x h of src into interleaved RGB samples in dst.
func ycbcrToRGB(src *image.YCbCr, w, h, dstStride int, dst []int32) {
	cw, ch := chromaSize(src)
	cb := upsample(src.Cb, src.CStride, cw, ch, src.SubsampleRatio, w, h)
	cr := upsample(src.Cr, src.CStride, cw, ch, src.SubsampleRatio, w, h)
	for y := range h {
		for x := range w {
			yy := int32(src.Y[y*src.YStride+x])
			b, r := int32(cb[y*w+x])-128, int32(cr[y*w+x])-128
			o := (y*dstStride + x) * 3
			dst[o] = clampInt(yy + (fixCrR*r+fixHalf)>>fixBits)
			dst[o+1] = clampInt(yy + (-fixCbG*b-fixCrG*r+fixHalf)>>fixBits)
			dst[o+2] = clampInt(yy + (fixCbB*b+fixHalf)>>fixBits)
		}
	}
}

func clampInt(v int32) int32 { return min(max(v, 0), 255) }

func chromaSize(src *image.YCbCr) (int, int) {
	r := src.Bounds()
	w, h := r.Dx(), r.Dy()
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		return (w + 1) / 2, h
	case image.YCbCrSubsampleRatio420:
		return (w + 1) / 2, (h + 1) / 2
	case image.YCbCrSubsampleRatio440:
		return w, (h + 1) / 2
	case image.YCbCrSubsampleRatio411:
		return (w + 3) / 4, h
	case image.YCbCrSubsampleRatio410:
		return (w + 3) / 4, (h + 1) / 2
	}
	return w, h
}

// upsample returns a chroma plane at full size w x h. 4:2:2 and 4:2:0 use libjpeg's
// h2v1 and h2v2 fancy upsampling; the rarer ratios replicate samples.
func upsample(c []byte, stride, cw, ch int, ratio image.YCbCrSubsampleRatio, w, h int) []byte {
	out := make([]byte, w*h)
	row := func(y int) []byte { return c[min(max(y, 0), ch-1)*stride:][:cw] }
	switch {
	case ratio == image.YCbCrSubsampleRatio444:
		for y := range h {
			copy(out[y*w:(y+1)*w], c[y*stride:])
		}
	case ratio == image.YCbCrSubsampleRatio422 && cw >= 2:
		line := make([]byte, 2*cw)
		for y := range h {
			h2v1(row(y), line)
			copy(out[y*w:(y+1)*w], line)
		}
	case ratio == image.YCbCrSubsampleRatio420 && cw >= 2:
		line := make([]byte, 2*cw)
		for y := range h {
			// Output row y lies between chroma rows y/2 and its nearer neighbour, edges repeated.
			near := row(y / 2)
			far := row(y/2 - 1)
			if y%2 == 1 {
				far = row(y/2 + 1)
			}
			h2v2(near, far, line, y%2 == 1)
			copy(out[y*w:(y+1)*w], line)
		}
	default:
		sx, sy := max(1, (w+cw-1)/cw), max(1, (h+ch-1)/ch)
		for y := range h {
			for x := range w {
				out[y*w+x] = c[min(y/sy, ch-1)*stride+min(x/sx, cw-1)]
			}
		}
	}
	return out
}

// h2v1 doubles a row with the triangle filter: each output is 3/4 the nearer input and 1/4
// the farther, with libjpeg's alternating rounding.
func h2v1(in, out []byte) {
	n := len(in)
	out[0] = in[0]
	out[1] = byte((int(in[0])*3 + int(in[1]) + 2) >> 2)
	for i := 1; i < n-1; i++ {
		v := int(in[i]) * 3
		out[2*i] = byte((v + int(in[i-1]) + 1) >> 2)
		out[2*i+1] = byte((v + int(in[i+1]) + 2) >> 2)
	}
	out[2*n-2] = byte((int(in[n-1])*3 + int(in[n-2]) + 1) >> 2)
	out[2*n-1] = in[n-1]
}

// h2v2 makes one output row from the nearer chroma row (weight 3/4) and the farther (1/4),
// then doubles it horizontally, in libjpeg's fixed point (sums of 16ths).
func h2v2(near, far, out []byte, _ bool) {
	n := len(near)
	col := func(i int) int { return int(near[i])*3 + int(far[i]) }
	this, next := col(0), col(1)
	out[0] = byte((this*4 + 8) >> 4)
	out[1] = byte((this*3 + next + 7) >> 4)
	last := this
	this = next
	for i := 1; i < n-1; i++ {
		next = col(i + 1)
		out[2*i] = byte((this*3 + last + 8) >> 4)
		out[2*i+1] = byte((this*3 + next + 7) >> 4)
		last, this = this, next
	}
	out[2*n-2] = byte((this*3 + last + 8) >> 4)
	out[2*n-1] = byte((this*4 + 7) >> 4)
}
