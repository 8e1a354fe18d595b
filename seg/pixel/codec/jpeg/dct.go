package jpeg

import "math"

// zigzag[k] is the natural (row-major) index of the k-th coefficient in zigzag order (T.81
// Figure A.6).
var zigzag = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// defineQuant reads a DQT segment, which may hold several tables of 8- or 16-bit entries.
func (d *decoder) defineQuant(b []byte) error {
	for len(b) > 0 {
		pq, tq := int(b[0]>>4), int(b[0]&15)
		if pq > 1 || tq > 3 {
			return malformed("DQT table precision %d, identifier %d", pq, tq)
		}
		n := 64 * (pq + 1)
		if len(b) < 1+n {
			return malformed("DQT segment ends inside table %d", tq)
		}
		t := &[64]int32{}
		for k := range 64 {
			if pq == 0 {
				t[k] = int32(b[1+k])
			} else {
				t[k] = int32(b[1+2*k])<<8 | int32(b[2+2*k])
			}
		}
		d.quant[tq] = t
		b = b[1+n:]
	}
	return nil
}

// dctScan decodes a sequential DCT scan (T.81 Annex F, Huffman coding): every 8x8 block's
// DC difference and AC run/size codes, dequantised and inverse transformed into its plane.
func (d *decoder) dctScan(br *bitReader, comps []scanComponent) error {
	h := &d.hdr
	quant := make([]*[64]int32, len(comps))
	for i, c := range comps {
		q := d.quant[h.Components[c.index].Tq]
		if q == nil {
			return malformed("component %d uses undefined quantisation table %d", h.Components[c.index].ID, h.Components[c.index].Tq)
		}
		quant[i] = q
		if c.dc.maxVal > 15 || (h.Precision == 8 && c.dc.maxVal > 11) {
			return malformed("DC Huffman table codes category %d", c.dc.maxVal)
		}
	}
	maxv := int32(1)<<uint(h.Precision) - 1
	level := float32(int32(1) << uint(h.Precision-1))
	pred := make([]int32, len(comps))
	var coef [64]int32
	var tmp [64]float32

	block := func(k int, bx, by int) bool {
		c := comps[k]
		q := quant[k]
		coef = [64]int32{}
		s, ok := br.decode(c.dc)
		if !ok {
			return false
		}
		pred[k] += extend(br.receive(uint(s)), uint(s))
		coef[0] = pred[k] * q[0]
		ac := false
		for z := 1; z < 64; z++ {
			rs, ok := br.decode(c.ac)
			if !ok {
				return false
			}
			r, s := int(rs>>4), uint(rs&15)
			if s == 0 {
				if r != 15 {
					break
				}
				z += 15
				continue
			}
			z += r
			if z > 63 {
				return false
			}
			coef[zigzag[z]] = extend(br.receive(s), s) * q[z]
			ac = true
		}
		stride := d.stride[c.index]
		dst := d.planes[c.index][by*8*stride+bx*8:]
		if !ac {
			flatBlock(coef[0], dst, stride, level, maxv)
			return true
		}
		idct(&coef, &tmp, dst, stride, level, maxv)
		return true
	}

	ri := d.restart
	interval, mcu := 0, 0
	nextMCU := func() error {
		if ri > 0 && mcu > 0 && mcu%ri == 0 {
			if err := br.restart(interval); err != nil {
				return err
			}
			interval++
			clear(pred)
		}
		mcu++
		return nil
	}
	if len(comps) == 1 {
		// A non-interleaved scan covers the component's own blocks, not its MCU padding.
		c := h.Components[comps[0].index]
		bw := ceilDiv(ceilDiv(h.Width*c.H, d.hmax), 8)
		bh := ceilDiv(ceilDiv(h.Height*c.V, d.vmax), 8)
		for by := range bh {
			for bx := range bw {
				if err := nextMCU(); err != nil {
					return err
				}
				if !block(0, bx, by) {
					return malformed("bad Huffman code in block row %d", by)
				}
			}
			if br.overrun() {
				return malformed("DCT scan truncated at block row %d of %d", by+1, bh)
			}
		}
		return nil
	}
	for my := range d.mcuy {
		for mx := range d.mcux {
			if err := nextMCU(); err != nil {
				return err
			}
			for k, sc := range comps {
				c := h.Components[sc.index]
				for v := range c.V {
					for u := range c.H {
						if !block(k, mx*c.H+u, my*c.V+v) {
							return malformed("bad Huffman code in MCU row %d", my)
						}
					}
				}
			}
		}
		if br.overrun() {
			return malformed("DCT scan truncated at MCU row %d of %d", my+1, d.mcuy)
		}
	}
	return nil
}

// The inverse DCT of T.81 A.3.3, separable: eight 1-D transforms on the rows, then eight on
// the columns, each split into its even and odd halves (x[n] = E[n] + O[n], x[7-n] = E[n] -
// O[n]). Single precision keeps every output within a rounding step of the exact transform
// for 12-bit samples.
var (
	idctA  = float32(math.Sqrt2 / 4) // C(0)/2 = cos(4pi/16)/2
	idctC2 = float32(math.Cos(2*math.Pi/16) / 2)
	idctC6 = float32(math.Cos(6*math.Pi/16) / 2)
	// idctOdd[n][j] is cos((2n+1)(2j+1)pi/16)/2.
	idctOdd = func() (m [4][4]float32) {
		for n := range 4 {
			for j := range 4 {
				m[n][j] = float32(math.Cos(float64((2*n+1)*(2*j+1))*math.Pi/16) / 2)
			}
		}
		return m
	}()
)

// idct1 transforms the 8 values in[0], in[s], ..., in[7s] into out[0], out[t], ..., out[7t].
func idct1(in []float32, s int, out []float32, t int) {
	x0, x1, x2, x3, x4, x5, x6, x7 := in[0], in[s], in[2*s], in[3*s], in[4*s], in[5*s], in[6*s], in[7*s]
	t0, t1 := idctA*(x0+x4), idctA*(x0-x4)
	u0, u1 := idctC2*x2+idctC6*x6, idctC6*x2-idctC2*x6
	e0, e1, e2, e3 := t0+u0, t1+u1, t1-u1, t0-u0
	m := &idctOdd
	o0 := m[0][0]*x1 + m[0][1]*x3 + m[0][2]*x5 + m[0][3]*x7
	o1 := m[1][0]*x1 + m[1][1]*x3 + m[1][2]*x5 + m[1][3]*x7
	o2 := m[2][0]*x1 + m[2][1]*x3 + m[2][2]*x5 + m[2][3]*x7
	o3 := m[3][0]*x1 + m[3][1]*x3 + m[3][2]*x5 + m[3][3]*x7
	out[0], out[7*t] = e0+o0, e0-o0
	out[t], out[6*t] = e1+o1, e1-o1
	out[2*t], out[5*t] = e2+o2, e2-o2
	out[3*t], out[4*t] = e3+o3, e3-o3
}

// idct writes the samples of one dequantised block, level-shifted and clamped to 0..maxv,
// into dst (row stride stride).
func idct(coef *[64]int32, tmp *[64]float32, dst []uint16, stride int, level float32, maxv int32) {
	var in [64]float32
	for i, c := range coef {
		in[i] = float32(c)
	}
	for r := range 8 {
		row := in[8*r : 8*r+8]
		if coef[8*r+1]|coef[8*r+2]|coef[8*r+3]|coef[8*r+4]|coef[8*r+5]|coef[8*r+6]|coef[8*r+7] == 0 {
			// A row with only its first coefficient is flat.
			v := row[0] * idctA
			for c := range 8 {
				tmp[8*c+r] = v
			}
			continue
		}
		idct1(row, 1, tmp[r:], 8)
	}
	// tmp holds the row transforms transposed: its row c is column c of the result.
	var col [8]float32
	for c := range 8 {
		idct1(tmp[8*c:], 1, col[:], 1)
		for r := range 8 {
			v := int32(col[r] + level + 0.5)
			dst[r*stride+c] = uint16(min(max(v, 0), maxv))
		}
	}
}

// flatBlock writes a block whose only coefficient is its DC one (most blocks of the flat parts
// of an image): every sample is the value idct computes for it, in the same arithmetic.
func flatBlock(dc int32, dst []uint16, stride int, level float32, maxv int32) {
	// The conversion keeps the product rounded before the sum (no fused multiply-add), as in idct.
	v := int32(float32(idctA*(float32(dc)*idctA)) + level + 0.5)
	u := uint16(min(max(v, 0), maxv))
	for r := range 8 {
		row := dst[r*stride : r*stride+8]
		for c := range row {
			row[c] = u
		}
	}
}
