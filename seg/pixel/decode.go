package pixel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"

	"github.com/espnode/espnode/seg/pixel/codec/turbojpeg"
)

// Frame is one decoded frame: stored pixel values (bits outside BitsStored removed, signed
// values sign-extended), samples interleaved (R,G,B,R,G,B,...) whatever the planar
// configuration of the source.
type Frame struct {
	// Index is the frame's 0-based number in its image; per-frame functional groups apply by it.
	Index                  int
	Rows, Columns, Samples int
	// Photometric is the interpretation of Data: the data set's, except where decoding
	// converted the colour space (JPEG decodes YBR to RGB; YBR_FULL_422 is expanded to YBR_FULL).
	Photometric string
	Data        []int32
}

// At returns sample s of the pixel at (x, y).
func (f *Frame) At(x, y, s int) int32 { return f.Data[(y*f.Columns+x)*f.Samples+s] }

// NumFrames returns the number of frames in the image.
func (im *Image) NumFrames() int { return im.NumberOfFrames }

// Frame decodes frame i (0-based).
func (im *Image) Frame(i int) (*Frame, error) {
	if i < 0 || i >= im.NumberOfFrames {
		return nil, fmt.Errorf("frame %d of %d", i, im.NumberOfFrames)
	}
	f, err := im.decodeFrame(i)
	if err != nil {
		return nil, err
	}
	f.Index = i
	return f, nil
}

func (im *Image) decodeFrame(i int) (*Frame, error) {
	fam := families[im.TransferSyntax]
	if !fam.available() {
		return nil, unsupported(im.TransferSyntax)
	}
	if fam == famNative {
		if im.native == nil {
			return nil, errors.New("native transfer syntax but encapsulated pixel data")
		}
		return im.nativeFrame(i)
	}
	if im.frames == nil {
		return nil, fmt.Errorf("transfer syntax %s needs encapsulated pixel data", im.TransferSyntax)
	}
	data := im.frames[i]
	switch fam {
	case famRLE:
		return im.rleFrame(data)
	case famJPEG:
		return im.jpegFamilyFrame(data)
	case famJPEGLS:
		return im.jpegLSFrame(data)
	case famJ2K:
		return im.j2kFrame(data)
	default:
		return im.jxlFrame(data)
	}
}

func (im *Image) newFrame(samples int, photometric string) *Frame {
	return &Frame{Rows: im.Rows, Columns: im.Columns, Samples: samples, Photometric: photometric,
		Data: make([]int32, im.Rows*im.Columns*samples)}
}

func (im *Image) nativeFrame(i int) (*Frame, error) {
	px := im.Rows * im.Columns
	spp := im.SamplesPerPixel
	if im.BitsAllocated == 1 {
		// 1-bit frames are packed without padding between them (PS3.5 8.1.1), LSB first.
		bits := px * spp
		start := i * bits
		if (start+bits+7)/8 > len(im.native) {
			return nil, fmt.Errorf("pixel data holds %d bytes, frame %d needs bits %d..%d", len(im.native), i, start, start+bits)
		}
		f := im.newFrame(spp, im.Photometric)
		for k := range bits {
			b := start + k
			f.Data[k] = int32(im.native[b/8]>>(b%8)) & 1
		}
		return f, nil
	}
	if im.Photometric == "YBR_FULL_422" && spp == 3 && im.BitsAllocated == 8 {
		return im.native422Frame(i)
	}
	size := px * spp * im.BitsAllocated / 8
	if (i+1)*size > len(im.native) {
		return nil, fmt.Errorf("pixel data holds %d bytes, frame %d needs %d..%d", len(im.native), i, i*size, (i+1)*size)
	}
	return im.unpack(im.native[i*size:(i+1)*size], im.byteOrder, im.PlanarConfiguration == 1, im.Photometric)
}

// unpack turns one frame of native bytes into stored values.
func (im *Image) unpack(raw []byte, bo binary.ByteOrder, planar bool, photometric string) (*Frame, error) {
	spp := im.SamplesPerPixel
	px := im.Rows * im.Columns
	f := im.newFrame(spp, photometric)
	shift := uint(im.HighBit - im.BitsStored + 1)
	mask := uint32(1)<<uint(im.BitsStored) - 1
	if im.BitsStored == 32 {
		mask = 0xFFFFFFFF
	}
	signBit := uint32(1) << uint(im.BitsStored-1)
	signed := im.Signed()
	bytesPer := im.BitsAllocated / 8
	if !planar || spp == 1 {
		// The common layouts, in loops without a call per sample: RLE and native frames of
		// megapixels spend most of their decode time here.
		data := f.Data[:px*spp]
		switch {
		case bytesPer == 1:
			for k, b := range raw[:len(data)] {
				data[k] = storedValue(uint32(b), shift, mask, signBit, signed)
			}
			return f, nil
		case bytesPer == 2 && bo == binary.LittleEndian:
			raw := raw[:2*len(data)]
			for k := range data {
				data[k] = storedValue(uint32(raw[2*k])|uint32(raw[2*k+1])<<8, shift, mask, signBit, signed)
			}
			return f, nil
		}
	}
	for k := range px * spp {
		var v uint32
		switch bytesPer {
		case 1:
			v = uint32(raw[k])
		case 2:
			v = uint32(bo.Uint16(raw[2*k:]))
		case 4:
			v = bo.Uint32(raw[4*k:])
		}
		v = (v >> shift) & mask
		if signed && v&signBit != 0 {
			v |= ^mask
		}
		dst := k
		if planar && spp > 1 {
			// Planes R...R G...G B...B: sample k is component k/px of pixel k%px.
			dst = (k%px)*spp + k/px
		}
		f.Data[dst] = int32(v)
	}
	return f, nil
}

// storedValue is a sample as Frame holds it: bits below the high bit's field shifted out, bits
// above BitsStored removed, a signed value sign-extended.
func storedValue(v uint32, shift uint, mask, signBit uint32, signed bool) int32 {
	v = (v >> shift) & mask
	if signed && v&signBit != 0 {
		v |= ^mask
	}
	return int32(v)
}

// native422Frame expands YBR_FULL_422 (two pixels stored as Y1 Y2 Cb Cr, PS3.3 C.7.6.3.1.2)
// to one Y, Cb, Cr triple per pixel.
func (im *Image) native422Frame(i int) (*Frame, error) {
	cols, rows := im.Columns, im.Rows
	pairs := (cols + 1) / 2
	size := rows * pairs * 4
	if (i+1)*size > len(im.native) {
		return nil, fmt.Errorf("YBR_FULL_422 pixel data holds %d bytes, frame %d needs %d..%d", len(im.native), i, i*size, (i+1)*size)
	}
	raw := im.native[i*size:]
	f := im.newFrame(3, "YBR_FULL")
	for y := range rows {
		for p := range pairs {
			b := raw[(y*pairs+p)*4:]
			for j := range 2 {
				x := 2*p + j
				if x >= cols {
					break
				}
				o := (y*cols + x) * 3
				f.Data[o], f.Data[o+1], f.Data[o+2] = int32(b[j]), int32(b[2]), int32(b[3])
			}
		}
	}
	return f, nil
}

// DecodeRLE decodes one RLE Lossless frame (PS3.5 Annex G) into native little-endian bytes
// with interleaved samples: each sample's bytes come as separate segments, most significant
// byte first, and every segment is PackBits-encoded.
func DecodeRLE(data []byte, rows, cols, samples, bitsAllocated int) ([]byte, error) {
	segs, err := rleSegments(data, rows, cols, samples, bitsAllocated)
	if err != nil {
		return nil, err
	}
	px, bytesPer := rows*cols, bitsAllocated/8
	out := make([]byte, px*samples*bytesPer)
	stride := samples * bytesPer
	for s, seg := range segs {
		// Segment s holds byte (bytesPer-1 - s%bytesPer) (little-endian position) of sample s/bytesPer.
		sample, byteIdx := s/bytesPer, bytesPer-1-s%bytesPer
		if err := rleSegment(s, seg, px, out[sample*bytesPer+byteIdx:], stride, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rleSegments checks an RLE frame's header (PS3.5 G.5) against the image's geometry and
// returns its segments, before anything of the image's size is allocated.
func rleSegments(data []byte, rows, cols, samples, bitsAllocated int) ([][]byte, error) {
	if bitsAllocated%8 != 0 || bitsAllocated == 0 || bitsAllocated > 32 {
		return nil, fmt.Errorf("RLE: %d bits allocated is not supported", bitsAllocated)
	}
	if len(data) < 64 {
		return nil, fmt.Errorf("RLE: frame of %d bytes is shorter than its 64-byte header", len(data))
	}
	bytesPer := bitsAllocated / 8
	nseg := int(binary.LittleEndian.Uint32(data))
	if want := samples * bytesPer; nseg != want {
		return nil, fmt.Errorf("RLE: header declares %d segments, %d samples of %d bits need %d", nseg, samples, bitsAllocated, want)
	}
	px := rows * cols
	if px > maxFramePixels || px > 64*len(data) {
		// A PackBits segment expands at most 64 times (a 2-byte run of 128), so a frame this
		// short cannot hold this many pixels; checking before allocating bounds hostile input.
		return nil, fmt.Errorf("RLE: a %d-byte frame cannot hold %dx%d pixels", len(data), cols, rows)
	}
	segs := make([][]byte, nseg)
	for s := range nseg {
		start := int(binary.LittleEndian.Uint32(data[4+4*s:]))
		end := len(data)
		if s+1 < nseg {
			end = int(binary.LittleEndian.Uint32(data[8+4*s:]))
		}
		if start < 64 || start > end || end > len(data) {
			return nil, fmt.Errorf("RLE: segment %d spans bytes %d..%d of a %d-byte frame", s, start, end, len(data))
		}
		segs[s] = data[start:end]
	}
	return segs, nil
}

// rleSegment decodes segment s into out[0], out[stride], ..., each byte shifted left by shift
// and or-ed in, and checks that it fills the frame.
func rleSegment[T byte | int32](s int, seg []byte, px int, out []T, stride int, shift uint) error {
	n, err := unpackBits(seg, px, out, stride, shift)
	if err != nil {
		return fmt.Errorf("RLE: segment %d: %w", s, err)
	}
	if n < px {
		return fmt.Errorf("RLE: segment %d decodes to %d bytes, want %d", s, n, px)
	}
	return nil
}

// unpackBits decodes a PackBits stream into out[0], out[stride], out[2*stride], ..., at most
// limit bytes, each shifted left by shift and or-ed into what is there; encoders pad segments
// to an even length, so output past the limit is ignored rather than an error.
func unpackBits[T byte | int32](src []byte, limit int, out []T, stride int, shift uint) (int, error) {
	if limit > 0 && (limit-1)*stride >= len(out) {
		return 0, fmt.Errorf("%d bytes at a stride of %d do not fit in %d", limit, stride, len(out))
	}
	n := 0
	for i := 0; i < len(src) && n < limit; {
		h := int8(src[i])
		i++
		switch {
		case h >= 0:
			cnt := int(h) + 1
			if i+cnt > len(src) {
				return n, fmt.Errorf("literal run of %d at %d passes the end (%d)", cnt, i-1, len(src))
			}
			cnt = min(cnt, limit-n)
			for k, b := range src[i : i+cnt] {
				out[(n+k)*stride] |= T(b) << shift
			}
			n += cnt
			i += int(h) + 1
		case h != -128:
			if i >= len(src) {
				return n, fmt.Errorf("replicate run at %d has no byte", i-1)
			}
			cnt, b := min(1-int(h), limit-n), T(src[i])<<shift
			for k := range cnt {
				out[(n+k)*stride] |= b
			}
			n += cnt
			i++
		}
	}
	return n, nil
}

// rleFrame decodes an RLE frame's segments straight into the frame's samples (PS3.5 G.3.1:
// segment order is most significant byte first), then keeps the stored bits of each. RLE
// keeps each component in its own segment whatever PlanarConfiguration says; the attribute is
// ignored (some writers set it to 1).
func (im *Image) rleFrame(data []byte) (*Frame, error) {
	segs, err := rleSegments(data, im.Rows, im.Columns, im.SamplesPerPixel, im.BitsAllocated)
	if err != nil {
		return nil, err
	}
	spp, px, bytesPer := im.SamplesPerPixel, im.Rows*im.Columns, im.BitsAllocated/8
	f := im.newFrame(spp, im.Photometric)
	for s, seg := range segs {
		sample, byteIdx := s/bytesPer, bytesPer-1-s%bytesPer
		if err := rleSegment(s, seg, px, f.Data[sample:], spp, uint(8*byteIdx)); err != nil {
			return nil, err
		}
	}
	shift := uint(im.HighBit - im.BitsStored + 1)
	mask := uint32(1)<<uint(im.BitsStored) - 1
	if im.BitsStored == 32 {
		mask = 0xFFFFFFFF
	}
	signBit := uint32(1) << uint(im.BitsStored-1)
	signed := im.Signed()
	if shift == 0 && mask == 1<<uint(im.BitsAllocated)-1 && !signed {
		return f, nil
	}
	for k, v := range f.Data {
		f.Data[k] = storedValue(uint32(v), shift, mask, signBit, signed)
	}
	return f, nil
}

// jpegFrame decodes an 8-bit DCT JPEG frame with libjpeg-turbo where the build has it, else
// with Go's image/jpeg; either way YCbCr comes out as RGB, converted as libjpeg does it.
func (im *Image) jpegFrame(data []byte) (*Frame, error) {
	if im.BitsAllocated != 8 {
		return nil, fmt.Errorf("JPEG Baseline with BitsAllocated %d", im.BitsAllocated)
	}
	f, err := im.turboJPEGFrame(data)
	if err == nil || !errors.Is(err, turbojpeg.ErrNotCompiled) && !errors.Is(err, turbojpeg.ErrUnsupported) {
		return f, err
	}
	return im.goJPEGFrame(data)
}

// turboJPEGFrame decodes with libjpeg-turbo; a frame smaller than the data set's (an edge tile
// some slide scanners encode at its cropped size) goes at the top left, black elsewhere.
func (im *Image) turboJPEGFrame(data []byte) (*Frame, error) {
	var f *Frame
	_, err := turbojpeg.DecodeInto(data, func(h *turbojpeg.Header) ([]int32, int, error) {
		if h.Width > im.Columns || h.Height > im.Rows {
			return nil, 0, fmt.Errorf("JPEG Baseline frame is %dx%d, the data set says %dx%d", h.Width, h.Height, im.Columns, im.Rows)
		}
		photometric := "RGB"
		if h.Components == 1 {
			photometric = im.grayPhotometric()
		}
		f = im.newFrame(h.Components, photometric)
		return f.Data, im.Columns * h.Components, nil
	})
	if err != nil {
		return nil, fmt.Errorf("JPEG Baseline: %w", err)
	}
	return f, nil
}

// goJPEGFrame decodes with Go's image/jpeg: the build without the C codecs, and the 4-component
// frames (CMYK, YCCK) libjpeg-turbo is not asked to convert.
func (im *Image) goJPEGFrame(data []byte) (*Frame, error) {
	// The frame header is checked first: the decoder allocates what it declares.
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("JPEG Baseline: %w", err)
	}
	if cfg.Width > im.Columns || cfg.Height > im.Rows {
		return nil, fmt.Errorf("JPEG Baseline frame is %dx%d, the data set says %dx%d", cfg.Width, cfg.Height, im.Columns, im.Rows)
	}
	// Fragments are padded to an even length, sometimes past the EOI marker; the decoder stops at EOI.
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("JPEG Baseline: %w", err)
	}
	b := img.Bounds()
	if b.Dx() > im.Columns || b.Dy() > im.Rows {
		return nil, fmt.Errorf("JPEG Baseline frame is %dx%d, the data set says %dx%d", b.Dx(), b.Dy(), im.Columns, im.Rows)
	}
	// Some slide scanners encode the edge tiles of a tiled image at their cropped size; the
	// frame is still Rows x Columns, with the tile at the top left and black elsewhere.
	w, h := b.Dx(), b.Dy()
	switch src := img.(type) {
	case *image.Gray:
		f := im.newFrame(1, im.grayPhotometric())
		for y := range h {
			for x := range w {
				f.Data[y*im.Columns+x] = int32(src.Pix[y*src.Stride+x])
			}
		}
		return f, nil
	case *image.YCbCr:
		f := im.newFrame(3, "RGB")
		ycbcrToRGB(src, w, h, im.Columns, f.Data)
		return f, nil
	default:
		f := im.newFrame(3, "RGB")
		for y := range h {
			for x := range w {
				c := color.NRGBAModel.Convert(img.At(x+b.Min.X, y+b.Min.Y)).(color.NRGBA)
				o := (y*im.Columns + x) * 3
				f.Data[o], f.Data[o+1], f.Data[o+2] = int32(c.R), int32(c.G), int32(c.B)
			}
		}
		return f, nil
	}
}

func (im *Image) grayPhotometric() string {
	if im.Photometric == "MONOCHROME1" {
		return "MONOCHROME1"
	}
	return "MONOCHROME2"
}
