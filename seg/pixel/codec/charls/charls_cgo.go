//go:build cgo && !nocodecs

package charls

/*
#cgo pkg-config: charls
#include <stdlib.h>
#include <charls/charls.h>

// jls_header reads the headers of src into the out parameters; the decoder is kept for
// jls_decode. Returns a charls_jpegls_errc.
static int jls_header(charls_jpegls_decoder *d, const void *src, size_t n, charls_frame_info *fi,
                      int32_t *near_lossless, int32_t *ilv) {
	charls_jpegls_errc e = charls_jpegls_decoder_set_source_buffer(d, src, n);
	if (e) return e;
	e = charls_jpegls_decoder_read_header(d);
	if (e) return e;
	e = charls_jpegls_decoder_get_frame_info(d, fi);
	if (e) return e;
	e = charls_jpegls_decoder_get_near_lossless(d, 0, near_lossless);
	if (e) return e;
	charls_interleave_mode m;
	e = charls_jpegls_decoder_get_interleave_mode(d, &m);
	*ilv = (int32_t)m;
	return e;
}

static int jls_decode(charls_jpegls_decoder *d, void *dst, size_t n, size_t *need) {
	charls_jpegls_errc e = charls_jpegls_decoder_get_destination_size(d, 0, need);
	if (e) return e;
	if (*need != n) return -1;
	return charls_jpegls_decoder_decode_to_buffer(d, dst, n, 0);
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"runtime"
	"unsafe"
)

// Available reports whether this build decodes JPEG-LS.
func Available() bool { return true }

// Version is the CharLS library's version.
func Version() string { return C.GoString(C.charls_get_version_string()) }

func errc(e C.int) error {
	if e == -1 {
		return fmt.Errorf("%w: the library's output size disagrees with the header", ErrDecode)
	}
	return fmt.Errorf("%w: %s", ErrDecode, C.GoString(C.charls_get_error_message(C.charls_jpegls_errc(e))))
}

// Decode decodes one JPEG-LS frame. accept sees the header before the image is allocated; its
// error stops decoding. The library reads only src and writes only the buffer allocated for
// the size the header gives, which it is told.
func Decode(src []byte, accept func(*Header) error) (*Image, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("%w: empty codestream", ErrDecode)
	}
	src = endWithEOI(src)
	d := C.charls_jpegls_decoder_create()
	if d == nil {
		return nil, fmt.Errorf("%w: cannot create a decoder", ErrDecode)
	}
	defer C.charls_jpegls_decoder_destroy(d)
	var fi C.charls_frame_info
	var near, ilv C.int32_t
	// src stays referenced by the decoder until it is destroyed, below, before Decode returns;
	// cgo's rules allow this only while the memory is pinned.
	var pin runtime.Pinner
	pin.Pin(&src[0])
	defer pin.Unpin()
	if e := C.jls_header(d, unsafe.Pointer(&src[0]), C.size_t(len(src)), &fi, &near, &ilv); e != 0 {
		return nil, errc(e)
	}
	h := &Header{Width: int(fi.width), Height: int(fi.height), Components: int(fi.component_count),
		BitsPerSample: int(fi.bits_per_sample), NearLossless: int(near), Interleave: int(ilv)}
	switch {
	case h.Width < 1 || h.Height < 1 || h.Components < 1 || h.Components > 4:
		return nil, fmt.Errorf("%w: frame of %dx%d pixels, %d components", ErrDecode, h.Width, h.Height, h.Components)
	case h.BitsPerSample < 2 || h.BitsPerSample > 16:
		return nil, fmt.Errorf("%w: %d bits per sample", ErrDecode, h.BitsPerSample)
	}
	if accept != nil {
		hc := *h
		if err := accept(&hc); err != nil {
			return nil, err
		}
	}
	img := &Image{Width: h.Width, Height: h.Height, Components: h.Components, BitsPerSample: h.BitsPerSample, NearLossless: h.NearLossless}
	n := h.Width * h.Height * h.Components
	var dst unsafe.Pointer
	size := n
	if h.BitsPerSample <= 8 {
		img.Pix8 = make([]byte, n)
		dst = unsafe.Pointer(&img.Pix8[0])
	} else {
		img.Pix16 = make([]uint16, n)
		dst = unsafe.Pointer(&img.Pix16[0])
		size = 2 * n
	}
	var need C.size_t
	if e := C.jls_decode(d, dst, C.size_t(size), &need); e != 0 {
		return nil, errc(e)
	}
	if h.Components > 1 && h.Interleave == 0 {
		// Without interleaving each component is its own scan, and the library writes planes.
		if img.Pix8 != nil {
			img.Pix8 = interleave(img.Pix8, h.Components)
		} else {
			img.Pix16 = interleave(img.Pix16, h.Components)
		}
	}
	return img, nil
}

// endWithEOI returns src ending with an EOI marker, as every whole codestream does (less its
// fragment padding): CharLS 2.4 takes seconds over a scan that runs into the end of its buffer,
// and none over one that runs into a marker.
func endWithEOI(src []byte) []byte {
	if bytes.HasSuffix(bytes.TrimRight(src, "\x00"), []byte{0xFF, 0xD9}) {
		return src
	}
	out := make([]byte, len(src), len(src)+2)
	copy(out, src)
	return append(out, 0xFF, 0xD9)
}

func interleave[T any](planar []T, comps int) []T {
	out := make([]T, len(planar))
	px := len(planar) / comps
	for c := range comps {
		for i, v := range planar[c*px : (c+1)*px] {
			out[i*comps+c] = v
		}
	}
	return out
}
