// Package transcode decompresses an instance for a peer that accepts none of the transfer
// syntaxes it is stored in: every frame is decoded (seg/pixel) and the data set rewritten with
// native pixel data, for Explicit (or Implicit) VR Little Endian, as PS3.5 and PS3.3 require of
// the attributes that describe the pixels. scp (C-MOVE, C-GET) and pipeline use it.
package transcode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/pixel"
)

// Decompressible reports whether an instance stored in the transfer syntax ts can be sent
// decompressed: its pixel data is encapsulated and this build decodes it.
func Decompressible(ts string) bool {
	s, ok := dcm.LookupTransferSyntax(ts)
	return ok && s.Encapsulated && pixel.Decodable(ts)
}

// ErrNotDecompressible is wrapped by the error for a syntax Decompressible refuses.
var ErrNotDecompressible = errors.New("cannot decompress")

// Offer lists the transfer syntaxes an instance stored in ts can be sent in, preferred first:
// as stored; Explicit VR Little Endian also as Implicit; a syntax this build decodes also
// decompressed, in Explicit, then Implicit, VR Little Endian (what Orthanc offers). A sender
// proposes them all in one presentation context and sends in the first the peer accepted.
func Offer(ts string) []string {
	switch {
	case ts == dcm.ExplicitVRLittleEndian:
		return []string{ts, dcm.ImplicitVRLittleEndian}
	case Decompressible(ts):
		return []string{ts, dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}
	}
	return []string{ts}
}

// Open returns the data set r, read in the stored syntax, encoded in ts, one of Offer(stored):
// r itself when ts is stored; converted from explicit to implicit VR little endian as it is
// read; or decompressed, every frame decoded before Open returns, so that a frame that fails
// to decode is an error here and not in the middle of a send. Closing the result ends a
// conversion under way; it does not close r.
func Open(r io.Reader, stored, ts string, lim dcm.Limits) (io.ReadCloser, error) {
	switch {
	case ts == stored:
		return io.NopCloser(r), nil
	case stored == dcm.ExplicitVRLittleEndian && ts == dcm.ImplicitVRLittleEndian:
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(dcm.ExplicitToImplicit(pw, r)) }()
		return pr, nil
	case ts == dcm.ExplicitVRLittleEndian || ts == dcm.ImplicitVRLittleEndian:
		ds, err := Read(r, stored, lim)
		if err != nil {
			return nil, err
		}
		b, err := dcm.Encode(ds, ts)
		if err != nil {
			return nil, fmt.Errorf("decompress: encode in %s: %w", dcm.TransferSyntaxName(ts), err)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return nil, fmt.Errorf("cannot convert from %s (%s) to %s (%s)", stored, dcm.TransferSyntaxName(stored), ts, dcm.TransferSyntaxName(ts))
}

// Read reads a data set stored in the encapsulated syntax ts and returns it decompressed
// (Decompress).
func Read(r io.Reader, ts string, lim dcm.Limits) (*dcm.DataSet, error) {
	if !Decompressible(ts) {
		return nil, fmt.Errorf("%w: transfer syntax %s (%s)", ErrNotDecompressible, ts, dcm.TransferSyntaxName(ts))
	}
	ds, err := dcm.ReadDataSet(r, ts, dcm.ParseOptions{Limits: lim})
	if err != nil {
		return nil, fmt.Errorf("decompress: read: %w", err)
	}
	return Decompress(ds, ts, lim)
}

// Decompress returns a copy of ds, read in the encapsulated syntax ts, whose pixel data is
// native, to be written in Explicit or Implicit VR Little Endian:
//
//   - Pixel Data holds every frame, samples interleaved, each value at its High Bit in Bits
//     Allocated (OB for 8 bits, OW above), and the Extended Offset Table is gone;
//   - Photometric Interpretation is what decoding gives (YBR_FULL_422 and YBR_ICT/YBR_RCT
//     become RGB), Planar Configuration 0 for colour;
//   - for the DCT syntaxes (JPEG Baseline and Extended, and JPEG recompressed into JPEG XL),
//     lossy whatever the data set says, Lossy Image Compression is 01, with a Ratio and a
//     Method where the data set lacks them (PS3.3 C.7.6.1.1.5); for the others the data set's own
//     statement stands, since an encoder that compressed lossily set it;
//   - an item of a sequence with encapsulated pixel data of its own (an icon image) is
//     decompressed the same way.
//
// The decoded size (frames x rows x columns x samples x bits allocated) is checked against
// lim.MaxValueLength before anything is decoded. A frame that fails to decode fails the whole.
func Decompress(ds *dcm.DataSet, ts string, lim dcm.Limits) (*dcm.DataSet, error) {
	if !Decompressible(ts) {
		return nil, fmt.Errorf("%w: transfer syntax %s (%s)", ErrNotDecompressible, ts, dcm.TransferSyntaxName(ts))
	}
	if lim.MaxValueLength <= 0 {
		lim.MaxValueLength = dcm.DefaultLimits().MaxValueLength
	}
	return decompress(ds, ts, lim, 0)
}

func decompress(ds *dcm.DataSet, ts string, lim dcm.Limits, depth int) (*dcm.DataSet, error) {
	out := &dcm.DataSet{Elements: make([]dcm.Element, 0, len(ds.Elements)+3)}
	for _, e := range ds.Elements {
		if e.Items != nil && depth < 2 {
			items := make([]*dcm.DataSet, len(e.Items))
			for i, it := range e.Items {
				items[i] = it
				if pd := it.Find(dcm.PixelData); pd != nil && pd.Fragments != nil {
					d, err := decompress(it, ts, lim, depth+1)
					if err != nil {
						return nil, fmt.Errorf("%s item %d: %w", e.Tag, i+1, err)
					}
					items[i] = d
				}
			}
			e.Items = items
		}
		out.Elements = append(out.Elements, e)
	}
	pd := out.Find(dcm.PixelData)
	if pd == nil || pd.Fragments == nil {
		return out, nil
	}
	im, err := pixel.NewImage(&dcm.File{Meta: dcm.FileMeta{TransferSyntaxUID: ts}, NoMeta: true, DataSet: ds})
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if im.BitsAllocated == 1 {
		return nil, fmt.Errorf("decompress: encapsulated 1-bit pixel data")
	}
	frameBytes := int64(im.Rows) * int64(im.Columns) * int64(im.SamplesPerPixel) * int64(im.BitsAllocated/8)
	total := frameBytes * int64(im.NumFrames())
	if total > lim.MaxValueLength || total > 0xFFFFFFFE {
		return nil, fmt.Errorf("decompress: %d frames of %d bytes exceed the limit of %d bytes for a value", im.NumFrames(), frameBytes, lim.MaxValueLength)
	}
	native := make([]byte, total+total%2)
	photometric := ""
	for i := range im.NumFrames() {
		f, err := im.Frame(i)
		if err != nil {
			return nil, fmt.Errorf("decompress: frame %d: %w", i+1, err)
		}
		if photometric == "" {
			photometric = f.Photometric
		} else if f.Photometric != photometric {
			return nil, fmt.Errorf("decompress: frame %d decodes to %s, frame 1 to %s", i+1, f.Photometric, photometric)
		}
		pack(native[int64(i)*frameBytes:int64(i+1)*frameBytes], f.Data, &im.Info)
	}
	vr := "OW"
	if im.BitsAllocated <= 8 {
		vr = "OB"
	}
	compressed := 0
	for _, f := range pd.Fragments {
		compressed += len(f)
	}
	out.Remove(dcm.ExtendedOffsetTable)
	out.Remove(dcm.ExtendedOffsetTableLengths)
	out.Set(dcm.NewBytes(dcm.PixelData, vr, native))
	out.Set(dcm.StrElement(dcm.PhotometricInterpretation, photometric))
	if im.SamplesPerPixel > 1 {
		out.Set(dcm.NewUS(dcm.PlanarConfiguration, 0))
	}
	if method, ok := dctMethod[ts]; ok {
		// Ratio and Method are required with 01; what the data set already has of them
		// (the history of earlier compressions) stands.
		out.Set(dcm.StrElement(dcm.LossyImageCompression, "01"))
		if out.String(dcm.LossyImageCompressionRatio) == "" {
			ratio := float64(total) / float64(max(compressed, 1))
			out.Set(dcm.StrElement(dcm.LossyImageCompressionRatio, strconv.FormatFloat(ratio, 'f', 2, 64)))
		}
		if out.String(dcm.LossyImageCompressionMethod) == "" {
			out.Set(dcm.StrElement(dcm.LossyImageCompressionMethod, method))
		}
	}
	return out, nil
}

// dctMethod holds the syntaxes whose images are always lossy, with their Lossy Image
// Compression Method (PS3.3 C.7.6.1.1.5.1).
var dctMethod = map[string]string{
	dcm.JPEGBaseline8Bit:        "ISO_10918_1",
	dcm.JPEGExtended12Bit:       "ISO_10918_1",
	dcm.JPEGXLJPEGRecompression: "ISO_10918_1",
}

// pack writes a frame's stored values as native little-endian samples at their High Bit.
func pack(dst []byte, values []int32, in *pixel.Info) {
	shift := uint(in.HighBit - in.BitsStored + 1)
	mask := uint32(1)<<uint(in.BitsStored) - 1
	if in.BitsStored >= 32 {
		mask = ^uint32(0)
	}
	switch in.BitsAllocated {
	case 8:
		for i, v := range values {
			dst[i] = byte((uint32(v) & mask) << shift)
		}
	case 16:
		for i, v := range values {
			x := uint16((uint32(v) & mask) << shift)
			dst[2*i], dst[2*i+1] = byte(x), byte(x>>8)
		}
	case 32:
		for i, v := range values {
			x := (uint32(v) & mask) << shift
			dst[4*i], dst[4*i+1], dst[4*i+2], dst[4*i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
		}
	}
}
