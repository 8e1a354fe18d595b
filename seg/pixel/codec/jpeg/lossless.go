package jpeg

import "fmt"

// losslessScan decodes a lossless scan (T.81 Annex H, process 14): each sample is its
// prediction from decoded neighbours plus a Huffman-coded difference, modulo 2^16.
func (d *decoder) losslessScan(br *bitReader, comps []scanComponent, ss, ah, al int) error {
	h := &d.hdr
	if ss < 1 || ss > 7 {
		return malformed("lossless scan with selection value %d", ss)
	}
	if ah != 0 || al >= h.Precision {
		return malformed("lossless scan with point transform %d of %d bits (Ah %d)", al, h.Precision, ah)
	}
	for _, c := range comps {
		if c.dc.maxVal > 16 {
			return malformed("lossless Huffman table codes difference category %d", c.dc.maxVal)
		}
	}
	first := comps[0].index
	w, rows := d.stride[first], d.rows[first]
	if len(comps) > 1 {
		for _, c := range comps {
			if fc := h.Components[c.index]; fc.H != 1 || fc.V != 1 {
				return fmt.Errorf("%w: interleaved lossless scan with %dx%d sampling", ErrUnsupported, fc.H, fc.V)
			}
		}
	}
	// An MCU is one sample of each scan component; the restart interval counts MCUs, and
	// prediction restarts with it, which T.81 defines for intervals of whole lines.
	ri := d.restart
	if ri > 0 && ri%w != 0 {
		return fmt.Errorf("%w: lossless restart interval of %d samples is not a whole number of %d-sample lines", ErrUnsupported, ri, w)
	}
	linesPerInterval := rows
	if ri > 0 {
		linesPerInterval = ri / w
	}
	initial := int32(1) << uint(h.Precision-al-1)
	planes := make([][]uint16, len(comps))
	tables := make([]*huffTable, len(comps))
	for i, c := range comps {
		planes[i] = d.planes[c.index]
		tables[i] = c.dc
		d.shift[c.index] = uint(al)
	}
	if len(comps) == 1 {
		tables[0].buildDiffs()
		return oneComponent(br, planes[0], tables[0], w, rows, linesPerInterval, ss, initial)
	}
	interval := 0
	firstRow := 0
	for y := range rows {
		if y > 0 && y%linesPerInterval == 0 {
			if err := br.restart(interval); err != nil {
				return err
			}
			interval++
			firstRow = y
		}
		base := y * w
		for x := range w {
			i := base + x
			for k, plane := range planes {
				var pred int32
				switch {
				case x == 0 && y == firstRow:
					pred = initial
				case y == firstRow:
					pred = int32(plane[i-1])
				case x == 0:
					pred = int32(plane[i-w])
				default:
					ra, rb, rc := int32(plane[i-1]), int32(plane[i-w]), int32(plane[i-w-1])
					switch ss {
					case 1:
						pred = ra
					case 2:
						pred = rb
					case 3:
						pred = rc
					case 4:
						pred = ra + rb - rc
					case 5:
						pred = ra + (rb-rc)>>1
					case 6:
						pred = rb + (ra-rc)>>1
					case 7:
						pred = (ra + rb) >> 1
					}
				}
				s, ok := br.decode(tables[k])
				if !ok {
					return malformed("bad Huffman code at line %d", y)
				}
				var diff int32
				switch s {
				case 0:
				case 16:
					diff = 32768
				default:
					diff = extend(br.receive(uint(s)), uint(s))
				}
				plane[i] = uint16(pred + diff)
			}
		}
		if br.overrun() {
			return malformed("lossless scan truncated at line %d of %d", y+1, rows)
		}
	}
	return nil
}

// oneComponent is losslessScan for a scan of one component (nearly every DICOM image): the
// same rules, one row at a time: the row's differences decoded first, then the predictor,
// chosen once per row, applied in a loop without calls.
func oneComponent(br *bitReader, plane []uint16, tab *huffTable, w, rows, linesPerInterval, ss int, initial int32) error {
	interval, firstRow := 0, 0
	diffs := make([]int32, w)
	var prev []uint16
	for y := range rows {
		if y > 0 && y%linesPerInterval == 0 {
			if err := br.restart(interval); err != nil {
				return err
			}
			interval++
			firstRow = y
		}
		row := plane[y*w : (y+1)*w]
		if !br.diffRow(tab, diffs) {
			return malformed("bad Huffman code at line %d", y)
		}
		pred := initial
		if y != firstRow {
			prev = plane[(y-1)*w : y*w]
			pred = int32(prev[0])
		}
		row[0] = uint16(pred + diffs[0])
		if y == firstRow || ss == 1 {
			predictLeft(row, diffs)
		} else {
			predictAbove(row, prev, diffs, ss)
		}
		if br.overrun() {
			return malformed("lossless scan truncated at line %d of %d", y+1, rows)
		}
	}
	return nil
}

// predictLeft fills row[1:] from its left neighbours (selection value 1, and every first line).
func predictLeft(row []uint16, diffs []int32) {
	diffs = diffs[:len(row)]
	a := int32(row[0])
	for x := 1; x < len(row); x++ {
		a = int32(uint16(a + diffs[x]))
		row[x] = uint16(a)
	}
}

// predictAbove fills row[1:] by selection value ss (2 to 7) from the line above.
func predictAbove(row, prev []uint16, diffs []int32, ss int) {
	prev, diffs = prev[:len(row)], diffs[:len(row)]
	switch ss {
	case 2:
		for x := 1; x < len(row); x++ {
			row[x] = uint16(int32(prev[x]) + diffs[x])
		}
		return
	case 3:
		for x := 1; x < len(row); x++ {
			row[x] = uint16(int32(prev[x-1]) + diffs[x])
		}
		return
	}
	for x := 1; x < len(row); x++ {
		ra, rb, rc := int32(row[x-1]), int32(prev[x]), int32(prev[x-1])
		var p int32
		switch ss {
		case 4:
			p = ra + rb - rc
		case 5:
			p = ra + (rb-rc)>>1
		case 6:
			p = rb + (ra-rc)>>1
		default:
			p = (ra + rb) >> 1
		}
		row[x] = uint16(p + diffs[x])
	}
}
