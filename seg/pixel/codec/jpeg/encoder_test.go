package jpeg

import (
	"encoding/binary"
)

// A lossless JPEG encoder (T.81 Annex H, Huffman), written for the tests: it makes codestreams
// with what encoders in the field rarely combine (every precision and selection value, point
// transforms, restart intervals, interleaved and separate scans, codes of up to 16 bits).

type losslessParams struct {
	width, height, precision int
	selection, pt            int
	restartLines             int // 0: no restart interval
	interleaved              bool
	planes                   [][]uint16 // one per component, width*height samples
}

// testTable gives difference category k a code of length k+2 (up to 15 bits), and the last
// three 16 bits: long codes exercise the decoder's slow path.
func testTable() (counts [17]byte, symbols []byte) {
	for k := range 14 {
		counts[k+2] = 1
		symbols = append(symbols, byte(k))
	}
	counts[16] = 3
	symbols = append(symbols, 14, 15, 16)
	return counts, symbols
}

type huffCode struct {
	code uint32
	n    uint
}

func codes(counts [17]byte, symbols []byte) map[byte]huffCode {
	out := map[byte]huffCode{}
	code, k := uint32(0), 0
	for l := 1; l <= 16; l++ {
		for range counts[l] {
			out[symbols[k]] = huffCode{code, uint(l)}
			code++
			k++
		}
		code <<= 1
	}
	return out
}

type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

func (w *bitWriter) write(v uint32, n uint) {
	w.acc = w.acc<<n | uint64(v)&(1<<n-1)
	w.n += n
	for w.n >= 8 {
		b := byte(w.acc >> (w.n - 8))
		w.out = append(w.out, b)
		if b == 0xFF {
			w.out = append(w.out, 0)
		}
		w.n -= 8
	}
}

// flush pads the last byte with ones (F.1.2.3).
func (w *bitWriter) flush() {
	if w.n > 0 {
		w.write(1<<(8-w.n)-1, 8-w.n)
	}
}

func segment(marker byte, body []byte) []byte {
	b := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(body)+2))
	return append(b, body...)
}

func encodeLossless(p losslessParams) []byte {
	nc := len(p.planes)
	out := []byte{0xFF, mSOI}
	sof := []byte{byte(p.precision), byte(p.height >> 8), byte(p.height), byte(p.width >> 8), byte(p.width), byte(nc)}
	for c := range nc {
		sof = append(sof, byte(c+1), 0x11, 0)
	}
	out = append(out, segment(mSOF3, sof)...)
	counts, symbols := testTable()
	dht := append([]byte{0x00}, counts[1:]...)
	out = append(out, segment(mDHT, append(dht, symbols...))...)
	if p.restartLines > 0 {
		ri := p.restartLines * p.width
		out = append(out, segment(mDRI, []byte{byte(ri >> 8), byte(ri)})...)
	}
	table := codes(counts, symbols)
	scans := [][]int{}
	if p.interleaved {
		all := []int{}
		for c := range nc {
			all = append(all, c)
		}
		scans = append(scans, all)
	} else {
		for c := range nc {
			scans = append(scans, []int{c})
		}
	}
	for _, sc := range scans {
		sos := []byte{byte(len(sc))}
		for _, c := range sc {
			sos = append(sos, byte(c+1), 0x00)
		}
		sos = append(sos, byte(p.selection), 0, byte(p.pt))
		out = append(out, segment(mSOS, sos)...)
		out = append(out, p.scanData(sc, table)...)
	}
	return append(out, 0xFF, mEOI)
}

func (p losslessParams) scanData(comps []int, table map[byte]huffCode) []byte {
	w := &bitWriter{}
	var out []byte
	w2, h := p.width, p.height
	rec := make([][]int32, len(p.planes))
	for c := range rec {
		rec[c] = make([]int32, w2*h)
		for i, v := range p.planes[c] {
			rec[c][i] = int32(v >> uint(p.pt))
		}
	}
	initial := int32(1) << uint(p.precision-p.pt-1)
	first, interval := 0, 0
	for y := range h {
		if p.restartLines > 0 && y > 0 && y%p.restartLines == 0 {
			w.flush()
			out = append(out, w.out...)
			out = append(out, 0xFF, byte(mRST0+interval%8))
			*w = bitWriter{}
			interval++
			first = y
		}
		for x := range w2 {
			for _, c := range comps {
				r := rec[c]
				i := y*w2 + x
				var pred int32
				switch {
				case x == 0 && y == first:
					pred = initial
				case y == first:
					pred = r[i-1]
				case x == 0:
					pred = r[i-w2]
				default:
					ra, rb, rc := r[i-1], r[i-w2], r[i-w2-1]
					pred = [8]int32{0, ra, rb, rc, ra + rb - rc, ra + (rb-rc)>>1, rb + (ra-rc)>>1, (ra + rb) >> 1}[p.selection]
				}
				d := (r[i] - pred) & 0xFFFF
				if d >= 0x8000 {
					d -= 0x10000
				}
				if d == -0x8000 {
					hc := table[16]
					w.write(hc.code, hc.n)
					continue
				}
				s, a := uint(0), d
				if a < 0 {
					a = -a
				}
				for a>>s != 0 {
					s++
				}
				hc := table[byte(s)]
				w.write(hc.code, hc.n)
				if d < 0 {
					d += 1<<s - 1
				}
				w.write(uint32(d), s)
			}
		}
	}
	w.flush()
	return append(out, w.out...)
}
