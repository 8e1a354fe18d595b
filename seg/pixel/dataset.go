// Package pixel turns the pixel data of a DICOM image into what the model takes and turns the
// model's logits back into a mask on the source image. It decodes native pixel data (every bit
// depth, signed and unsigned, both planar configurations, multi-frame), RLE Lossless and
// 8-bit JPEG Baseline itself: the dataset comes from github.com/suyashkumar/dicom with the pixel
// data read raw, because that library's own pixel decoding mishandles several of these cases
// and treats every encapsulated fragment as a frame.
package pixel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Transfer syntaxes this package decodes.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	RLELossless                    = "1.2.840.10008.1.2.5"
	JPEGBaseline8Bit               = "1.2.840.10008.1.2.4.50"
)

// transferSyntaxNames gives the PS3.6 names used in "unsupported transfer syntax" errors.
var transferSyntaxNames = map[string]string{
	ImplicitVRLittleEndian:         "Implicit VR Little Endian",
	ExplicitVRLittleEndian:         "Explicit VR Little Endian",
	DeflatedExplicitVRLittleEndian: "Deflated Explicit VR Little Endian",
	ExplicitVRBigEndian:            "Explicit VR Big Endian",
	RLELossless:                    "RLE Lossless",
	JPEGBaseline8Bit:               "JPEG Baseline (Process 1)",
	"1.2.840.10008.1.2.4.51":       "JPEG Extended (Process 2 & 4)",
	"1.2.840.10008.1.2.4.57":       "JPEG Lossless, Non-Hierarchical (Process 14)",
	"1.2.840.10008.1.2.4.70":       "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
	"1.2.840.10008.1.2.4.80":       "JPEG-LS Lossless Image Compression",
	"1.2.840.10008.1.2.4.81":       "JPEG-LS Lossy (Near-Lossless) Image Compression",
	"1.2.840.10008.1.2.4.90":       "JPEG 2000 Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.91":       "JPEG 2000 Image Compression",
	"1.2.840.10008.1.2.4.92":       "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.93":       "JPEG 2000 Part 2 Multi-component Image Compression",
	"1.2.840.10008.1.2.4.100":      "MPEG2 Main Profile / Main Level",
	"1.2.840.10008.1.2.4.101":      "MPEG2 Main Profile / High Level",
	"1.2.840.10008.1.2.4.102":      "MPEG-4 AVC/H.264 High Profile / Level 4.1",
	"1.2.840.10008.1.2.4.103":      "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
	"1.2.840.10008.1.2.4.110":      "JPEG XL Lossless",
	"1.2.840.10008.1.2.4.111":      "JPEG XL JPEG Recompression",
	"1.2.840.10008.1.2.4.112":      "JPEG XL",
	"1.2.840.10008.1.2.4.201":      "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.202":      "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.203":      "High-Throughput JPEG 2000 Image Compression",
	"1.2.840.10008.1.2.8.1":        "SMPTE ST 2110-20 Uncompressed Progressive Active Video",
}

// TransferSyntaxName returns the PS3.6 name of a transfer syntax, or "unknown".
func TransferSyntaxName(uid string) string {
	if n, ok := transferSyntaxNames[uid]; ok {
		return n
	}
	return "unknown"
}

// maxFramePixels bounds the pixels of one frame (8192 x 8192): decoding allocates a frame
// before the data proves it is that large, so the bound keeps hostile headers from costing
// gigabytes. Radiographs and mammograms are well inside it; slides come as tiles.
const maxFramePixels = 1 << 26

// ErrUnsupportedTransferSyntax is wrapped by the error for pixel data this package cannot decode.
var ErrUnsupportedTransferSyntax = errors.New("unsupported transfer syntax")

func unsupported(uid string) error {
	return fmt.Errorf("%w %s (%s)", ErrUnsupportedTransferSyntax, uid, TransferSyntaxName(uid))
}

// Decodable reports whether this package decodes pixel data in the transfer syntax uid.
func Decodable(uid string) bool {
	switch uid {
	case ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, RLELossless, JPEGBaseline8Bit:
		return true
	}
	return false
}

// ReadFile parses a DICOM file, keeping the pixel data as raw bytes for this package to decode.
// A file whose transfer syntax this package cannot decode gives the unsupported-syntax error
// even when the parser also fails on it.
func ReadFile(path string) (dicom.Dataset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return dicom.Dataset{}, err
	}
	ds, err := ParseBytes(data)
	if err == nil {
		return ds, nil
	}
	if ts := metaTransferSyntax(bytes.NewReader(data), int64(len(data))); ts != "" && !Decodable(ts) {
		return dicom.Dataset{}, fmt.Errorf("read %s: %w", path, unsupported(ts))
	}
	return dicom.Dataset{}, fmt.Errorf("read %s: %w", path, err)
}

// Parse parses a DICOM stream of size bytes; see ParseBytes.
func Parse(r io.Reader, size int64) (dicom.Dataset, error) {
	data, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("parse DICOM: %w", err)
	}
	return ParseBytes(data)
}

// ParseBytes parses a Part 10 file (or a bare data set) with the pixel data kept raw. The
// input may come from the network, and the parser trusts it: every length is first checked
// against the bytes present (the parser allocates before it reads), and a parser panic (an
// unknown transfer syntax, truncated data) becomes an error.
func ParseBytes(data []byte) (ds dicom.Dataset, err error) {
	if err := checkLengths(data); err != nil {
		return dicom.Dataset{}, fmt.Errorf("parse DICOM: %w: %w", errMalformed, err)
	}
	defer func() {
		if p := recover(); p != nil {
			ds, err = dicom.Dataset{}, fmt.Errorf("parse DICOM: parser failed: %v", p)
		}
	}()
	ds, err = dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("parse DICOM: %w", err)
	}
	return ds, nil
}

// errMalformed marks data whose structure is inconsistent (lengths past the end, stray items).
var errMalformed = errors.New("malformed DICOM data")

// metaTransferSyntax reads only the file meta information and returns its transfer syntax.
func metaTransferSyntax(r io.Reader, size int64) (ts string) {
	defer func() {
		if recover() != nil {
			ts = ""
		}
	}()
	p, err := dicom.NewParser(r, size, nil, dicom.SkipPixelData())
	if err != nil {
		return ""
	}
	ts, _ = str(p.GetMetadata(), tag.TransferSyntaxUID)
	return ts
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

// NewImage reads the pixel attributes and the raw pixel data of a data set that ReadFile (or
// dicom.Parse with SkipProcessingPixelDataValue) produced.
func NewImage(ds dicom.Dataset) (*Image, error) {
	im := &Image{}
	in := &im.Info
	var err error
	in.TransferSyntax, _ = str(ds, tag.TransferSyntaxUID)
	if in.TransferSyntax == "" {
		// ACR-NEMA files and data sets received over the network carry no meta header; the
		// parser read them as implicit VR little endian.
		in.TransferSyntax = ImplicitVRLittleEndian
	}
	in.byteOrder = binary.ByteOrder(binary.LittleEndian)
	if in.TransferSyntax == ExplicitVRBigEndian {
		in.byteOrder = binary.BigEndian
	}
	for _, f := range []struct {
		t   tag.Tag
		dst *int
		def int
	}{
		{tag.Rows, &in.Rows, -1}, {tag.Columns, &in.Columns, -1}, {tag.BitsAllocated, &in.BitsAllocated, -1},
		{tag.SamplesPerPixel, &in.SamplesPerPixel, 1}, {tag.BitsStored, &in.BitsStored, 0}, {tag.HighBit, &in.HighBit, -1},
		{tag.PixelRepresentation, &in.PixelRepresentation, 0}, {tag.PlanarConfiguration, &in.PlanarConfiguration, 0},
		{tag.NumberOfFrames, &in.NumberOfFrames, 1},
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
	in.Photometric, _ = str(ds, tag.PhotometricInterpretation)
	in.Photometric = strings.ToUpper(strings.TrimSpace(in.Photometric))
	in.Modality, _ = str(ds, tag.Modality)
	if err := in.validate(); err != nil {
		return nil, err
	}
	if err := in.readLUTs(ds); err != nil {
		return nil, err
	}

	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return nil, errors.New("the data set has no Pixel Data (7FE0,0010)")
	}
	pd, ok := e.Value.GetValue().(dicom.PixelDataInfo)
	if !ok {
		return nil, fmt.Errorf("pixel data value is %T, not pixel data", e.Value.GetValue())
	}
	switch {
	case pd.IntentionallySkipped:
		return nil, errors.New("the pixel data was skipped when parsing; parse with pixel.ReadFile or dicom.SkipProcessingPixelDataValue")
	case pd.IsEncapsulated:
		for _, f := range pd.Frames {
			im.fragments = append(im.fragments, f.EncapsulatedData.Data)
		}
		if Decodable(in.TransferSyntax) {
			// The parser drops the Basic Offset Table, so frames come from the fragment rules.
			// Splitting here keeps Frame free of writes, so an Image can serve goroutines.
			if im.frames, err = SplitFrames(im.fragments, nil, in.NumberOfFrames, in.TransferSyntax != RLELossless); err != nil {
				return nil, err
			}
		}
	case pd.IntentionallyUnprocessed:
		im.native = pd.UnprocessedValueData
		if in.byteOrder == binary.BigEndian && in.BitsAllocated <= 8 && e.RawValueRepresentation == "OW" {
			// Big endian OW swaps every pair of bytes, 8-bit samples included (PS3.5 8.1.1);
			// swap a copy back so that samples are in order.
			im.native = swapPairs(im.native)
		}
	default:
		return nil, errors.New("the pixel data was decoded when parsing; parse with pixel.ReadFile or dicom.SkipProcessingPixelDataValue")
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
	frames, err := SplitFrames(fragments, offsets, in.NumberOfFrames, in.TransferSyntax != RLELossless)
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

func (in *Info) readLUTs(ds dicom.Dataset) error {
	var err error
	in.RescaleSlope, in.RescaleIntercept = 1, 0
	if v, ok, err := decimal(ds, tag.RescaleSlope, 0); err != nil {
		return err
	} else if ok && v != 0 {
		in.RescaleSlope = v
	}
	if v, ok, err := decimal(ds, tag.RescaleIntercept, 0); err != nil {
		return err
	} else if ok {
		in.RescaleIntercept = v
	}
	// The Modality LUT's input is the stored value, signed when the pixels are; the VOI LUT's
	// input is the modality value, which a signed LUT descriptor marks the same way.
	if in.ModalityLUT, err = lutFromSequence(ds, tag.ModalityLUTSequence, in.byteOrder, in.Signed()); err != nil {
		return fmt.Errorf("modality LUT: %w", err)
	}
	if in.VOILUT, err = lutFromSequence(ds, tag.VOILUTSequence, in.byteOrder, in.Signed() || in.RescaleIntercept < 0); err != nil {
		return fmt.Errorf("VOI LUT: %w", err)
	}
	centers, _ := decimals(ds, tag.WindowCenter)
	widths, _ := decimals(ds, tag.WindowWidth)
	fn, _ := str(ds, tag.VOILUTFunction)
	for i := range min(len(centers), len(widths)) {
		if widths[i] > 0 {
			in.Windows = append(in.Windows, Window{Center: centers[i], Width: widths[i], Function: strings.ToUpper(strings.TrimSpace(fn))})
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

// Functional group sequences of enhanced multi-frame images and the macros read from them.
var (
	sharedFunctionalGroups   = tag.Tag{Group: 0x5200, Element: 0x9229}
	perFrameFunctionalGroups = tag.Tag{Group: 0x5200, Element: 0x9230}
	frameVOILUTSequence      = tag.Tag{Group: 0x0028, Element: 0x9132}
	pixelValueTransformation = tag.Tag{Group: 0x0028, Element: 0x9145}
)

// readFunctionalGroups fills PerFrame: the top-level values, overridden by the shared
// functional groups, overridden by each frame's own.
func (in *Info) readFunctionalGroups(ds dicom.Dataset) error {
	shared := sequenceItems(ds, sharedFunctionalGroups)
	perFrame := sequenceItems(ds, perFrameFunctionalGroups)
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

func applyGroups(item dicom.Dataset, ft *FrameTransform) error {
	if pvt := sequenceItems(item, pixelValueTransformation); len(pvt) > 0 {
		if v, ok, err := decimal(pvt[0], tag.RescaleSlope, 0); err != nil {
			return err
		} else if ok && v != 0 {
			ft.RescaleSlope = v
		}
		if v, ok, err := decimal(pvt[0], tag.RescaleIntercept, 0); err != nil {
			return err
		} else if ok {
			ft.RescaleIntercept = v
		}
	}
	if voi := sequenceItems(item, frameVOILUTSequence); len(voi) > 0 {
		centers, _ := decimals(voi[0], tag.WindowCenter)
		widths, _ := decimals(voi[0], tag.WindowWidth)
		fn, _ := str(voi[0], tag.VOILUTFunction)
		var ws []Window
		for i := range min(len(centers), len(widths)) {
			if widths[i] > 0 {
				ws = append(ws, Window{Center: centers[i], Width: widths[i], Function: strings.ToUpper(strings.TrimSpace(fn))})
			}
		}
		if len(ws) > 0 {
			ft.Windows = ws
		}
	}
	return nil
}

// sequenceItems returns the items of a sequence element as data sets.
func sequenceItems(ds dicom.Dataset, t tag.Tag) []dicom.Dataset {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return nil
	}
	items, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok {
		return nil
	}
	out := make([]dicom.Dataset, 0, len(items))
	for _, it := range items {
		if elems, ok := it.GetValue().([]*dicom.Element); ok {
			out = append(out, dicom.Dataset{Elements: elems})
		}
	}
	return out
}

func readPalette(ds dicom.Dataset, bo binary.ByteOrder) (*[3]LUT, error) {
	var pal [3]LUT
	descs := []tag.Tag{{Group: 0x0028, Element: 0x1101}, {Group: 0x0028, Element: 0x1102}, {Group: 0x0028, Element: 0x1103}}
	datas := []tag.Tag{{Group: 0x0028, Element: 0x1201}, {Group: 0x0028, Element: 0x1202}, {Group: 0x0028, Element: 0x1203}}
	segs := []tag.Tag{{Group: 0x0028, Element: 0x1221}, {Group: 0x0028, Element: 0x1222}, {Group: 0x0028, Element: 0x1223}}
	for c := range 3 {
		e, err := ds.FindElementByTag(descs[c])
		if err != nil {
			return nil, fmt.Errorf("descriptor %v missing", descs[c])
		}
		n, first, bits, err := lutDescriptor(e)
		if err != nil {
			return nil, err
		}
		raw, rawErr := byteValue(ds, datas[c])
		if rawErr != nil {
			seg, err := byteValue(ds, segs[c])
			if err != nil {
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
func lutDescriptor(e *dicom.Element) (n, first, bits int, err error) {
	v, ok := e.Value.GetValue().([]int)
	if !ok || len(v) != 3 {
		if b, isBytes := e.Value.GetValue().([]byte); isBytes && len(b) == 6 {
			v = []int{int(binary.LittleEndian.Uint16(b)), int(binary.LittleEndian.Uint16(b[2:])), int(binary.LittleEndian.Uint16(b[4:]))}
		} else {
			return 0, 0, 0, fmt.Errorf("LUT descriptor %v is %v, want 3 numbers", e.Tag, e.Value)
		}
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

func lutFromSequence(ds dicom.Dataset, t tag.Tag, bo binary.ByteOrder, signedInput bool) (*LUT, error) {
	items := sequenceItems(ds, t)
	if len(items) == 0 {
		return nil, nil
	}
	item := items[0]
	de, err := item.FindElementByTag(tag.LUTDescriptor)
	if err != nil {
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
	raw, err := byteValue(item, tag.LUTData)
	if err != nil {
		// LUT Data is US or OW; as US the parser returns numbers.
		if ue, err2 := item.FindElementByTag(tag.LUTData); err2 == nil {
			if v, ok := ue.Value.GetValue().([]int); ok && len(v) >= n {
				data := make([]uint16, n)
				for i := range n {
					data[i] = uint16(v[i])
				}
				return &LUT{First: first, Bits: bits, Data: data}, nil
			}
		}
		return nil, errors.New("LUT Data missing")
	}
	data, err := lutData(raw, n, bits, bo)
	if err != nil {
		return nil, err
	}
	return &LUT{First: first, Bits: bits, Data: data}, nil
}

func str(ds dicom.Dataset, t tag.Tag) (string, bool) {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return "", false
	}
	v, ok := e.Value.GetValue().([]string)
	if !ok || len(v) == 0 {
		return "", false
	}
	return strings.TrimRight(strings.TrimSpace(v[0]), "\x00"), true
}

func integer(ds dicom.Dataset, t tag.Tag, def int) (int, error) {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		if def < 0 {
			return 0, fmt.Errorf("%s %v is missing", tagName(t), t)
		}
		return def, nil
	}
	switch v := e.Value.GetValue().(type) {
	case []int:
		if len(v) > 0 {
			return v[0], nil
		}
	case []string:
		if len(v) > 0 {
			n, err := strconv.Atoi(strings.TrimSpace(v[0]))
			if err != nil {
				return 0, fmt.Errorf("%s %v = %q is not an integer", tagName(t), t, v[0])
			}
			return n, nil
		}
	}
	if def < 0 {
		return 0, fmt.Errorf("%s %v is empty", tagName(t), t)
	}
	return def, nil
}

func decimals(ds dicom.Dataset, t tag.Tag) ([]float64, error) {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return nil, err
	}
	var out []float64
	switch v := e.Value.GetValue().(type) {
	case []string:
		for _, s := range v {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, fmt.Errorf("%s %v = %q is not a number", tagName(t), t, s)
			}
			out = append(out, f)
		}
	case []float64:
		out = v
	case []int:
		for _, n := range v {
			out = append(out, float64(n))
		}
	}
	return out, nil
}

func decimal(ds dicom.Dataset, t tag.Tag, def float64) (float64, bool, error) {
	v, err := decimals(ds, t)
	if err != nil || len(v) == 0 {
		if err != nil && !errors.Is(err, dicom.ErrorElementNotFound) {
			return def, false, err
		}
		return def, false, nil
	}
	return v[0], true, nil
}

func byteValue(ds dicom.Dataset, t tag.Tag) ([]byte, error) {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return nil, err
	}
	b, ok := e.Value.GetValue().([]byte)
	if !ok {
		return nil, fmt.Errorf("%v holds %T, not bytes", t, e.Value.GetValue())
	}
	return b, nil
}

func tagName(t tag.Tag) string {
	if info, err := tag.Find(t); err == nil {
		return info.Name
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
