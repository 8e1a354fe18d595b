// Package turbojpeg decodes 8-bit DCT JPEG (ITU-T T.81 baseline, extended and progressive)
// codestreams with libjpeg-turbo, through cgo: DICOM's JPEG Baseline (1.2.840.10008.1.2.4.50)
// and the 8-bit frames of JPEG Extended (.51). The output is what libjpeg gives by default
// (islow inverse DCT, fancy upsampling): grayscale for one component, RGB for three (YCbCr
// converted; an RGB codestream, by its Adobe marker or component identifiers, kept). A build
// without cgo, or with the nocodecs tag, has none of it: Available reports false and Decode
// returns ErrNotCompiled, and seg/pixel decodes with Go's image/jpeg instead.
package turbojpeg

import "errors"

// Header is what a codestream's frame header says.
type Header struct {
	Width, Height, Components int
	Progressive               bool
}

// Image is a decoded frame: Components samples a pixel, interleaved, rows of Width pixels.
type Image struct {
	Width, Height, Components int
	Pix                       []byte
}

// ErrNotCompiled is returned by Decode in a build without the library.
var ErrNotCompiled = errors.New("libjpeg-turbo is not compiled into this build (it needs cgo; built with nocodecs or CGO_ENABLED=0)")

// ErrDecode is wrapped by every error the library reports for a codestream.
var ErrDecode = errors.New("JPEG")

// ErrUnsupported is wrapped by the error for a valid codestream this package does not turn
// into an image: other than 8 bits, or other than one or three components (CMYK, YCCK).
var ErrUnsupported = errors.New("unsupported JPEG")
