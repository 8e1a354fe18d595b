package pixel

import (
	"fmt"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/pixel/codec/charls"
	jpegcodec "github.com/espnode/espnode/seg/pixel/codec/jpeg"
	"github.com/espnode/espnode/seg/pixel/codec/jxl"
	"github.com/espnode/espnode/seg/pixel/codec/openjpeg"
	"github.com/espnode/espnode/seg/pixel/codec/turbojpeg"
)

// family is a group of transfer syntaxes that one decoder serves.
type family int

const (
	famNone family = iota
	famNative
	famRLE
	famJPEG
	famJPEGLS
	famJ2K
	famJXL
)

// families is the one table of what this package decodes, by transfer syntax.
var families = map[string]family{
	dcm.ImplicitVRLittleEndian:         famNative,
	dcm.ExplicitVRLittleEndian:         famNative,
	dcm.DeflatedExplicitVRLittleEndian: famNative,
	dcm.ExplicitVRBigEndian:            famNative,
	dcm.RLELossless:                    famRLE,
	dcm.JPEGBaseline8Bit:               famJPEG,
	dcm.JPEGExtended12Bit:              famJPEG,
	dcm.JPEGLossless:                   famJPEG,
	dcm.JPEGLosslessSV1:                famJPEG,
	dcm.JPEGLSLossless:                 famJPEGLS,
	dcm.JPEGLSNearLossless:             famJPEGLS,
	dcm.JPEG2000Lossless:               famJ2K,
	dcm.JPEG2000:                       famJ2K,
	dcm.HTJ2KLossless:                  famJ2K,
	dcm.HTJ2KLosslessRPCL:              famJ2K,
	dcm.HTJ2K:                          famJ2K,
	dcm.JPEGXLLossless:                 famJXL,
	dcm.JPEGXLJPEGRecompression:        famJXL,
	dcm.JPEGXL:                         famJXL,
}

func (f family) available() bool {
	switch f {
	case famJPEGLS:
		return charls.Available()
	case famJ2K:
		return openjpeg.Available()
	case famJXL:
		return jxl.Available()
	}
	return f != famNone
}

// Decodable reports whether this build decodes pixel data in the transfer syntax uid: the
// syntaxes of JPEG-LS, JPEG 2000 and JPEG XL need their C libraries, which a build without
// cgo or with the nocodecs tag lacks.
func Decodable(uid string) bool { return families[uid].available() }

// Codec describes one decoder of this build, for `espnode version` and the conformance
// statement.
type Codec struct {
	Name string
	// Library is what does the decoding, with its version where it has one.
	Library string
	// Compiled is false for a C library this build was made without.
	Compiled bool
	Syntaxes []string
}

// Codecs lists the decoders of pixel data, compiled in or not.
func Codecs() []Codec {
	syntaxes := func(f family) []string {
		var out []string
		for _, ts := range dcm.TransferSyntaxes() {
			if families[ts.UID] == f {
				out = append(out, ts.UID)
			}
		}
		return out
	}
	lib := func(name, version string) string {
		if version == "" {
			return name + " (not compiled in)"
		}
		return name + " " + version
	}
	return []Codec{
		{Name: "uncompressed", Library: "espnode (Go)", Compiled: true, Syntaxes: syntaxes(famNative)},
		{Name: "RLE Lossless", Library: "espnode (Go)", Compiled: true, Syntaxes: syntaxes(famRLE)},
		{Name: "JPEG", Library: jpegLibrary(), Compiled: true, Syntaxes: syntaxes(famJPEG)},
		{Name: "JPEG-LS", Library: lib("CharLS", charls.Version()), Compiled: charls.Available(), Syntaxes: syntaxes(famJPEGLS)},
		{Name: "JPEG 2000, HTJ2K", Library: lib("OpenJPEG", openjpeg.Version()), Compiled: openjpeg.Available(), Syntaxes: syntaxes(famJ2K)},
		{Name: "JPEG XL", Library: lib("libjxl", jxl.Version()), Compiled: jxl.Available(), Syntaxes: syntaxes(famJXL)},
	}
}

// jpegLibrary names the JPEG decoders: libjpeg-turbo for 8-bit DCT where the build has it (Go's
// image/jpeg otherwise, and for 4-component frames), codec/jpeg for the rest.
func jpegLibrary() string {
	dct8 := "Go image/jpeg (8-bit DCT)"
	if turbojpeg.Available() {
		dct8 = "libjpeg-turbo " + turbojpeg.Version() + " (8-bit DCT)"
	}
	return dct8 + ", espnode (Go: lossless, 12-bit DCT)"
}

// checkGeometry compares what a codestream's header declares with the data set's Image Pixel
// attributes, before its decoder allocates the image: the decoded size is then the one
// validate bounded.
func (im *Image) checkGeometry(codec string, width, height, components, bits int) error {
	switch {
	case width != im.Columns || height != im.Rows:
		return fmt.Errorf("%s frame is %dx%d, the data set says %dx%d", codec, width, height, im.Columns, im.Rows)
	case components != im.SamplesPerPixel:
		return fmt.Errorf("%s frame has %d components, the data set says %d samples per pixel", codec, components, im.SamplesPerPixel)
	case bits > im.BitsAllocated:
		return fmt.Errorf("%s frame has %d-bit samples, the data set allocates %d bits", codec, bits, im.BitsAllocated)
	}
	return nil
}

// samplesFrame makes a frame of decoded samples (interleaved, right-aligned): bits above
// BitsStored removed, signed values sign-extended, as native data gets them.
func samplesFrame[T uint8 | uint16](im *Image, pix []T, samples int, photometric string) *Frame {
	f := im.newFrame(samples, photometric)
	mask := uint32(1)<<uint(im.BitsStored) - 1
	if im.BitsStored >= 32 {
		mask = ^uint32(0)
	}
	signBit := uint32(1) << uint(im.BitsStored-1)
	data := f.Data[:len(pix)]
	if !im.Signed() {
		for k, v := range pix {
			data[k] = int32(uint32(v) & mask)
		}
		return f
	}
	for k, v := range pix {
		x := uint32(v) & mask
		if x&signBit != 0 {
			x |= ^mask
		}
		data[k] = int32(x)
	}
	return f
}

// jpegFamilyFrame decodes a JPEG frame by the process its frame header declares, whatever the
// syntax says: 8-bit DCT through jpegFrame (libjpeg-turbo, or image/jpeg with libjpeg's colour
// conversion), lossless and 12-bit DCT through codec/jpeg.
func (im *Image) jpegFamilyFrame(data []byte) (*Frame, error) {
	h, err := jpegcodec.ReadHeader(data)
	if err != nil {
		return nil, fmt.Errorf("JPEG: %w", err)
	}
	if h.Process != jpegcodec.Lossless && h.Precision == 8 {
		return im.jpegFrame(data)
	}
	img, err := jpegcodec.Decode(data, func(h *jpegcodec.Header) error {
		return im.checkGeometry("JPEG "+h.Process.String(), h.Width, h.Height, len(h.Components), h.Precision)
	})
	if err != nil {
		return nil, fmt.Errorf("JPEG: %w", err)
	}
	photometric := im.Photometric
	if photometric == "YBR_FULL_422" {
		// Subsampled chroma comes out at full size.
		photometric = "YBR_FULL"
	}
	return samplesFrame(im, img.Pix, img.Components, photometric), nil
}

func (im *Image) jpegLSFrame(data []byte) (*Frame, error) {
	img, err := charls.Decode(data, func(h *charls.Header) error {
		return im.checkGeometry("JPEG-LS", h.Width, h.Height, h.Components, h.BitsPerSample)
	})
	if err != nil {
		return nil, err
	}
	if img.Pix8 != nil {
		return samplesFrame(im, img.Pix8, img.Components, im.Photometric), nil
	}
	return samplesFrame(im, img.Pix16, img.Components, im.Photometric), nil
}

func (im *Image) j2kFrame(data []byte) (*Frame, error) {
	img, err := openjpeg.Decode(data, func(h *openjpeg.Header) error {
		return im.checkGeometry("JPEG 2000", h.Width, h.Height, h.Components, h.Precision)
	})
	if err != nil {
		return nil, err
	}
	photometric := im.Photometric
	if img.MCT || photometric == "YBR_RCT" || photometric == "YBR_ICT" {
		// Decoding undid the component transform (PS3.5 8.2.4).
		photometric = "RGB"
	}
	return samplesFrame(im, img.Pix, img.Components, photometric), nil
}

func (im *Image) jxlFrame(data []byte) (*Frame, error) {
	recompressed := im.TransferSyntax == dcm.JPEGXLJPEGRecompression
	maxJPEG := 2*im.Rows*im.Columns*im.SamplesPerPixel + 1<<20
	img, err := jxl.Decode(data, recompressed, maxJPEG, func(h *jxl.Header) error {
		return im.checkGeometry("JPEG XL", h.Width, h.Height, h.Components, h.BitsPerSample)
	})
	if err != nil {
		return nil, err
	}
	if img.JPEG != nil {
		// The JPEG the file was made from, decoded as JPEG Baseline would be.
		return im.jpegFamilyFrame(img.JPEG)
	}
	photometric := im.Photometric
	if img.Components == 3 {
		photometric = "RGB"
	}
	if img.Pix8 != nil {
		return samplesFrame(im, img.Pix8, img.Components, photometric), nil
	}
	return samplesFrame(im, img.Pix16, img.Components, photometric), nil
}
