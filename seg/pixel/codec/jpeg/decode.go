package jpeg

import "fmt"

// maxSamples bounds an image when Decode is given no accept function: 2^28 samples (512 MiB of
// uint16), more than any frame a DICOM header this node accepts can declare.
const maxSamples = 1 << 28

type decoder struct {
	parser
	restart int
	huff    [2][4]*huffTable
	quant   [4]*[64]int32 // in zigzag order

	hmax, vmax int
	mcux, mcuy int // MCUs of an interleaved DCT scan
	planes     [][]uint16
	stride     []int // plane width (DCT: padded to whole MCUs)
	rows       []int
	done       []bool
	shift      []uint // lossless point transform of each component's scan
}

// allocate checks the frame header with accept and allocates a plane per component.
func (d *decoder) allocate(accept func(*Header) error) error {
	h := &d.hdr
	switch h.Process {
	case Progressive:
		return fmt.Errorf("%w: progressive DCT (image/jpeg decodes 8-bit progressive)", ErrUnsupported)
	case Baseline, Extended, Lossless:
	default:
		return fmt.Errorf("%w: %v", ErrUnsupported, h.Process)
	}
	if accept != nil {
		hc := *h
		if err := accept(&hc); err != nil {
			return err
		}
	} else if h.Samples() > maxSamples {
		return fmt.Errorf("%w: %dx%d pixels of %d components", ErrUnsupported, h.Width, h.Height, len(h.Components))
	}
	for _, c := range h.Components {
		d.hmax, d.vmax = max(d.hmax, c.H), max(d.vmax, c.V)
	}
	n := len(h.Components)
	d.planes, d.stride, d.rows, d.done, d.shift = make([][]uint16, n), make([]int, n), make([]int, n), make([]bool, n), make([]uint, n)
	if h.Process == Lossless {
		for i, c := range h.Components {
			d.stride[i] = ceilDiv(h.Width*c.H, d.hmax)
			d.rows[i] = ceilDiv(h.Height*c.V, d.vmax)
			d.planes[i] = make([]uint16, d.stride[i]*d.rows[i])
		}
		return nil
	}
	d.mcux, d.mcuy = ceilDiv(h.Width, 8*d.hmax), ceilDiv(h.Height, 8*d.vmax)
	for i, c := range h.Components {
		d.stride[i] = d.mcux * c.H * 8
		d.rows[i] = d.mcuy * c.V * 8
		d.planes[i] = make([]uint16, d.stride[i]*d.rows[i])
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

type scanComponent struct {
	index  int // in the frame header
	dc, ac *huffTable
}

// scan reads a scan header and decodes the entropy-coded data after it.
func (d *decoder) scan(b []byte) error {
	if len(b) < 1 {
		return malformed("empty scan header")
	}
	ns := int(b[0])
	if ns < 1 || ns > 4 || len(b) != 4+2*ns {
		return malformed("scan header of %d bytes for %d components", len(b), ns)
	}
	comps := make([]scanComponent, ns)
	for i := range ns {
		id, tables := b[1+2*i], b[2+2*i]
		k := -1
		for j, c := range d.hdr.Components {
			if c.ID == id {
				k = j
			}
		}
		if k < 0 {
			return malformed("scan names component %d, which the frame lacks", id)
		}
		for j := range i {
			if comps[j].index == k {
				return malformed("scan names component %d twice", id)
			}
		}
		td, ta := int(tables>>4), int(tables&15)
		if td > 3 || ta > 3 {
			return malformed("scan component %d uses tables %d/%d", id, td, ta)
		}
		comps[i] = scanComponent{index: k, dc: d.huff[0][td], ac: d.huff[1][ta]}
		if comps[i].dc == nil || (d.hdr.Process != Lossless && comps[i].ac == nil) {
			return malformed("scan component %d uses an undefined Huffman table", id)
		}
	}
	ss, ah, al := int(b[1+2*ns]), int(b[3+2*ns]>>4), int(b[3+2*ns]&15)
	br := &bitReader{src: d.src, pos: d.pos}
	var err error
	if d.hdr.Process == Lossless {
		err = d.losslessScan(br, comps, ss, ah, al)
	} else {
		// Sequential scans have Ss=0 and Se=63; some writers put other values there, which
		// IJG's decoder (and DCMTK's) warn about and ignore.
		err = d.dctScan(br, comps)
	}
	if err != nil {
		return err
	}
	if br.overrun() {
		return malformed("scan ends past its data (truncated codestream)")
	}
	for _, c := range comps {
		d.done[c.index] = true
	}
	d.pos = br.pos
	return nil
}

func (d *decoder) finish() (*Image, error) {
	h := &d.hdr
	if !d.sof {
		return nil, malformed("no frame header before EOI")
	}
	for i, ok := range d.done {
		if !ok {
			return nil, malformed("component %d has no scan", h.Components[i].ID)
		}
	}
	n := len(h.Components)
	img := &Image{Width: h.Width, Height: h.Height, Components: n, Precision: h.Precision}
	if n == 1 && d.shift[0] == 0 && d.stride[0] == h.Width {
		// The plane is the image (lossless, or DCT of a width in whole blocks): no copy.
		img.Pix = d.planes[0][:h.Samples()]
		return img, nil
	}
	img.Pix = make([]uint16, h.Samples())
	for i, c := range h.Components {
		plane, stride, shift := d.planes[i], d.stride[i], d.shift[i]
		if c.H == d.hmax && c.V == d.vmax {
			for y := range h.Height {
				row := plane[y*stride : y*stride+h.Width]
				out := img.Pix[y*h.Width*n+i:]
				if n == 1 && shift == 0 {
					copy(out, row)
					continue
				}
				for x, v := range row {
					out[x*n] = v << shift
				}
			}
			continue
		}
		if h.Process == Lossless {
			return nil, fmt.Errorf("%w: subsampled lossless components", ErrUnsupported)
		}
		// Subsampled components are replicated to full size.
		for y := range h.Height {
			row := plane[(y*c.V/d.vmax)*stride:]
			out := img.Pix[y*h.Width*n+i:]
			for x := range h.Width {
				out[x*n] = row[x*c.H/d.hmax]
			}
		}
	}
	return img, nil
}
