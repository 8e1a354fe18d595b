package dicomseg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// A small explicit VR little endian writer. suyashkumar/dicom cannot write 1-bit pixel data and
// does not sort elements, and a SEG is simple enough that owning the encoding is the safer path.

// element is one data element to be written. Exactly one of value and items is used: items for
// VR SQ, value (unpadded) for everything else.
type element struct {
	tag   uint32
	vr    string
	value []byte
	items []dataset
}

// dataset is a data set or sequence item. Order does not matter: encode sorts by tag.
type dataset []element

func tagOf(group, elem uint16) uint32 { return uint32(group)<<16 | uint32(elem) }

// Value representations whose explicit-VR header has a 2-byte reserved field and a 4-byte length.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// padByte is what makes an odd-length value even: NUL for UI and binary VRs, space for text.
func padByte(vr string) byte {
	switch vr {
	case "UI", "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		return 0
	}
	return ' '
}

func str(tag uint32, vr string, values ...string) element {
	return element{tag: tag, vr: vr, value: []byte(strings.Join(values, `\`))}
}

func u16(tag uint32, values ...uint16) element {
	b := make([]byte, 0, 2*len(values))
	for _, v := range values {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return element{tag: tag, vr: "US", value: b}
}

func u32(tag uint32, values ...uint32) element {
	b := make([]byte, 0, 4*len(values))
	for _, v := range values {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return element{tag: tag, vr: "UL", value: b}
}

// at encodes attribute tags (VR AT): group then element, each little endian.
func at(tag uint32, tags ...uint32) element {
	b := make([]byte, 0, 4*len(tags))
	for _, t := range tags {
		b = binary.LittleEndian.AppendUint16(b, uint16(t>>16))
		b = binary.LittleEndian.AppendUint16(b, uint16(t))
	}
	return element{tag: tag, vr: "AT", value: b}
}

func is(tag uint32, n int) element { return str(tag, "IS", strconv.Itoa(n)) }

func ds(tag uint32, values ...float64) element {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = formatDS(v)
	}
	return str(tag, "DS", s...)
}

func seq(tag uint32, items ...dataset) element { return element{tag: tag, vr: "SQ", items: items} }

func ob(tag uint32, b []byte) element { return element{tag: tag, vr: "OB", value: b} }

// formatDS renders a float in at most 16 characters, the DS limit, keeping as many significant
// digits as fit.
func formatDS(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	for prec := -1; ; {
		s := strconv.FormatFloat(v, 'g', prec, 64)
		if len(s) <= 16 {
			return s
		}
		if prec == -1 {
			prec = 16
		}
		prec--
	}
}

func (d dataset) encode(buf *bytes.Buffer) error {
	sorted := slices.Clone(d)
	slices.SortStableFunc(sorted, func(a, b element) int { return int(int64(a.tag) - int64(b.tag)) })
	for i, e := range sorted {
		if i > 0 && sorted[i-1].tag == e.tag {
			return fmt.Errorf("element (%04X,%04X) given twice", e.tag>>16, e.tag&0xffff)
		}
		if err := e.encode(buf); err != nil {
			return fmt.Errorf("element (%04X,%04X): %w", e.tag>>16, e.tag&0xffff, err)
		}
	}
	return nil
}

func (e element) encode(buf *bytes.Buffer) error {
	var value []byte
	if e.vr == "SQ" {
		// Defined lengths throughout: every reader handles them, and the sizes are known.
		var items bytes.Buffer
		for i, item := range e.items {
			var body bytes.Buffer
			if err := item.encode(&body); err != nil {
				return fmt.Errorf("item %d: %w", i+1, err)
			}
			if body.Len() > math.MaxUint32-1 {
				return fmt.Errorf("item %d too long", i+1)
			}
			writeTag(&items, 0xFFFEE000)
			items.Write(binary.LittleEndian.AppendUint32(nil, uint32(body.Len())))
			items.Write(body.Bytes())
		}
		value = items.Bytes()
	} else {
		value = e.value
		if len(value)%2 == 1 {
			value = append(slices.Clip(value), padByte(e.vr))
		}
	}
	writeTag(buf, e.tag)
	buf.WriteString(e.vr)
	if longVR(e.vr) {
		if len(value) > math.MaxUint32-1 {
			return fmt.Errorf("value of %d bytes is too long", len(value))
		}
		buf.Write([]byte{0, 0})
		buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(value))))
	} else {
		if len(value) > math.MaxUint16 {
			return fmt.Errorf("value of %d bytes is too long for VR %s", len(value), e.vr)
		}
		buf.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(value))))
	}
	buf.Write(value)
	return nil
}

func writeTag(buf *bytes.Buffer, tag uint32) {
	buf.Write(binary.LittleEndian.AppendUint16(nil, uint16(tag>>16)))
	buf.Write(binary.LittleEndian.AppendUint16(nil, uint16(tag)))
}

const explicitVRLittleEndian = "1.2.840.10008.1.2.1"

// writeFile encodes a Part 10 file: preamble, prefix, file meta information, then the data set
// in explicit VR little endian.
func writeFile(buf *bytes.Buffer, sopClass, sopInstance string, ds dataset) error {
	var meta bytes.Buffer
	if err := (dataset{
		ob(tagOf(0x0002, 0x0001), []byte{0, 1}),
		str(tagOf(0x0002, 0x0002), "UI", sopClass),
		str(tagOf(0x0002, 0x0003), "UI", sopInstance),
		str(tagOf(0x0002, 0x0010), "UI", explicitVRLittleEndian),
		str(tagOf(0x0002, 0x0012), "UI", ImplementationClassUID),
		str(tagOf(0x0002, 0x0013), "SH", ImplementationVersionName),
	}).encode(&meta); err != nil {
		return fmt.Errorf("file meta: %w", err)
	}
	buf.Write(make([]byte, 128))
	buf.WriteString("DICM")
	if err := u32(tagOf(0x0002, 0x0000), uint32(meta.Len())).encode(buf); err != nil {
		return err
	}
	buf.Write(meta.Bytes())
	return ds.encode(buf)
}
