// Package jpeg decodes the JPEG (ITU-T T.81) processes that Go's image/jpeg does not: lossless
// (process 14, Huffman coding, every selection value, 2 to 16 bits, point transform) and
// sequential DCT at 12 bits (process 4, Huffman coding). DICOM carries them as JPEG Lossless
// (1.2.840.10008.1.2.4.57 and .70) and JPEG Extended (.51). It is pure Go, so a build without
// cgo decodes them too.
//
// Decode returns the samples as the codestream holds them: no colour conversion (a YCbCr
// frame stays YCbCr), subsampled DCT components replicated to full size, lossless values
// shifted back by the point transform.
package jpeg

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Process is the coding process a frame header (SOFn marker) declares.
type Process int

// The processes of T.81 Table B.1 that Header reports. Decode handles Extended at 12 bits (and
// 8, though image/jpeg is the usual decoder there) and Lossless.
const (
	Baseline    Process = iota // SOF0
	Extended                   // SOF1
	Progressive                // SOF2
	Lossless                   // SOF3
)

func (p Process) String() string {
	switch p {
	case Baseline:
		return "baseline DCT"
	case Extended:
		return "extended sequential DCT"
	case Progressive:
		return "progressive DCT"
	case Lossless:
		return "lossless"
	}
	return fmt.Sprintf("process %d", int(p))
}

// ErrUnsupported is wrapped by the error for a valid codestream this package does not decode
// (arithmetic coding, hierarchical or progressive frames, some sampling layouts).
var ErrUnsupported = errors.New("unsupported JPEG")

// ErrMalformed is wrapped by the error for a codestream that breaks T.81 or ends too soon.
var ErrMalformed = errors.New("malformed JPEG")

// Component is one image component of a frame header.
type Component struct {
	ID   byte
	H, V int // sampling factors, 1 to 4
	Tq   int // quantisation table (DCT only)
}

// Header is the frame header of a codestream, with what the markers before it say.
type Header struct {
	Process       Process
	Precision     int // bits per sample, P
	Width, Height int
	Components    []Component
	// AdobeTransform is the transform flag of an Adobe APP14 segment (0: none, 1: YCbCr,
	// 2: YCCK), -1 without one; JFIF is whether an APP0 JFIF segment came first.
	AdobeTransform int
	JFIF           bool
}

// Samples is the number of samples of the decoded image.
func (h *Header) Samples() int { return h.Width * h.Height * len(h.Components) }

// Image is a decoded frame: Width x Height pixels of Components samples each, interleaved, row
// after row, each sample right-aligned in a uint16 (Precision bits).
type Image struct {
	Width, Height, Components int
	Precision                 int
	Pix                       []uint16
}

// Marker codes (T.81 Table B.1).
const (
	mSOF0 = 0xC0
	mSOF1 = 0xC1
	mSOF2 = 0xC2
	mSOF3 = 0xC3
	mDHT  = 0xC4
	mDAC  = 0xCC
	mRST0 = 0xD0
	mRST7 = 0xD7
	mSOI  = 0xD8
	mEOI  = 0xD9
	mSOS  = 0xDA
	mDQT  = 0xDB
	mDNL  = 0xDC
	mDRI  = 0xDD
	mAPP0 = 0xE0
	mAPPE = 0xEE
	mCOM  = 0xFE
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// segments walks the marker segments of a codestream up to and including the first frame
// header; it is shared by ReadHeader and Decode.
type parser struct {
	src []byte
	pos int
	hdr Header
	sof bool
}

// next returns the next marker and the body of its segment (nil for markers without one),
// skipping fill bytes (0xFF runs, B.1.1.2).
func (p *parser) next() (byte, []byte, error) {
	if p.pos >= len(p.src) || p.src[p.pos] != 0xFF {
		return 0, nil, malformed("no marker at byte %d", p.pos)
	}
	for p.pos < len(p.src) && p.src[p.pos] == 0xFF {
		p.pos++
	}
	if p.pos >= len(p.src) {
		return 0, nil, malformed("codestream ends in fill bytes")
	}
	m := p.src[p.pos]
	p.pos++
	if m == mSOI || m == mEOI || (m >= mRST0 && m <= mRST7) || m == 0x01 {
		return m, nil, nil
	}
	if p.pos+2 > len(p.src) {
		return 0, nil, malformed("marker 0x%02X at byte %d has no length", m, p.pos-2)
	}
	n := int(binary.BigEndian.Uint16(p.src[p.pos:]))
	if n < 2 || p.pos+n > len(p.src) {
		return 0, nil, malformed("marker 0x%02X segment of %d bytes at byte %d passes the end (%d)", m, n, p.pos-2, len(p.src))
	}
	body := p.src[p.pos+2 : p.pos+n]
	p.pos += n
	return m, body, nil
}

func (p *parser) start() error {
	if len(p.src) < 2 || p.src[0] != 0xFF || p.src[1] != mSOI {
		return malformed("no SOI marker at the start")
	}
	p.pos = 2
	p.hdr.AdobeTransform = -1
	return nil
}

func (p *parser) frameHeader(m byte, b []byte) error {
	if p.sof {
		return fmt.Errorf("%w: a second frame header (hierarchical or multi-frame codestream)", ErrUnsupported)
	}
	switch m {
	case mSOF0, mSOF1, mSOF2, mSOF3:
		p.hdr.Process = Process(m - mSOF0)
	case 0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF:
		return fmt.Errorf("%w: hierarchical (differential) frame, marker 0x%02X", ErrUnsupported, m)
	default:
		return fmt.Errorf("%w: arithmetic coding, marker 0x%02X", ErrUnsupported, m)
	}
	if len(b) < 6 {
		return malformed("frame header of %d bytes", len(b))
	}
	h := &p.hdr
	h.Precision = int(b[0])
	h.Height = int(binary.BigEndian.Uint16(b[1:]))
	h.Width = int(binary.BigEndian.Uint16(b[3:]))
	nf := int(b[5])
	if len(b) != 6+3*nf {
		return malformed("frame header of %d bytes for %d components", len(b), nf)
	}
	switch {
	case nf < 1 || nf > 4:
		return malformed("frame has %d components", nf)
	case h.Width == 0:
		return malformed("frame has no width")
	case h.Height == 0:
		return fmt.Errorf("%w: frame height given by a DNL marker", ErrUnsupported)
	case h.Process == Lossless && (h.Precision < 2 || h.Precision > 16):
		return malformed("lossless frame of %d bits", h.Precision)
	case h.Process == Baseline && h.Precision != 8:
		return malformed("baseline frame of %d bits", h.Precision)
	case h.Process != Lossless && h.Precision != 8 && h.Precision != 12:
		return malformed("DCT frame of %d bits", h.Precision)
	}
	h.Components = make([]Component, nf)
	for i := range nf {
		c := b[6+3*i:]
		h.Components[i] = Component{ID: c[0], H: int(c[1] >> 4), V: int(c[1] & 15), Tq: int(c[2])}
		if cc := h.Components[i]; cc.H < 1 || cc.H > 4 || cc.V < 1 || cc.V > 4 || cc.Tq > 3 {
			return malformed("component %d has sampling %dx%d, table %d", i, cc.H, cc.V, cc.Tq)
		}
		for j := range i {
			if h.Components[j].ID == c[0] {
				return malformed("component identifier %d given twice", c[0])
			}
		}
	}
	p.sof = true
	return nil
}

func (p *parser) app(m byte, b []byte) {
	switch {
	case m == mAPP0 && len(b) >= 5 && string(b[:5]) == "JFIF\x00" && !p.sof:
		p.hdr.JFIF = true
	case m == mAPPE && len(b) >= 12 && string(b[:5]) == "Adobe":
		p.hdr.AdobeTransform = int(b[11])
	}
}

// ReadHeader reads the markers up to the frame header and returns it; nothing is decoded.
func ReadHeader(src []byte) (*Header, error) {
	p := &parser{src: src}
	if err := p.start(); err != nil {
		return nil, err
	}
	for !p.sof {
		m, b, err := p.next()
		if err != nil {
			return nil, err
		}
		switch {
		case m >= mSOF0 && m <= 0xCF && m != mDHT && m != mDAC && m != 0xC8:
			if err := p.frameHeader(m, b); err != nil {
				return nil, err
			}
		case m >= mAPP0 && m <= 0xEF:
			p.app(m, b)
		case m == mSOS || m == mEOI:
			return nil, malformed("marker 0x%02X before the frame header", m)
		}
	}
	h := p.hdr
	return &h, nil
}

// Decode decodes the one frame of a codestream. accept is called with the frame header before
// anything is allocated for the image; its error stops decoding (a caller checks the header
// against what the data set declares, and so bounds the allocation). Data after the EOI marker
// (fragment padding) is ignored.
func Decode(src []byte, accept func(*Header) error) (*Image, error) {
	d := &decoder{parser: parser{src: src}}
	if err := d.start(); err != nil {
		return nil, err
	}
	for {
		m, b, err := d.next()
		if err != nil {
			return nil, err
		}
		switch {
		case m == mEOI:
			return d.finish()
		case m == mDHT:
			if err := d.defineHuffman(b); err != nil {
				return nil, err
			}
		case m == mDQT:
			if err := d.defineQuant(b); err != nil {
				return nil, err
			}
		case m == mDRI:
			if len(b) != 2 {
				return nil, malformed("DRI segment of %d bytes", len(b))
			}
			d.restart = int(binary.BigEndian.Uint16(b))
		case m == mDAC:
			return nil, fmt.Errorf("%w: arithmetic coding conditioning (DAC)", ErrUnsupported)
		case m == mDNL:
			return nil, fmt.Errorf("%w: DNL marker", ErrUnsupported)
		case m >= mSOF0 && m <= 0xCF && m != 0xC8:
			if err := d.frameHeader(m, b); err != nil {
				return nil, err
			}
			if err := d.allocate(accept); err != nil {
				return nil, err
			}
		case m == mSOS:
			if !d.sof {
				return nil, malformed("scan before the frame header")
			}
			if err := d.scan(b); err != nil {
				return nil, err
			}
			if d.pos >= len(d.src) {
				// Some writers end the last scan without EOI; finish checks that every
				// component was decoded.
				return d.finish()
			}
		case m >= mAPP0 && m <= 0xEF:
			d.app(m, b)
		}
		// COM, JPGn, RSTn between segments and reserved markers carry nothing for decoding.
	}
}
