// Package pixel turns the pixel data of a DICOM image into what the model takes and turns the
// model's logits back into a mask on the source image. It decodes, from a data set dcm has read
// with its pixel data raw, native pixel data (every bit depth, signed and unsigned, both planar
// configurations, multi-frame) and RLE Lossless itself; 8-bit DCT JPEG through libjpeg-turbo
// (codec/turbojpeg; image/jpeg in a build without it), the other JPEG processes through
// codec/jpeg (pure Go); JPEG-LS, JPEG 2000 and HTJ2K, and JPEG XL through the C libraries bound
// in codec/charls, codec/openjpeg and codec/jxl. The table of what decodes which syntax is
// families, in codecs.go; Codecs lists it.
package pixel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/espnode/espnode/dcm"
)

// maxFramePixels bounds the pixels of one frame (8192 x 8192): decoding allocates a frame
// before the data proves it is that large, so the bound keeps hostile headers from costing
// gigabytes. Radiographs and mammograms are well inside it; slides come as tiles.
const maxFramePixels = 1 << 26

// ErrUnsupportedTransferSyntax is wrapped by the error for pixel data this package cannot decode.
var ErrUnsupportedTransferSyntax = errors.New("unsupported transfer syntax")

func unsupported(uid string) error {
	return fmt.Errorf("%w %s (%s)", ErrUnsupportedTransferSyntax, uid, dcm.TransferSyntaxName(uid))
}

// ReadFile reads a DICOM file, its pixel data included, into memory: what NewImage and
// dicomseg's SourceFromDataSet take. A file in a transfer syntax this package cannot decode
// gives the unsupported-syntax error even when its data set is broken too.
func ReadFile(path string) (*dcm.File, error) {
	r, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := ReadPart10(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return f, nil
}

// ReadPart10 parses a Part-10 stream (file meta, then data set) for decoding, as ReadFile does.
func ReadPart10(r io.Reader) (*dcm.File, error) {
	f, err := dcm.ReadPart10(r, dcm.ParseOptions{})
	if err != nil {
		// A syntax the parser cannot read fails it before the pixels do: name the syntax, which
		// is what the user can act on.
		if f != nil && !f.NoMeta && f.Meta.TransferSyntaxUID != "" && !Decodable(f.Meta.TransferSyntaxUID) {
			return nil, unsupported(f.Meta.TransferSyntaxUID)
		}
		return nil, err
	}
	return f, nil
}

// LUT is a lookup table as PS3.3 C.11.1 describes it: Data[i] maps input First+i; inputs
// below First take Data[0] and above the end take the last entry.
type LUT struct {
	First int
	Bits  int
	Data  []uint16
}

// Lookup maps one value through the table.
func (l *LUT) Lookup(v int) uint16 {
	i := v - l.First
	if i < 0 {
		i = 0
	} else if i >= len(l.Data) {
		i = len(l.Data) - 1
	}
	return l.Data[i]
}

// Window is a VOI window (PS3.3 C.11.2.1.2).
type Window struct {
	Center, Width float64
	// Function is LINEAR (the default), LINEAR_EXACT or SIGMOID.
	Function string
}

// FrameTransform is the grayscale transform of one frame of an enhanced multi-frame image.
type FrameTransform struct {
	RescaleSlope, RescaleIntercept float64
	Windows                        []Window
}

// Info holds the attributes of the Image Pixel module and the LUTs that pre-processing needs.
type Info struct {
	TransferSyntax      string
	Rows, Columns       int
	SamplesPerPixel     int
	BitsAllocated       int
	BitsStored          int
	HighBit             int
	PixelRepresentation int
	PlanarConfiguration int
	NumberOfFrames      int
	Photometric         string
	Modality            string

	// RescaleSlope and RescaleIntercept are 1 and 0 when the data set has none.
	RescaleSlope, RescaleIntercept float64
	ModalityLUT                    *LUT
	VOILUT                         *LUT
	Windows                        []Window
	// Palette holds the red, green and blue tables of PALETTE COLOR images.
	Palette *[3]LUT
	// PerFrame holds, for enhanced multi-frame images, each frame's rescale and windows from
	// the shared and per-frame functional groups (PS3.3 C.7.6.16); nil for other images.
	PerFrame []FrameTransform

	byteOrder binary.ByteOrder
}

// Signed reports whether stored values are two's complement.
func (in *Info) Signed() bool { return in.PixelRepresentation == 1 }

// Image is a DICOM image whose frames can be decoded one at a time. It is safe for concurrent
// use: decoding a frame does not modify it.
type Image struct {
	Info
	native    []byte
	fragments [][]byte
	frames    [][]byte // encapsulated frames, once split
}

// NewImage reads the pixel attributes and the raw pixel data of a file dcm read whole (ReadFile,
// or dcm.ReadFile without skipping values). A bare data set (no file meta) counts as implicit VR
// little endian unless its meta says otherwise.
func NewImage(f *dcm.File) (*Image, error) {
	ds := f.DataSet
	im := &Image{}
	in := &im.Info
	var err error
	in.TransferSyntax = f.Meta.TransferSyntaxUID
	if in.TransferSyntax == "" {
		// ACR-NEMA files and data sets received over the network carry no meta header.
		in.TransferSyntax = dcm.ImplicitVRLittleEndian
	}
	in.byteOrder = binary.ByteOrder(binary.LittleEndian)
	if f.TransferSyntax().BigEndian {
		in.byteOrder = binary.BigEndian
	}
	for _, f := range []struct {
		t   dcm.Tag
		dst *int
		def int
	}{
		{dcm.Rows, &in.Rows, -1}, {dcm.Columns, &in.Columns, -1}, {dcm.BitsAllocated, &in.BitsAllocated, -1},
		{dcm.SamplesPerPixel, &in.SamplesPerPixel, 1}, {dcm.BitsStored, &in.BitsStored, 0}, {dcm.HighBit, &in.HighBit, -1},
		{dcm.PixelRepresentation, &in.PixelRepresentation, 0}, {dcm.PlanarConfiguration, &in.PlanarConfiguration, 0},
		{dcm.NumberOfFrames, &in.NumberOfFrames, 1},
	} {
		if *f.dst, err = integer(ds, f.t, f.def); err != nil {
			return nil, err
		}
	}
	if in.BitsStored == 0 {
		in.BitsStored = in.BitsAllocated
	}
	if in.HighBit < 0 {
		in.HighBit = in.BitsStored - 1
	}
	in.Photometric = strings.ToUpper(str(ds, dcm.PhotometricInterpretation))
	in.Modality = str(ds, dcm.Modality)
	if err := in.validate(); err != nil {
		return nil, err
	}
	if err := in.readLUTs(ds); err != nil {
		return nil, err
	}

	e := ds.Find(dcm.PixelData)
	switch {
	case e == nil:
		return nil, errors.New("the data set has no Pixel Data (7FE0,0010)")
	case e.Skipped:
		return nil, errors.New("the pixel data was skipped when the file was read; read it with pixel.ReadFile")
	case e.Fragments != nil:
		if len(e.Fragments) > 0 {
			im.fragments = e.Fragments[1:]
		}
		if Decodable(in.TransferSyntax) {
			// Splitting here keeps Frame free of writes, so an Image can serve goroutines.
			if im.frames, err = splitPixelData(ds, e, im.fragments, in); err != nil {
				return nil, err
			}
		}
	default:
		im.native = e.Value
		if in.byteOrder == binary.BigEndian && in.BitsAllocated <= 8 && e.VR == "OW" {
			// Big endian OW swaps every pair of bytes, 8-bit samples included (PS3.5 8.1.1);
			// swap a copy back so that samples are in order.
			im.native = swapPairs(im.native)
		}
	}
	return im, nil
}

// NewEncapsulatedImage builds an Image from attributes and pixel data fragments obtained
// elsewhere (a network peer, a store), with the Basic Offset Table when there is one.
func NewEncapsulatedImage(in Info, offsets []uint32, fragments [][]byte) (*Image, error) {
	if in.byteOrder == nil {
		in.byteOrder = binary.LittleEndian
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	im := &Image{Info: in, fragments: fragments}
	frames, err := SplitFrames(fragments, offsets, in.NumberOfFrames, FrameStart(in.TransferSyntax))
	if err != nil {
		return nil, err
	}
	im.frames = frames
	return im, nil
}

func (in *Info) validate() error {
	switch {
	case in.Rows <= 0 || in.Columns <= 0:
		return fmt.Errorf("image has %dx%d pixels (Rows, Columns missing or zero)", in.Rows, in.Columns)
	case in.Rows*in.Columns > maxFramePixels:
		return fmt.Errorf("frames of %dx%d pixels are larger than this node decodes (%d pixels)", in.Columns, in.Rows, maxFramePixels)
	case in.SamplesPerPixel != 1 && in.SamplesPerPixel != 3:
		return fmt.Errorf("SamplesPerPixel %d is neither 1 nor 3", in.SamplesPerPixel)
	case in.BitsAllocated != 1 && in.BitsAllocated != 8 && in.BitsAllocated != 16 && in.BitsAllocated != 32:
		return fmt.Errorf("BitsAllocated %d is not 1, 8, 16 or 32", in.BitsAllocated)
	case in.BitsStored < 1 || in.BitsStored > in.BitsAllocated:
		return fmt.Errorf("BitsStored %d is outside 1..BitsAllocated (%d)", in.BitsStored, in.BitsAllocated)
	case in.HighBit < in.BitsStored-1 || in.HighBit >= in.BitsAllocated:
		return fmt.Errorf("HighBit %d does not fit BitsStored %d in BitsAllocated %d", in.HighBit, in.BitsStored, in.BitsAllocated)
	case in.PixelRepresentation != 0 && in.PixelRepresentation != 1:
		return fmt.Errorf("PixelRepresentation %d is neither 0 nor 1", in.PixelRepresentation)
	case in.NumberOfFrames < 1:
		return fmt.Errorf("NumberOfFrames %d is less than 1", in.NumberOfFrames)
	case in.NumberOfFrames > 1<<20:
		return fmt.Errorf("NumberOfFrames %d is implausibly large", in.NumberOfFrames)
	}
	return nil
}

func (in *Info) readLUTs(ds *dcm.DataSet) error {
	var err error
	in.RescaleSlope, in.RescaleIntercept = 1, 0
	if v, ok, err := decimal(ds, dcm.RescaleSlope, 0); err != nil {
		return err
	} else if ok && v != 0 {
		in.RescaleSlope = v
	}
	if v, ok, err := decimal(ds, dcm.RescaleIntercept, 0); err != nil {
		return err
	} else if ok {
		in.RescaleIntercept = v
	}
	// The Modality LUT's input is the stored value, signed when the pixels are; the VOI LUT's
	// input is the modality value, which a signed LUT descriptor marks the same way.
	if in.ModalityLUT, err = lutFromSequence(ds, dcm.ModalityLUTSequence, in.byteOrder, in.Signed()); err != nil {
		return fmt.Errorf("modality LUT: %w", err)
	}
	if in.VOILUT, err = lutFromSequence(ds, dcm.VOILUTSequence, in.byteOrder, in.Signed() || in.RescaleIntercept < 0); err != nil {
		return fmt.Errorf("VOI LUT: %w", err)
	}
	centers, _ := ds.Floats(dcm.WindowCenter)
	widths, _ := ds.Floats(dcm.WindowWidth)
	fn := str(ds, dcm.VOILUTFunction)
	for i := range min(len(centers), len(widths)) {
		if widths[i] > 0 {
			in.Windows = append(in.Windows, Window{Center: centers[i], Width: widths[i], Function: strings.ToUpper(fn)})
		}
	}
	if err := in.readFunctionalGroups(ds); err != nil {
		return err
	}
	if in.Photometric == "PALETTE COLOR" {
		if in.Palette, err = readPalette(ds, in.byteOrder); err != nil {
			return fmt.Errorf("palette: %w", err)
		}
	}
	return nil
}

// readFunctionalGroups fills PerFrame: the top-level values, overridden by the shared
// functional groups, overridden by each frame's own.
func (in *Info) readFunctionalGroups(ds *dcm.DataSet) error {
	shared := ds.Items(dcm.SharedFunctionalGroupsSequence)
	perFrame := ds.Items(dcm.PerFrameFunctionalGroupsSequence)
	if len(shared) == 0 && len(perFrame) == 0 {
		return nil
	}
	base := FrameTransform{RescaleSlope: in.RescaleSlope, RescaleIntercept: in.RescaleIntercept, Windows: in.Windows}
	if len(shared) > 0 {
		if err := applyGroups(shared[0], &base); err != nil {
			return fmt.Errorf("shared functional groups: %w", err)
		}
	}
	in.PerFrame = make([]FrameTransform, in.NumberOfFrames)
	for i := range in.PerFrame {
		in.PerFrame[i] = base
		if i < len(perFrame) {
			if err := applyGroups(perFrame[i], &in.PerFrame[i]); err != nil {
				return fmt.Errorf("per-frame functional groups, frame %d: %w", i+1, err)
			}
		}
	}
	return nil
}

func applyGroups(item *dcm.DataSet, ft *FrameTransform) error {
	if pvt := item.Items(dcm.PixelValueTransformationSequence); len(pvt) > 0 {
		if v, ok, err := decimal(pvt[0], dcm.RescaleSlope, 0); err != nil {
			return err
		} else if ok && v != 0 {
			ft.RescaleSlope = v
		}
		if v, ok, err := decimal(pvt[0], dcm.RescaleIntercept, 0); err != nil {
			return err
		} else if ok {
			ft.RescaleIntercept = v
		}
	}
	if voi := item.Items(dcm.FrameVOILUTSequence); len(voi) > 0 {
		centers, _ := voi[0].Floats(dcm.WindowCenter)
		widths, _ := voi[0].Floats(dcm.WindowWidth)
		fn := str(voi[0], dcm.VOILUTFunction)
		var ws []Window
		for i := range min(len(centers), len(widths)) {
			if widths[i] > 0 {
				ws = append(ws, Window{Center: centers[i], Width: widths[i], Function: strings.ToUpper(fn)})
			}
		}
		if len(ws) > 0 {
			ft.Windows = ws
		}
	}
	return nil
}

func readPalette(ds *dcm.DataSet, bo binary.ByteOrder) (*[3]LUT, error) {
	var pal [3]LUT
	descs := []dcm.Tag{dcm.RedPaletteColorLookupTableDescriptor, dcm.GreenPaletteColorLookupTableDescriptor, dcm.BluePaletteColorLookupTableDescriptor}
	datas := []dcm.Tag{dcm.RedPaletteColorLookupTableData, dcm.GreenPaletteColorLookupTableData, dcm.BluePaletteColorLookupTableData}
	segs := []dcm.Tag{dcm.SegmentedRedPaletteColorLookupTableData, dcm.SegmentedGreenPaletteColorLookupTableData, dcm.SegmentedBluePaletteColorLookupTableData}
	for c := range 3 {
		e := ds.Find(descs[c])
		if e == nil {
			return nil, fmt.Errorf("descriptor %v missing", descs[c])
		}
		n, first, bits, err := lutDescriptor(e)
		if err != nil {
			return nil, err
		}
		raw := ds.Bytes(datas[c])
		if raw == nil {
			seg := ds.Bytes(segs[c])
			if seg == nil {
				return nil, fmt.Errorf("neither %v nor segmented %v present", datas[c], segs[c])
			}
			data, err := expandSegmented(words(seg, bo), n)
			if err != nil {
				return nil, fmt.Errorf("segmented table %v: %w", segs[c], err)
			}
			pal[c] = LUT{First: first, Bits: bits, Data: data}
			continue
		}
		data, err := lutData(raw, n, bits, bo)
		if err != nil {
			return nil, fmt.Errorf("table %v: %w", datas[c], err)
		}
		pal[c] = LUT{First: first, Bits: bits, Data: data}
	}
	return &pal, nil
}

// lutDescriptor reads (entries, first mapped value, bits) where 0 entries means 65536
// (PS3.3 C.11.1.1). The first value is US or SS by context; values above 32767 only make
// sense as signed when the table is for signed input, which callers sort out by clamping.
func lutDescriptor(e *dcm.Element) (n, first, bits int, err error) {
	var v []int
	if ints, ierr := e.Ints(); ierr == nil {
		for _, x := range ints {
			v = append(v, int(x))
		}
	} else if len(e.Value) == 6 {
		// Not a number VR (an OW, say): three 16-bit words.
		b := e.Value
		v = []int{int(binary.LittleEndian.Uint16(b)), int(binary.LittleEndian.Uint16(b[2:])), int(binary.LittleEndian.Uint16(b[4:]))}
	}
	if len(v) != 3 {
		return 0, 0, 0, fmt.Errorf("LUT descriptor %v is %q, want 3 numbers", e.Tag, e.Text())
	}
	n, first, bits = v[0], v[1], v[2]
	if n == 0 {
		n = 65536
	}
	if n < 0 || n > 65536 {
		return 0, 0, 0, fmt.Errorf("LUT descriptor %v: %d entries", e.Tag, v[0])
	}
	if bits != 8 && bits != 16 && (bits < 1 || bits > 16) {
		return 0, 0, 0, fmt.Errorf("LUT descriptor %v: %d bits per entry", e.Tag, bits)
	}
	return n, first, bits, nil
}

// lutData reads n entries. Tables declared 8-bit are normally stored one entry per 16-bit word,
// but some writers pack two 8-bit entries per word; the data length tells which.
func lutData(raw []byte, n, bits int, bo binary.ByteOrder) ([]uint16, error) {
	out := make([]uint16, n)
	switch {
	case len(raw) >= 2*n:
		for i := range n {
			out[i] = bo.Uint16(raw[2*i:])
		}
		if bits == 8 {
			for i := range out {
				// Some writers put 8-bit entries in the high byte of each word.
				if out[i] > 255 {
					out[i] >>= 8
				}
			}
		}
	case bits == 8 && len(raw) >= n:
		for i := range n {
			out[i] = uint16(raw[i])
		}
	default:
		return nil, fmt.Errorf("%d bytes of table data for %d entries", len(raw), n)
	}
	return out, nil
}

func words(raw []byte, bo binary.ByteOrder) []uint16 {
	out := make([]uint16, len(raw)/2)
	for i := range out {
		out[i] = bo.Uint16(raw[2*i:])
	}
	return out
}

// expandSegmented expands a segmented palette table (PS3.3 C.7.9.2): discrete segments (opcode
// 0), linear segments from the previous value (1) and indirect references to earlier segments (2).
func expandSegmented(seg []uint16, n int) ([]uint16, error) {
	out := make([]uint16, 0, n)
	var starts []int // index into seg of every segment, for indirect references
	var expand func(seg []uint16, depth int) error
	expand = func(seg []uint16, depth int) error {
		if depth > 2 {
			return errors.New("indirect segment refers to an indirect segment")
		}
		for i := 0; i < len(seg); {
			if depth == 0 {
				starts = append(starts, i)
			}
			if i+1 >= len(seg) {
				return errors.New("truncated segment header")
			}
			op, length := seg[i], int(seg[i+1])
			switch op {
			case 0:
				if i+2+length > len(seg) {
					return errors.New("discrete segment runs past the data")
				}
				out = append(out, seg[i+2:i+2+length]...)
				i += 2 + length
			case 1:
				if len(out) == 0 || i+2 >= len(seg) {
					return errors.New("linear segment without a previous value")
				}
				y0, y1 := float64(out[len(out)-1]), float64(seg[i+2])
				for k := 1; k <= length; k++ {
					out = append(out, uint16(y0+(y1-y0)*float64(k)/float64(length)+0.5))
				}
				i += 3
			case 2:
				if depth > 0 || i+3 >= len(seg) {
					return errors.New("bad indirect segment")
				}
				off := int(seg[i+2]) | int(seg[i+3])<<16
				if off < 0 || off >= len(starts) || off+length > len(starts) {
					return fmt.Errorf("indirect segment refers to segments %d..%d of %d", off, off+length, len(starts))
				}
				for k := off; k < off+length; k++ {
					end := len(seg)
					if k+1 < len(starts) {
						end = starts[k+1]
					}
					if err := expand(seg[starts[k]:end], depth+1); err != nil {
						return err
					}
				}
				i += 4
			default:
				return fmt.Errorf("unknown segment opcode %d", op)
			}
			if len(out) > n {
				return fmt.Errorf("segments expand past %d entries", n)
			}
		}
		return nil
	}
	if err := expand(seg, 0); err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("segments expand to %d entries, descriptor says %d", len(out), n)
	}
	return out, nil
}

func lutFromSequence(ds *dcm.DataSet, t dcm.Tag, bo binary.ByteOrder, signedInput bool) (*LUT, error) {
	items := ds.Items(t)
	if len(items) == 0 {
		return nil, nil
	}
	item := items[0]
	de := item.Find(dcm.LUTDescriptor)
	if de == nil {
		return nil, errors.New("LUT Descriptor missing")
	}
	n, first, bits, err := lutDescriptor(de)
	if err != nil {
		return nil, err
	}
	if signedInput && first > 32767 {
		// The first mapped value is US or SS by context (PS3.3 C.11.1.1); read as US, a
		// negative SS value comes out above 32767.
		first -= 65536
	}
	le := item.Find(dcm.LUTData)
	if le == nil || len(le.Value) == 0 {
		return nil, errors.New("LUT Data missing")
	}
	if vr := le.VR; vr == "US" || vr == "SS" {
		// LUT Data is US or OW; as US its entries are numbers, each one word.
		v, err := le.Ints()
		if err != nil || len(v) < n {
			return nil, errors.New("LUT Data missing")
		}
		data := make([]uint16, n)
		for i := range n {
			data[i] = uint16(v[i])
		}
		return &LUT{First: first, Bits: bits, Data: data}, nil
	}
	raw := le.Value
	data, err := lutData(raw, n, bits, bo)
	if err != nil {
		return nil, err
	}
	return &LUT{First: first, Bits: bits, Data: data}, nil
}

// str returns the first value of a text attribute, "" when absent.
func str(ds *dcm.DataSet, t dcm.Tag) string {
	if v := ds.Strings(t); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// integer returns an attribute's first value; def when absent or empty, or an error when def is
// negative (the attribute is required).
func integer(ds *dcm.DataSet, t dcm.Tag, def int) (int, error) {
	e := ds.Find(t)
	switch {
	case e == nil && def < 0:
		return 0, fmt.Errorf("%s %v is missing", tagName(t), t)
	case e == nil:
		return def, nil
	}
	n, err := e.Int()
	switch {
	case errors.Is(err, dcm.ErrNoValue) && def < 0:
		return 0, fmt.Errorf("%s %v is empty", tagName(t), t)
	case errors.Is(err, dcm.ErrNoValue):
		return def, nil
	case err != nil:
		return 0, err
	}
	return int(n), nil
}

// decimal returns an attribute's first number, and whether it has one: def when absent or empty.
func decimal(ds *dcm.DataSet, t dcm.Tag, def float64) (float64, bool, error) {
	v, err := ds.Floats(t)
	switch {
	case errors.Is(err, dcm.ErrNoValue):
		return def, false, nil
	case err != nil:
		return def, false, err
	}
	return v[0], true, nil
}

func tagName(t dcm.Tag) string {
	if n := t.Name(); n != "" {
		return n
	}
	return "element"
}

func swapPairs(b []byte) []byte {
	out := make([]byte, len(b))
	for i := 0; i+1 < len(b); i += 2 {
		out[i], out[i+1] = b[i+1], b[i]
	}
	if len(b)%2 == 1 {
		out[len(b)-1] = b[len(b)-1]
	}
	return out
}
