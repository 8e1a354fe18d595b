package jpeg

import "encoding/binary"

// Huffman tables (T.81 Annex C, F.2.2.3) and the entropy-coded segment reader (F.2.2.5).

// lutBits is the length of the codes the lookup table resolves in one step; longer codes
// (rare: the table is built so that frequent symbols get short codes) take the slow path.
const lutBits = 9

type huffTable struct {
	// lut maps the next lutBits bits to (code length << 8 | symbol), 0 for a longer code.
	lut     [1 << lutBits]uint16
	maxcode [17]int32 // the largest code of each length, -1 for none
	valptr  [17]int32 // index in vals of the first code of each length
	mincode [17]int32
	vals    [256]byte
	maxVal  byte
	// diffs maps the next diffBits bits to (difference << 8 | code length + its extra bits)
	// for a lossless difference coded in at most diffBits bits, 0 for a longer one: built by
	// a lossless scan that uses the table.
	diffs *[1 << diffBits]int32
}

// diffBits is the length of the lossless code-and-difference pairs resolved in one step.
const diffBits = 11

// buildDiffs fills diffs from the codes of up to diffBits bits, each with every value of the
// extra bits its category takes that still fits (T.81 H.1.2.2).
func (t *huffTable) buildDiffs() {
	if t.diffs != nil {
		return
	}
	t.diffs = new([1 << diffBits]int32)
	for e, entry := range t.lut {
		if entry == 0 {
			continue
		}
		l, s := uint(entry>>8), uint(entry&0xFF)
		if e&(1<<(lutBits-l)-1) != 0 {
			continue // each code once: its entry with zero suffix
		}
		code := uint32(e) >> (lutBits - l)
		switch {
		case s == 0 || s >= 16:
			v := int32(0)
			if s >= 16 {
				v = 32768
			}
			fillDiffs(t.diffs, code, l, v<<8|int32(l))
		case l+s <= diffBits:
			for x := uint32(0); x < 1<<s; x++ {
				v := int32(x)
				if v < 1<<(s-1) {
					v += 1 - 1<<s
				}
				fillDiffs(t.diffs, code<<s|x, l+s, v<<8|int32(l+s))
			}
		}
	}
}

func fillDiffs(tab *[1 << diffBits]int32, prefix uint32, n uint, entry int32) {
	shift := diffBits - n
	for k := uint32(0); k < 1<<shift; k++ {
		tab[prefix<<shift|k] = entry
	}
}

// defineHuffman reads a DHT segment, which may hold several tables.
func (d *decoder) defineHuffman(b []byte) error {
	for len(b) > 0 {
		if len(b) < 17 {
			return malformed("DHT segment ends inside a table header")
		}
		class, id := int(b[0]>>4), int(b[0]&15)
		if class > 1 || id > 3 {
			return malformed("DHT table class %d, identifier %d", class, id)
		}
		var counts [17]int
		total := 0
		for l := 1; l <= 16; l++ {
			counts[l] = int(b[l])
			total += counts[l]
		}
		if total == 0 || total > 256 || len(b) < 17+total {
			return malformed("DHT table of %d codes in %d bytes", total, len(b))
		}
		t := &huffTable{}
		copy(t.vals[:], b[17:17+total])
		code, k := int32(0), int32(0)
		for l := 1; l <= 16; l++ {
			t.valptr[l] = k
			t.mincode[l] = code
			code += int32(counts[l])
			k += int32(counts[l])
			if code > 1<<l {
				return malformed("DHT table: %d codes do not fit in %d bits", code, l)
			}
			t.maxcode[l] = code - 1
			if counts[l] == 0 {
				t.maxcode[l] = -1
			}
			code <<= 1
		}
		for l := 1; l <= lutBits; l++ {
			for i := int32(0); i < int32(counts[l]); i++ {
				c := t.mincode[l] + i
				sym := t.vals[t.valptr[l]+i]
				shift := uint(lutBits - l)
				for s := int32(0); s < 1<<shift; s++ {
					t.lut[c<<shift|s] = uint16(l)<<8 | uint16(sym)
				}
			}
		}
		for _, v := range t.vals[:total] {
			t.maxVal = max(t.maxVal, v)
		}
		d.huff[class][id] = t
		b = b[17+total:]
	}
	return nil
}

// bitReader reads an entropy-coded segment most significant bit first, removing the stuffed
// zero after each 0xFF. At a marker or the end of the data it supplies zero bits and counts
// them, so a scan that uses them is known to be truncated.
type bitReader struct {
	src []byte
	pos int
	acc uint64 // the next bits, left-aligned
	n   uint   // bits in acc
	pad uint   // of those, the zero bits supplied past the data
}

func (b *bitReader) fill() {
	// Eight bytes at once where none is 0xFF (neither stuffing nor a marker): most of a scan.
	if b.pad == 0 && b.pos+8 <= len(b.src) {
		x := binary.BigEndian.Uint64(b.src[b.pos:])
		if nx := ^x; (nx-0x0101010101010101)&^nx&0x8080808080808080 == 0 {
			k := (64 - b.n) / 8
			if k == 8 {
				b.acc = x
			} else {
				b.acc |= x >> (64 - 8*k) << (64 - b.n - 8*k)
			}
			b.pos += int(k)
			b.n += 8 * k
			return
		}
	}
	for b.n <= 56 {
		var c byte
		if b.pad == 0 && b.pos < len(b.src) {
			c = b.src[b.pos]
			if c != 0xFF {
				b.pos++
			} else if b.pos+1 < len(b.src) && b.src[b.pos+1] == 0 {
				b.pos += 2
			} else {
				// A marker: the segment ends here, and pos stays on it.
				c = 0
				b.pad = 8
			}
		} else {
			b.pad += 8
		}
		b.acc |= uint64(c) << (56 - b.n)
		b.n += 8
	}
}

// overrun reports whether bits past the end of the segment were consumed.
func (b *bitReader) overrun() bool { return b.pad > b.n }

func (b *bitReader) decode(t *huffTable) (byte, bool) {
	if b.n < 16 {
		b.fill()
	}
	if e := t.lut[b.acc>>(64-lutBits)]; e != 0 {
		l := uint(e >> 8)
		b.acc <<= l
		b.n -= l
		return byte(e), true
	}
	for l := lutBits + 1; l <= 16; l++ {
		code := int32(b.acc >> (64 - uint(l)))
		if code <= t.maxcode[l] {
			b.acc <<= uint(l)
			b.n -= uint(l)
			return t.vals[t.valptr[l]+code-t.mincode[l]], true
		}
	}
	return 0, false
}

// receive returns the next s bits (s <= 16) as an unsigned number.
func (b *bitReader) receive(s uint) int32 {
	if s == 0 {
		return 0
	}
	if b.n < s {
		b.fill()
	}
	v := int32(b.acc >> (64 - s))
	b.acc <<= s
	b.n -= s
	return v
}

// extend turns s received bits into the signed difference they code (F.2.2.1, Figure F.12).
func extend(v int32, s uint) int32 {
	if s > 0 && v < 1<<(s-1) {
		return v - (1 << s) + 1
	}
	return v
}

// restart ends a restart interval: the rest of the current byte is padding, and the next
// marker must be RSTn with n the interval's number modulo 8.
func (b *bitReader) restart(n int) error {
	if b.overrun() {
		return malformed("restart interval %d ends past its data", n)
	}
	p := b.pos
	for p < len(b.src) && b.src[p] == 0xFF {
		p++
	}
	if p == b.pos || p >= len(b.src) || b.src[p] != mRST0+byte(n&7) {
		return malformed("expected RST%d marker at byte %d", n&7, b.pos)
	}
	b.pos = p + 1
	b.acc, b.n, b.pad = 0, 0, 0
	return nil
}

// diff decodes one lossless difference (H.1.2.2): a category, then that many bits; category
// 16 is 32768 with no bits.
func (b *bitReader) diff(t *huffTable) (int32, bool) {
	if b.n < 32 {
		b.fill()
	}
	var s uint
	if e := t.lut[b.acc>>(64-lutBits)]; e != 0 {
		l := uint(e >> 8)
		b.acc <<= l
		b.n -= l
		s = uint(e & 0xFF)
	} else {
		v, ok := b.decode(t)
		if !ok {
			return 0, false
		}
		s = uint(v)
	}
	switch {
	case s == 0:
		return 0, true
	case s >= 16:
		return 32768, true
	}
	v := int32(b.acc >> (64 - s))
	b.acc <<= s
	b.n -= s
	if v < 1<<(s-1) {
		v += 1 - 1<<s
	}
	return v, true
}

// diffRow decodes len(out) lossless differences, as diff does, with the reader's state in
// locals between refills and most codes resolved with their extra bits by one look-up in
// t.diffs (which buildDiffs must have made): the loop that decodes nearly every sample of a
// lossless image.
func (b *bitReader) diffRow(t *huffTable, out []int32) bool {
	acc, n := b.acc, b.n
	for i := range out {
		if n < 32 {
			b.acc, b.n = acc, n
			b.fill()
			acc, n = b.acc, b.n
		}
		if f := t.diffs[acc>>(64-diffBits)]; f != 0 {
			l := uint(f & 0xFF)
			acc <<= l
			n -= l
			out[i] = f >> 8
			continue
		}
		e := t.lut[acc>>(64-lutBits)]
		if e == 0 {
			b.acc, b.n = acc, n
			v, ok := b.diff(t)
			if !ok {
				return false
			}
			out[i] = v
			acc, n = b.acc, b.n
			continue
		}
		l, s := uint(e>>8), uint(e&0xFF)
		acc <<= l
		n -= l
		var v int32
		switch {
		case s == 0:
		case s >= 16:
			v = 32768
		default:
			v = int32(acc >> (64 - s))
			acc <<= s
			n -= s
			if v < 1<<(s-1) {
				v += 1 - 1<<s
			}
		}
		out[i] = v
	}
	b.acc, b.n = acc, n
	return true
}
