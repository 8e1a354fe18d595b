package dicomseg

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// A reader for the little endian transfer syntaxes, enough to decode SEGs: suyashkumar/dicom
// reads 1-bit pixel data most significant bit first, which is wrong for DICOM, and cannot be
// trusted with frames that do not end on a byte boundary.

const (
	implicitVRLittleEndian  = "1.2.840.10008.1.2"
	deflatedExplicitVRLE    = "1.2.840.10008.1.2.1.99"
	maxDepth                = 16
	maxInflated             = 256 << 20 // bounds what a deflate bomb can cost
	tagItem                 = 0xFFFEE000
	tagItemDelimitation     = 0xFFFEE00D
	tagSequenceDelimitation = 0xFFFEE0DD
	tagPixelData            = 0x7FE00010
)

// ErrNotDICOM is returned for input without the Part 10 preamble and prefix.
var ErrNotDICOM = errors.New("not a DICOM Part 10 file")

// rawElement is a parsed data element: items for sequences, value bytes otherwise.
type rawElement struct {
	tag   uint32
	vr    string
	value []byte
	items [][]rawElement
}

// isSequence says which tags the decoder reads as sequences: implicit VR data sets carry no
// VR, and a sequence with a defined length is otherwise indistinguishable from bytes.
func isSequence(tag uint32) bool {
	switch tag {
	case 0x00081115, // Referenced Series
		0x0008114A, // Referenced Instance
		0x00082112, // Source Image
		0x00089124, // Derivation Image
		0x00089215, // Derivation Code
		0x00209111, // Frame Content
		0x00209113, // Plane Position
		0x00209116, // Plane Orientation
		0x00209221, // Dimension Organization
		0x00209222, // Dimension Index
		0x00289110, // Pixel Measures
		0x0040A170, // Purpose of Reference Code
		0x0048021A, // Plane Position (Slide)
		0x00620002, // Segment
		0x00620003, // Segmented Property Category Code
		0x00620007, // Segmentation Algorithm Identification
		0x0062000A, // Segment Identification
		0x0062000F, // Segmented Property Type Code
		0x52009229, // Shared Functional Groups
		0x52009230: // Per-frame Functional Groups
		return true
	}
	return false
}

// parseFile reads a Part 10 file and returns its data set (file meta information excluded).
func parseFile(data []byte) ([]rawElement, error) {
	if len(data) < 132 || string(data[128:132]) != "DICM" {
		return nil, ErrNotDICOM
	}
	p := &parser{buf: data[132:], explicit: true}
	var meta []rawElement
	for len(p.buf) >= 4 && binary.LittleEndian.Uint16(p.buf) == 0x0002 {
		e, err := p.element(0)
		if err != nil {
			return nil, fmt.Errorf("file meta information: %w", err)
		}
		meta = append(meta, e)
	}
	ts := text(meta, 0x00020010)
	rest := p.buf
	switch ts {
	case explicitVRLittleEndian:
	case implicitVRLittleEndian:
		p.explicit = false
	case deflatedExplicitVRLE:
		inflated, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(rest)), maxInflated+1))
		if err != nil {
			return nil, fmt.Errorf("inflate data set: %w", err)
		}
		if len(inflated) > maxInflated {
			return nil, fmt.Errorf("data set inflates to more than %d bytes", maxInflated)
		}
		rest = inflated
	default:
		return nil, fmt.Errorf("transfer syntax %q is not supported", ts)
	}
	p.buf = rest
	ds, err := p.dataset(0, false)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

type parser struct {
	buf      []byte
	explicit bool
}

// dataset reads elements until the buffer ends or, within an undefined-length item, until the
// item delimitation.
func (p *parser) dataset(depth int, untilDelimiter bool) ([]rawElement, error) {
	var out []rawElement
	for len(p.buf) > 0 {
		if untilDelimiter && len(p.buf) >= 8 && p.tag() == tagItemDelimitation {
			p.buf = p.buf[8:]
			return out, nil
		}
		e, err := p.element(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if untilDelimiter {
		return nil, errors.New("item delimitation missing")
	}
	return out, nil
}

func (p *parser) tag() uint32 {
	return uint32(binary.LittleEndian.Uint16(p.buf))<<16 | uint32(binary.LittleEndian.Uint16(p.buf[2:]))
}

const undefinedLength = 0xFFFFFFFF

func (p *parser) element(depth int) (rawElement, error) {
	if len(p.buf) < 8 {
		return rawElement{}, io.ErrUnexpectedEOF
	}
	e := rawElement{tag: p.tag()}
	var length uint32
	if p.explicit {
		e.vr = string(p.buf[4:6])
		if longVR(e.vr) {
			if len(p.buf) < 12 {
				return rawElement{}, io.ErrUnexpectedEOF
			}
			length = binary.LittleEndian.Uint32(p.buf[8:])
			p.buf = p.buf[12:]
		} else {
			length = uint32(binary.LittleEndian.Uint16(p.buf[6:]))
			p.buf = p.buf[8:]
		}
	} else {
		length = binary.LittleEndian.Uint32(p.buf[4:])
		p.buf = p.buf[8:]
		if isSequence(e.tag) || (length == undefinedLength && e.tag != tagPixelData) {
			e.vr = "SQ"
		}
	}
	where := func(err error) error {
		return fmt.Errorf("element (%04X,%04X): %w", e.tag>>16, e.tag&0xffff, err)
	}
	if e.vr == "SQ" || (e.vr == "UN" && length == undefinedLength) {
		if depth >= maxDepth {
			return rawElement{}, where(errors.New("sequences nested too deep"))
		}
		items, err := p.sequence(length, depth+1, e.vr == "UN")
		if err != nil {
			return rawElement{}, where(err)
		}
		e.vr, e.items = "SQ", items
		return e, nil
	}
	if length == undefinedLength {
		return rawElement{}, where(errors.New("undefined length (encapsulated pixel data is not supported)"))
	}
	if uint64(length) > uint64(len(p.buf)) {
		return rawElement{}, where(fmt.Errorf("length %d runs past the end of the data", length))
	}
	e.value, p.buf = p.buf[:length], p.buf[length:]
	return e, nil
}

// sequence reads the items of a sequence. An undefined-length UN element holds an implicit VR
// sequence (PS3.5 6.2.2).
func (p *parser) sequence(length uint32, depth int, implicit bool) ([][]rawElement, error) {
	body := p.buf
	if length != undefinedLength {
		if uint64(length) > uint64(len(p.buf)) {
			return nil, fmt.Errorf("length %d runs past the end of the data", length)
		}
		body, p.buf = p.buf[:length], p.buf[length:]
	}
	sub := &parser{buf: body, explicit: p.explicit && !implicit}
	var items [][]rawElement
	for {
		if len(sub.buf) == 0 {
			if length == undefinedLength {
				return nil, errors.New("sequence delimitation missing")
			}
			return items, nil
		}
		if len(sub.buf) < 8 {
			return nil, io.ErrUnexpectedEOF
		}
		t, itemLength := sub.tag(), binary.LittleEndian.Uint32(sub.buf[4:])
		sub.buf = sub.buf[8:]
		switch t {
		case tagSequenceDelimitation:
			if length == undefinedLength {
				p.buf = sub.buf
			}
			return items, nil
		case tagItem:
		default:
			return nil, fmt.Errorf("found (%04X,%04X) where an item belongs", t>>16, t&0xffff)
		}
		var item []rawElement
		var err error
		if itemLength == undefinedLength {
			item, err = sub.dataset(depth, true)
		} else {
			if uint64(itemLength) > uint64(len(sub.buf)) {
				return nil, fmt.Errorf("item length %d runs past the end of the data", itemLength)
			}
			itemParser := &parser{buf: sub.buf[:itemLength], explicit: sub.explicit}
			sub.buf = sub.buf[itemLength:]
			item, err = itemParser.dataset(depth, false)
		}
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", len(items)+1, err)
		}
		items = append(items, item)
	}
}

func find(ds []rawElement, tag uint32) *rawElement {
	for i := range ds {
		if ds[i].tag == tag {
			return &ds[i]
		}
	}
	return nil
}

// text returns a string value without its padding; "" when absent.
func text(ds []rawElement, tag uint32) string {
	e := find(ds, tag)
	if e == nil {
		return ""
	}
	return strings.TrimRight(string(e.value), " \x00")
}

// us returns the values of a US element; callers know the VR, which implicit VR does not say.
func us(ds []rawElement, tag uint32) []int {
	var out []int
	if e := find(ds, tag); e != nil {
		for b := e.value; len(b) >= 2; b = b[2:] {
			out = append(out, int(binary.LittleEndian.Uint16(b)))
		}
	}
	return out
}

// ul returns the values of a UL element.
func ul(ds []rawElement, tag uint32) []int {
	var out []int
	if e := find(ds, tag); e != nil {
		for b := e.value; len(b) >= 4; b = b[4:] {
			out = append(out, int(binary.LittleEndian.Uint32(b)))
		}
	}
	return out
}

// integers returns the values of an IS element; nil when absent or malformed.
func integers(ds []rawElement, tag uint32) []int {
	s := text(ds, tag)
	if s == "" {
		return nil
	}
	var out []int
	for _, part := range strings.Split(s, `\`) {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// floats returns the values of a DS element.
func floats(ds []rawElement, tag uint32) []float64 {
	s := text(ds, tag)
	if s == "" {
		return nil
	}
	var out []float64
	for _, part := range strings.Split(s, `\`) {
		f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil {
			return nil
		}
		out = append(out, f)
	}
	return out
}

// first returns the first item of a sequence, or nil.
func first(ds []rawElement, tag uint32) []rawElement {
	if e := find(ds, tag); e != nil && len(e.items) > 0 {
		return e.items[0]
	}
	return nil
}
