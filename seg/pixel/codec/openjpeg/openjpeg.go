// Package openjpeg decodes JPEG 2000 (ISO/IEC 15444-1) and High-Throughput JPEG 2000 (15444-15)
// codestreams with OpenJPEG, through cgo: DICOM's JPEG 2000 (1.2.840.10008.1.2.4.90 and .91)
// and HTJ2K (.201, .202, .203) syntaxes. A raw codestream and a JP2 file are both read. A
// build without cgo, or with the nocodecs tag, has none of it: Available reports false and
// Decode returns ErrNotCompiled.
package openjpeg

import "errors"

// Header is what the codestream's main header says.
type Header struct {
	Width, Height, Components int
	// Precision is the largest bit depth of the components; Signed whether any is signed.
	Precision int
	Signed    bool
	// Subsampled is whether a component is sampled at less than full resolution.
	Subsampled bool
	// MCT is whether the coding style applies a multiple-component transform (the reversible
	// one, YBR_RCT, with the 5-3 wavelet; the irreversible one, YBR_ICT, with the 9-7), which
	// decoding undoes: the image comes out RGB.
	MCT bool
	// HighThroughput is whether the code-blocks use the HT block coder (Part 15).
	HighThroughput bool
}

// Image is a decoded frame: samples interleaved, each right-aligned in a uint16 (two's
// complement in Precision bits for signed components).
type Image struct {
	Width, Height, Components int
	Precision                 int
	Signed                    bool
	MCT                       bool
	Pix                       []uint16
}

// ErrNotCompiled is returned by Decode in a build without the library.
var ErrNotCompiled = errors.New("JPEG 2000 decoding is not compiled into this build (OpenJPEG needs cgo; built with nocodecs or CGO_ENABLED=0)")

// ErrDecode is wrapped by every error for a codestream the library refuses or fails on.
var ErrDecode = errors.New("JPEG 2000")

// ErrUnsupported is wrapped by the error for a valid codestream this package does not turn
// into an image (subsampled components, more than 16 bits).
var ErrUnsupported = errors.New("unsupported JPEG 2000")
