//go:build cgo && !nocodecs

package jxl

/*
#cgo pkg-config: libjxl
#include <stdlib.h>
#include <string.h>
#include <jxl/decode.h>

typedef struct {
	JxlDecoder *dec;
	JxlBasicInfo info;
	unsigned char *jpeg;
	size_t jpeg_len, jpeg_cap, jpeg_max;
	int want_jpeg;
	const char *err;
} jxl;

enum { JXL_R_ERROR = -1, JXL_R_INFO = 1, JXL_R_NEED_PIXELS = 2, JXL_R_PIXELS = 3, JXL_R_JPEG = 4 };

static void jxl_close(jxl *j) {
	if (j->dec) JxlDecoderDestroy(j->dec);
	free(j->jpeg);
	free(j);
}

static jxl *jxl_open(const uint8_t *data, size_t size, int want_jpeg, size_t jpeg_max) {
	jxl *j = calloc(1, sizeof *j);
	if (!j) return NULL;
	j->want_jpeg = want_jpeg;
	j->jpeg_max = jpeg_max;
	j->dec = JxlDecoderCreate(NULL);
	if (!j->dec) { j->err = "cannot create a decoder"; return j; }
	int events = JXL_DEC_BASIC_INFO | JXL_DEC_FULL_IMAGE;
	if (want_jpeg) events |= JXL_DEC_JPEG_RECONSTRUCTION;
	if (JxlDecoderSubscribeEvents(j->dec, events) != JXL_DEC_SUCCESS ||
	    JxlDecoderSetKeepOrientation(j->dec, JXL_TRUE) != JXL_DEC_SUCCESS ||
	    JxlDecoderSetInput(j->dec, data, size) != JXL_DEC_SUCCESS) {
		j->err = "cannot set up the decoder";
		return j;
	}
	JxlDecoderCloseInput(j->dec);
	return j;
}

static int jxl_grow(jxl *j) {
	if (j->jpeg) {
		size_t left = JxlDecoderReleaseJPEGBuffer(j->dec);
		j->jpeg_len = j->jpeg_cap - left;
	}
	if (j->jpeg_cap >= j->jpeg_max) { j->err = "reconstructed JPEG larger than the frame allows"; return 0; }
	size_t cap = j->jpeg_cap ? 2 * j->jpeg_cap : 1 << 16;
	if (cap > j->jpeg_max) cap = j->jpeg_max;
	unsigned char *p = realloc(j->jpeg, cap);
	if (!p) { j->err = "out of memory"; return 0; }
	j->jpeg = p;
	j->jpeg_cap = cap;
	if (JxlDecoderSetJPEGBuffer(j->dec, j->jpeg + j->jpeg_len, cap - j->jpeg_len) != JXL_DEC_SUCCESS) {
		j->err = "cannot set the JPEG buffer";
		return 0;
	}
	return 1;
}

// jxl_run advances the decoder to the next point where Go has to act: the basic info is known,
// a pixel buffer is needed (out, size then name it), or the image is done.
static int jxl_run(jxl *j, void *out, size_t size, int bytes_per_sample) {
	if (out) {
		JxlDataType t = bytes_per_sample == 1 ? JXL_TYPE_UINT8 : bytes_per_sample == 2 ? JXL_TYPE_UINT16 : JXL_TYPE_FLOAT;
		JxlPixelFormat f = {j->info.num_color_channels, t, JXL_NATIVE_ENDIAN, 0};
		size_t need = 0;
		if (JxlDecoderImageOutBufferSize(j->dec, &f, &need) != JXL_DEC_SUCCESS || need != size) {
			j->err = "the library's image size disagrees with the header";
			return JXL_R_ERROR;
		}
		if (JxlDecoderSetImageOutBuffer(j->dec, &f, out, size) != JXL_DEC_SUCCESS) {
			j->err = "cannot set the image buffer";
			return JXL_R_ERROR;
		}
	}
	for (;;) {
		JxlDecoderStatus s = JxlDecoderProcessInput(j->dec);
		switch (s) {
		case JXL_DEC_BASIC_INFO:
			if (JxlDecoderGetBasicInfo(j->dec, &j->info) != JXL_DEC_SUCCESS) { j->err = "cannot read the basic info"; return JXL_R_ERROR; }
			return JXL_R_INFO;
		case JXL_DEC_JPEG_RECONSTRUCTION:
			if (!jxl_grow(j)) return JXL_R_ERROR;
			break;
		case JXL_DEC_JPEG_NEED_MORE_OUTPUT:
			if (!jxl_grow(j)) return JXL_R_ERROR;
			break;
		case JXL_DEC_NEED_IMAGE_OUT_BUFFER:
			return JXL_R_NEED_PIXELS;
		case JXL_DEC_FULL_IMAGE:
			if (j->jpeg) {
				size_t left = JxlDecoderReleaseJPEGBuffer(j->dec);
				j->jpeg_len = j->jpeg_cap - left;
				return JXL_R_JPEG;
			}
			return JXL_R_PIXELS;
		case JXL_DEC_NEED_MORE_INPUT:
			j->err = "truncated codestream";
			return JXL_R_ERROR;
		case JXL_DEC_SUCCESS:
			j->err = "codestream ended before a full image";
			return JXL_R_ERROR;
		default:
			j->err = "the codestream is invalid or unsupported";
			return JXL_R_ERROR;
		}
	}
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Available reports whether this build decodes JPEG XL.
func Available() bool { return true }

// Version is the libjxl library's version.
func Version() string {
	v := uint32(C.JxlDecoderVersion())
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

// Decode decodes one JPEG XL frame. With wantJPEG, a file that holds JPEG reconstruction data
// gives the JPEG (at most maxJPEG bytes) instead of samples. accept sees the header before any
// buffer is allocated; its error stops decoding.
func Decode(src []byte, wantJPEG bool, maxJPEG int, accept func(*Header) error) (*Image, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("%w: empty codestream", ErrDecode)
	}
	// The decoder keeps pointers to src and to the image buffer between calls; pinned, cgo
	// allows that.
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&src[0])
	j := C.jxl_open((*C.uint8_t)(unsafe.Pointer(&src[0])), C.size_t(len(src)), boolInt(wantJPEG), C.size_t(max(maxJPEG, 0)))
	if j == nil {
		return nil, fmt.Errorf("%w: out of memory", ErrDecode)
	}
	defer C.jxl_close(j)
	fail := func() error { return fmt.Errorf("%w: %s", ErrDecode, C.GoString(j.err)) }
	if j.err != nil {
		return nil, fail()
	}
	if C.jxl_run(j, nil, 0, 0) != C.JXL_R_INFO {
		return nil, fail()
	}
	bi := &j.info
	h := &Header{Width: int(bi.xsize), Height: int(bi.ysize), Components: int(bi.num_color_channels),
		BitsPerSample: int(bi.bits_per_sample), Float: bi.exponent_bits_per_sample != 0, Orientation: int(bi.orientation)}
	switch {
	case h.Float:
		return nil, fmt.Errorf("%w: floating-point samples", ErrUnsupported)
	case h.BitsPerSample < 1 || h.BitsPerSample > 16:
		return nil, fmt.Errorf("%w: %d bits per sample", ErrUnsupported, h.BitsPerSample)
	case h.Components != 1 && h.Components != 3:
		return nil, fmt.Errorf("%w: %d colour channels", ErrUnsupported, h.Components)
	case h.Width < 1 || h.Height < 1:
		return nil, fmt.Errorf("%w: image of %dx%d pixels", ErrDecode, h.Width, h.Height)
	}
	if accept != nil {
		hc := *h
		if err := accept(&hc); err != nil {
			return nil, err
		}
	}
	img := &Image{Width: h.Width, Height: h.Height, Components: h.Components, BitsPerSample: h.BitsPerSample}
	switch C.jxl_run(j, nil, 0, 0) {
	case C.JXL_R_JPEG:
		img.JPEG = C.GoBytes(unsafe.Pointer(j.jpeg), C.int(j.jpeg_len))
		return img, nil
	case C.JXL_R_NEED_PIXELS:
	default:
		return nil, fail()
	}
	n := h.Width * h.Height * h.Components
	b := h.BitsPerSample
	if b == 8 || b == 16 {
		var out unsafe.Pointer
		size, bytesPer := n, 1
		if b == 8 {
			img.Pix8 = make([]byte, n)
			out = unsafe.Pointer(&img.Pix8[0])
		} else {
			img.Pix16 = make([]uint16, n)
			out = unsafe.Pointer(&img.Pix16[0])
			size, bytesPer = 2*n, 2
		}
		pin.Pin(out)
		if C.jxl_run(j, out, C.size_t(size), C.int(bytesPer)) != C.JXL_R_PIXELS {
			return nil, fail()
		}
		return img, nil
	}
	// Other depths come as floats in 0..1: how libjxl scales its integer output for them has
	// changed between releases, a float's meaning has not.
	f := make([]float32, n)
	pin.Pin(&f[0])
	if C.jxl_run(j, unsafe.Pointer(&f[0]), C.size_t(4*n), 4) != C.JXL_R_PIXELS {
		return nil, fail()
	}
	maxv := float32(int(1)<<uint(b) - 1)
	if b < 8 {
		img.Pix8 = make([]byte, n)
		for i, v := range f {
			img.Pix8[i] = byte(min(max(v*maxv+0.5, 0), maxv))
		}
	} else {
		img.Pix16 = make([]uint16, n)
		for i, v := range f {
			img.Pix16[i] = uint16(min(max(v*maxv+0.5, 0), maxv))
		}
	}
	return img, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
