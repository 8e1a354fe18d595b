//go:build cgo && !nocodecs

package openjpeg

/*
#cgo pkg-config: libopenjp2
#include <stdlib.h>
#include <string.h>
#include <openjpeg.h>

typedef struct {
	const unsigned char *data;
	OPJ_SIZE_T size, pos;
	opj_codec_t *codec;
	opj_stream_t *stream;
	opj_image_t *image;
	char err[512];
	int mct, ht;
} j2k;

static OPJ_SIZE_T j2k_read(void *dst, OPJ_SIZE_T n, void *user) {
	j2k *j = user;
	if (j->pos >= j->size) return (OPJ_SIZE_T)-1;
	OPJ_SIZE_T k = j->size - j->pos;
	if (k > n) k = n;
	memcpy(dst, j->data + j->pos, k);
	j->pos += k;
	return k;
}

static OPJ_OFF_T j2k_skip(OPJ_OFF_T n, void *user) {
	j2k *j = user;
	if (n < 0) {
		if ((OPJ_SIZE_T)(-n) > j->pos) n = -(OPJ_OFF_T)j->pos;
	} else if ((OPJ_SIZE_T)n > j->size - j->pos) {
		n = (OPJ_OFF_T)(j->size - j->pos);
	}
	j->pos += n;
	return n;
}

static OPJ_BOOL j2k_seek(OPJ_OFF_T n, void *user) {
	j2k *j = user;
	if (n < 0 || (OPJ_SIZE_T)n > j->size) return OPJ_FALSE;
	j->pos = (OPJ_SIZE_T)n;
	return OPJ_TRUE;
}

static void j2k_error(const char *msg, void *user) {
	j2k *j = user;
	if (j->err[0] == 0) {
		strncpy(j->err, msg, sizeof j->err - 1);
		size_t n = strlen(j->err);
		while (n > 0 && (j->err[n-1] == '\n' || j->err[n-1] == ' ')) j->err[--n] = 0;
	}
}

static void j2k_quiet(const char *msg, void *user) { (void)msg; (void)user; }

static void j2k_close(j2k *j) {
	if (j->image) opj_image_destroy(j->image);
	if (j->stream) opj_stream_destroy(j->stream);
	if (j->codec) opj_destroy_codec(j->codec);
	free(j);
}

// j2k_open reads the main header of the codestream (jp2: a JP2 file) at data.
static j2k *j2k_open(const unsigned char *data, size_t size, int jp2) {
	j2k *j = calloc(1, sizeof *j);
	if (!j) return NULL;
	j->data = data;
	j->size = size;
	j->codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
	j->stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
	if (!j->codec || !j->stream) {
		strcpy(j->err, "cannot create a decoder");
		return j;
	}
	opj_set_error_handler(j->codec, j2k_error, j);
	opj_set_warning_handler(j->codec, j2k_quiet, j);
	opj_set_info_handler(j->codec, j2k_quiet, j);
	opj_stream_set_user_data(j->stream, j, NULL);
	opj_stream_set_user_data_length(j->stream, size);
	opj_stream_set_read_function(j->stream, j2k_read);
	opj_stream_set_skip_function(j->stream, j2k_skip);
	opj_stream_set_seek_function(j->stream, j2k_seek);
	opj_dparameters_t p;
	opj_set_default_decoder_parameters(&p);
	if (!opj_setup_decoder(j->codec, &p) || !opj_decoder_set_strict_mode(j->codec, OPJ_TRUE) ||
	    !opj_read_header(j->stream, j->codec, &j->image) || !j->image) {
		if (j->err[0] == 0) strcpy(j->err, "cannot read the main header");
		return j;
	}
	opj_codestream_info_v2_t *ci = opj_get_cstr_info(j->codec);
	if (ci) {
		j->mct = ci->m_default_tile_info.mct != 0;
		// Part 15 code-blocks are flagged in bit 6 of the code-block style (Table A.19).
		j->ht = ci->m_default_tile_info.tccp_info && (ci->m_default_tile_info.tccp_info[0].cblksty & 0x40);
		opj_destroy_cstr_info(&ci);
	}
	return j;
}

static int j2k_decode(j2k *j) {
	if (!opj_decode(j->codec, j->stream, j->image) || !opj_end_decompress(j->codec, j->stream)) {
		if (j->err[0] == 0) strcpy(j->err, "decoding failed");
		return 0;
	}
	return 1;
}

static opj_image_comp_t *j2k_comp(j2k *j, int i) { return &j->image->comps[i]; }
*/
import "C"

import (
	"bytes"
	"fmt"
	"runtime"
	"unsafe"
)

// Available reports whether this build decodes JPEG 2000.
func Available() bool { return true }

// Version is the OpenJPEG library's version.
func Version() string { return C.GoString(C.opj_version()) }

var jp2Signature = []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}

// Decode decodes one JPEG 2000 frame. accept sees the header before the decoder allocates the
// image; its error stops decoding. The library reads src through callbacks that never pass its
// end, and each component's size is checked against the header before its samples are read.
func Decode(src []byte, accept func(*Header) error) (*Image, error) {
	jp2 := bytes.HasPrefix(src, jp2Signature)
	if !jp2 && !bytes.HasPrefix(src, []byte{0xFF, 0x4F, 0xFF, 0x51}) {
		return nil, fmt.Errorf("%w: neither a codestream (SOC, SIZ) nor a JP2 file", ErrDecode)
	}
	// The decoder keeps a pointer to src between the calls below; pinned, cgo allows that.
	var pin runtime.Pinner
	pin.Pin(&src[0])
	defer pin.Unpin()
	j := C.j2k_open((*C.uchar)(unsafe.Pointer(&src[0])), C.size_t(len(src)), boolInt(jp2))
	if j == nil {
		return nil, fmt.Errorf("%w: out of memory", ErrDecode)
	}
	defer C.j2k_close(j)
	if j.image == nil {
		return nil, fmt.Errorf("%w: %s", ErrDecode, C.GoString(&j.err[0]))
	}
	im := j.image
	h := &Header{Width: int(im.x1) - int(im.x0), Height: int(im.y1) - int(im.y0), Components: int(im.numcomps),
		MCT: j.mct != 0, HighThroughput: j.ht != 0}
	if h.Components < 1 || h.Components > 4 || h.Width < 1 || h.Height < 1 {
		return nil, fmt.Errorf("%w: image of %dx%d pixels, %d components", ErrDecode, h.Width, h.Height, h.Components)
	}
	for i := range h.Components {
		c := C.j2k_comp(j, C.int(i))
		h.Precision = max(h.Precision, int(c.prec))
		h.Signed = h.Signed || c.sgnd != 0
		h.Subsampled = h.Subsampled || c.dx != 1 || c.dy != 1
	}
	switch {
	case h.Subsampled:
		return nil, fmt.Errorf("%w: subsampled components", ErrUnsupported)
	case h.Precision < 1 || h.Precision > 16:
		return nil, fmt.Errorf("%w: %d-bit components", ErrUnsupported, h.Precision)
	}
	if accept != nil {
		hc := *h
		if err := accept(&hc); err != nil {
			return nil, err
		}
	}
	if C.j2k_decode(j) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrDecode, C.GoString(&j.err[0]))
	}
	n := h.Components
	img := &Image{Width: h.Width, Height: h.Height, Components: n, Precision: h.Precision, Signed: h.Signed, MCT: h.MCT,
		Pix: make([]uint16, h.Width*h.Height*n)}
	px := h.Width * h.Height
	for i := range n {
		c := C.j2k_comp(j, C.int(i))
		if int(c.w) != h.Width || int(c.h) != h.Height || c.data == nil {
			return nil, fmt.Errorf("%w: component %d decoded to %dx%d, the header says %dx%d", ErrDecode, i, c.w, c.h, h.Width, h.Height)
		}
		data := unsafe.Slice((*int32)(unsafe.Pointer(c.data)), px)
		for k, v := range data {
			img.Pix[k*n+i] = uint16(v)
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
