package pixel

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// maxInflated bounds what a deflated data set may inflate to, against compression bombs.
const maxInflated = 1 << 30

// maxDepth bounds sequence nesting.
const maxDepth = 64

// checkLengths walks a Part 10 stream's elements, nested sequences included, and rejects any
// value length larger than the bytes that remain. The parser allocates each value at its
// declared length before reading it, so without this a few hundred hostile bytes could make it
// allocate gigabytes.
func checkLengths(data []byte) error {
	pos := 0
	ts := ImplicitVRLittleEndian
	if len(data) >= 132 && string(data[128:132]) == "DICM" {
		pos = 132
		for pos+8 <= len(data) && binary.LittleEndian.Uint16(data[pos:]) == 0x0002 {
			t := tag.Tag{Group: 0x0002, Element: binary.LittleEndian.Uint16(data[pos+2:])}
			vr := string(data[pos+4 : pos+6])
			hdr, n := 8, int64(binary.LittleEndian.Uint16(data[pos+6:]))
			if longVR(vr) {
				if pos+12 > len(data) {
					return errors.New("file meta information is truncated")
				}
				hdr, n = 12, int64(binary.LittleEndian.Uint32(data[pos+8:]))
			}
			if n > int64(len(data)-pos-hdr) {
				return fmt.Errorf("file meta element %v claims %d bytes, %d remain", t, n, len(data)-pos-hdr)
			}
			if t == tag.TransferSyntaxUID {
				ts = string(bytes.TrimRight(data[pos+hdr:pos+hdr+int(n)], "\x00 "))
			}
			pos += hdr + int(n)
		}
	}
	body := data[pos:]
	if ts == DeflatedExplicitVRLittleEndian {
		inflated, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(body)), maxInflated+1))
		if err != nil {
			return fmt.Errorf("inflate data set: %w", err)
		}
		if len(inflated) > maxInflated {
			return fmt.Errorf("deflated data set inflates past %d bytes", maxInflated)
		}
		body = inflated
	}
	w := walker{data: body, bo: binary.LittleEndian, explicit: ts != ImplicitVRLittleEndian}
	if ts == ExplicitVRBigEndian {
		w.bo = binary.BigEndian
	}
	if pos == 0 && len(body) >= 6 && isVR(body[4:6]) {
		// No meta header (ACR-NEMA style or a bare data set): follow the encoding it uses.
		w.explicit = true
	}
	_, err := w.dataset(0, len(body), 0, false)
	return err
}

type walker struct {
	data     []byte
	bo       binary.ByteOrder
	explicit bool
}

// dataset walks elements from pos up to end; inItem stops it at an Item Delimitation Item.
func (w *walker) dataset(pos, end, depth int, inItem bool) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("sequences nested deeper than %d", maxDepth)
	}
	for pos < end {
		if end-pos < 8 {
			// Trailing padding shorter than an element header; the parser ignores it too.
			return end, nil
		}
		t := tag.Tag{Group: w.bo.Uint16(w.data[pos:]), Element: w.bo.Uint16(w.data[pos+2:])}
		if t.Group == 0xFFFE {
			n := w.bo.Uint32(w.data[pos+4:])
			pos += 8
			switch {
			case t.Element == 0xE00D && inItem:
				return pos, nil
			case t.Element == 0xE00D || t.Element == 0xE0DD:
				continue
			}
			return 0, fmt.Errorf("item tag %v outside a sequence (length %d)", t, n)
		}
		vr, hdr, n, err := w.header(pos, end, t)
		if err != nil {
			return 0, err
		}
		pos += hdr
		undefined := n == 0xFFFFFFFF
		switch {
		case undefined && t == tag.PixelData:
			if pos, err = w.fragments(pos, end); err != nil {
				return 0, err
			}
		case undefined:
			// Only sequences (SQ, or UN / implicit elements holding one) have undefined length.
			if pos, err = w.sequence(pos, end, depth+1, true); err != nil {
				return 0, fmt.Errorf("%v: %w", t, err)
			}
		case int64(n) > int64(end-pos):
			return 0, fmt.Errorf("element %v claims %d bytes, %d remain", t, n, end-pos)
		case vr == "SQ":
			if _, err := w.sequence(pos, pos+int(n), depth+1, false); err != nil {
				return 0, fmt.Errorf("%v: %w", t, err)
			}
			pos += int(n)
		default:
			pos += int(n)
		}
	}
	return pos, nil
}

// header reads an element header at pos and returns its VR ("" when implicit and unknown),
// header length and value length.
func (w *walker) header(pos, end int, t tag.Tag) (string, int, uint32, error) {
	if !w.explicit {
		vr := ""
		if info, err := tag.Find(t); err == nil && len(info.VRs) > 0 {
			vr = info.VRs[0]
		}
		return vr, 8, w.bo.Uint32(w.data[pos+4:]), nil
	}
	vr := string(w.data[pos+4 : pos+6])
	if !longVR(vr) {
		return vr, 8, uint32(w.bo.Uint16(w.data[pos+6:])), nil
	}
	if end-pos < 12 {
		return "", 0, 0, fmt.Errorf("element %v header is truncated", t)
	}
	return vr, 12, w.bo.Uint32(w.data[pos+8:]), nil
}

// sequence walks items up to end (defined length) or to a Sequence Delimitation Item.
func (w *walker) sequence(pos, end, depth int, undefined bool) (int, error) {
	for pos < end {
		if end-pos < 8 {
			return 0, errors.New("sequence is truncated")
		}
		t := tag.Tag{Group: w.bo.Uint16(w.data[pos:]), Element: w.bo.Uint16(w.data[pos+2:])}
		n := w.bo.Uint32(w.data[pos+4:])
		pos += 8
		switch {
		case t == tag.Tag{Group: 0xFFFE, Element: 0xE0DD}:
			if undefined {
				return pos, nil
			}
		case t == tag.Tag{Group: 0xFFFE, Element: 0xE000} && n == 0xFFFFFFFF:
			var err error
			if pos, err = w.dataset(pos, end, depth, true); err != nil {
				return 0, err
			}
		case t == tag.Tag{Group: 0xFFFE, Element: 0xE000}:
			if int64(n) > int64(end-pos) {
				return 0, fmt.Errorf("item claims %d bytes, %d remain", n, end-pos)
			}
			if _, err := w.dataset(pos, pos+int(n), depth, false); err != nil {
				return 0, err
			}
			pos += int(n)
		default:
			return 0, fmt.Errorf("tag %v inside a sequence, want an item", t)
		}
	}
	if undefined {
		return 0, errors.New("sequence has no delimitation item")
	}
	return pos, nil
}

// fragments skips the items of encapsulated pixel data, checking each length.
func (w *walker) fragments(pos, end int) (int, error) {
	for pos+8 <= end {
		// Items of encapsulated pixel data are little endian in every transfer syntax.
		g, e := binary.LittleEndian.Uint16(w.data[pos:]), binary.LittleEndian.Uint16(w.data[pos+2:])
		n := binary.LittleEndian.Uint32(w.data[pos+4:])
		pos += 8
		if g == 0xFFFE && e == 0xE0DD {
			return pos, nil
		}
		if g != 0xFFFE || e != 0xE000 || int64(n) > int64(end-pos) {
			return 0, fmt.Errorf("encapsulated pixel data: bad item (%04X,%04X) of %d bytes with %d remaining", g, e, n, end-pos)
		}
		pos += int(n)
	}
	return 0, errors.New("encapsulated pixel data has no sequence delimitation item")
}

func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

func isVR(b []byte) bool { return b[0] >= 'A' && b[0] <= 'Z' && b[1] >= 'A' && b[1] <= 'Z' }
