//go:build cgo && !nocodecs

package turbojpeg

/*
#cgo pkg-config: libjpeg
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

#define TJ_STR(x) #x
#define TJ_XSTR(x) TJ_STR(x)
static const char *tj_version(void) { return TJ_XSTR(LIBJPEG_TURBO_VERSION); }

// The library reports a fatal error by calling error_exit, which must not return. Go code must
// never be unwound by longjmp, so each entry point below sets its own jump target and returns
// an error code to Go; libjpeg calls no Go code.
typedef struct {
	struct jpeg_decompress_struct d;
	struct jpeg_error_mgr err;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
	int created;
} tj_dec;

static void tj_error_exit(j_common_ptr c) {
	tj_dec *t = (tj_dec *)c->client_data;
	(*c->err->format_message)(c, t->msg);
	longjmp(t->jump, 1);
}

// Warnings that mean the pixel data is damaged: libjpeg would go on and fill the rest of the
// image with grey, which loses the fact that it is wrong, so they stop decoding as errors do.
// A missing EOI after whole scan data (JWRN_JPEG_EOF alone) is only warned about.
static void tj_emit_message(j_common_ptr c, int level) {
	if (level >= 0) return;
	switch (c->err->msg_code) {
	case JWRN_HIT_MARKER: case JWRN_HUFF_BAD_CODE: case JWRN_ARITH_BAD_CODE:
	case JWRN_MUST_RESYNC: case JWRN_NOT_SEQUENTIAL: case JWRN_BOGUS_PROGRESSION:
		tj_error_exit(c);
	case JWRN_JPEG_EOF:
		if (((j_decompress_ptr)c)->progressive_mode) tj_error_exit(c);
	}
	c->err->num_warnings++;
}

static tj_dec *tj_new(void) {
	tj_dec *t = calloc(1, sizeof(tj_dec));
	if (!t) return NULL;
	t->d.err = jpeg_std_error(&t->err);
	t->err.error_exit = tj_error_exit;
	t->err.emit_message = tj_emit_message;
	t->d.client_data = t;
	if (setjmp(t->jump)) { free(t); return NULL; }
	jpeg_create_decompress(&t->d);
	t->created = 1;
	return t;
}

static void tj_free(tj_dec *t) {
	if (t->created) jpeg_destroy_decompress(&t->d);
	free(t);
}

// tj_header reads the headers up to the first scan; src must stay valid until tj_free.
static int tj_header(tj_dec *t, const unsigned char *src, unsigned long n, int *w, int *h,
                     int *comps, int *precision, int *progressive) {
	if (setjmp(t->jump)) return 1;
	jpeg_mem_src(&t->d, src, n);
	if (jpeg_read_header(&t->d, TRUE) != JPEG_HEADER_OK) {
		strcpy(t->msg, "no image in the codestream");
		return 1;
	}
	*w = t->d.image_width;
	*h = t->d.image_height;
	*comps = t->d.num_components;
	*precision = t->d.data_precision;
	*progressive = t->d.progressive_mode;
	return 0;
}

// tj_decode decodes the image into dst, which holds exactly w*h*comps samples.
static int tj_decode(tj_dec *t, unsigned char *dst, size_t n) {
	if (setjmp(t->jump)) return 1;
	t->d.out_color_space = t->d.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
	t->d.dct_method = JDCT_ISLOW;
	t->d.do_fancy_upsampling = TRUE;
	jpeg_start_decompress(&t->d);
	size_t stride = (size_t)t->d.output_width * t->d.output_components;
	if (stride * t->d.output_height != n) {
		strcpy(t->msg, "the library's output size disagrees with the header");
		return 1;
	}
	while (t->d.output_scanline < t->d.output_height) {
		JSAMPROW rows[16];
		JDIMENSION k, m = t->d.output_height - t->d.output_scanline;
		if (m > 16) m = 16;
		for (k = 0; k < m; k++) rows[k] = dst + (size_t)(t->d.output_scanline + k) * stride;
		jpeg_read_scanlines(&t->d, rows, m);
	}
	// The rest of the stream (markers up to EOI) holds no pixels: not read, as with padding
	// after EOI.
	jpeg_abort_decompress(&t->d);
	return 0;
}

// tj_decode_i32 decodes the image into dst as int32 samples, rows stride samples apart (at
// least w*comps; n samples in all), through a buffer of 16 rows the library's pool owns.
static int tj_decode_i32(tj_dec *t, int32_t *dst, size_t stride, size_t n) {
	if (setjmp(t->jump)) return 1;
	t->d.out_color_space = t->d.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
	t->d.dct_method = JDCT_ISLOW;
	t->d.do_fancy_upsampling = TRUE;
	jpeg_start_decompress(&t->d);
	size_t row = (size_t)t->d.output_width * t->d.output_components;
	if (t->d.output_height == 0 || row > stride || (size_t)(t->d.output_height - 1) * stride + row > n) {
		strcpy(t->msg, "the library's output size disagrees with the header");
		return 1;
	}
	JSAMPARRAY buf = (*t->d.mem->alloc_sarray)((j_common_ptr)&t->d, JPOOL_IMAGE, (JDIMENSION)row, 16);
	while (t->d.output_scanline < t->d.output_height) {
		JDIMENSION y0 = t->d.output_scanline;
		JDIMENSION got = jpeg_read_scanlines(&t->d, buf, 16);
		for (JDIMENSION k = 0; k < got; k++) {
			const JSAMPLE *in = buf[k];
			int32_t *out = dst + (size_t)(y0 + k) * stride;
			for (size_t x = 0; x < row; x++) out[x] = in[x];
		}
	}
	jpeg_abort_decompress(&t->d);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Available reports whether this build decodes with libjpeg-turbo.
func Available() bool { return true }

// Version is the libjpeg-turbo version this build was compiled against.
func Version() string { return C.GoString(C.tj_version()) }

// header reads src's headers into a new decoder and checks them; done frees the decoder and
// unpins src, which the decoder points into until then.
func header(src []byte) (*C.tj_dec, *Header, func(), error) {
	if len(src) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: empty codestream", ErrDecode)
	}
	t := C.tj_new()
	if t == nil {
		return nil, nil, nil, fmt.Errorf("%w: cannot create a decoder", ErrDecode)
	}
	// The library keeps a pointer to src between calls, until tj_free; cgo's rules allow that
	// only while the memory is pinned.
	var pin runtime.Pinner
	pin.Pin(&src[0])
	done := func() {
		C.tj_free(t)
		pin.Unpin()
	}
	var w, h, comps, precision, progressive C.int
	if C.tj_header(t, (*C.uchar)(unsafe.Pointer(&src[0])), C.ulong(len(src)), &w, &h, &comps, &precision, &progressive) != 0 {
		err := fmt.Errorf("%w: %s", ErrDecode, C.GoString(&t.msg[0]))
		done()
		return nil, nil, nil, err
	}
	hd := &Header{Width: int(w), Height: int(h), Components: int(comps), Progressive: progressive != 0}
	var err error
	switch {
	case precision != 8:
		err = fmt.Errorf("%w: %d-bit samples", ErrUnsupported, int(precision))
	case hd.Components != 1 && hd.Components != 3:
		err = fmt.Errorf("%w: %d components", ErrUnsupported, hd.Components)
	case hd.Width < 1 || hd.Height < 1:
		err = fmt.Errorf("%w: frame of %dx%d pixels", ErrDecode, hd.Width, hd.Height)
	}
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return t, hd, done, nil
}

// DecodeInto decodes one 8-bit DCT JPEG frame into int32 samples, with no byte image between:
// dst sees the header and gives the destination, rows stride samples apart (stride at least
// Width*Components; the slice at least (Height-1)*stride + Width*Components long), or an
// error that stops decoding. It returns the header.
func DecodeInto(src []byte, dst func(*Header) ([]int32, int, error)) (*Header, error) {
	t, hd, done, err := header(src)
	if err != nil {
		return nil, err
	}
	defer done()
	hc := *hd
	out, stride, err := dst(&hc)
	if err != nil {
		return nil, err
	}
	row := hd.Width * hd.Components
	if stride < row || len(out) < (hd.Height-1)*stride+row {
		return nil, fmt.Errorf("%w: a destination of %d samples, rows %d apart, for %dx%dx%d", ErrDecode, len(out), stride, hd.Width, hd.Height, hd.Components)
	}
	if C.tj_decode_i32(t, (*C.int32_t)(unsafe.Pointer(&out[0])), C.size_t(stride), C.size_t(len(out))) != 0 {
		return nil, fmt.Errorf("%w: %s", ErrDecode, C.GoString(&t.msg[0]))
	}
	return hd, nil
}

// Decode decodes one 8-bit DCT JPEG frame. accept sees the header before the image is
// allocated; its error stops decoding. The library reads only src and writes only the buffer
// allocated for the size the header gives, which it is checked against.
func Decode(src []byte, accept func(*Header) error) (*Image, error) {
	t, hd, done, err := header(src)
	if err != nil {
		return nil, err
	}
	defer done()
	if accept != nil {
		hc := *hd
		if err := accept(&hc); err != nil {
			return nil, err
		}
	}
	img := &Image{Width: hd.Width, Height: hd.Height, Components: hd.Components}
	img.Pix = make([]byte, hd.Width*hd.Height*hd.Components)
	if C.tj_decode(t, (*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.size_t(len(img.Pix))) != 0 {
		return nil, fmt.Errorf("%w: %s", ErrDecode, C.GoString(&t.msg[0]))
	}
	return img, nil
}
