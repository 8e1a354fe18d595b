// Package jxl decodes JPEG XL (ISO/IEC 18181) codestreams with libjxl, through cgo: DICOM's JPEG
// XL Lossless (1.2.840.10008.1.2.4.110), JPEG XL JPEG Recompression (.111) and JPEG XL (.112).
// A recompressed JPEG can be given back as the JPEG it was made from, bit for bit, so that it
// decodes exactly as the original would. A build without cgo, or with the nocodecs tag, has
// none of it: Available reports false and Decode returns ErrNotCompiled.
package jxl

import "errors"

// Header is what the codestream's basic info says.
type Header struct {
	Width, Height int
	// Components is the number of colour channels (1 or 3); an alpha channel is dropped.
	Components    int
	BitsPerSample int
	Float         bool
	// Orientation is the EXIF orientation (1 is none); decoding ignores it, so that samples
	// come in the order of the data set's rows and columns.
	Orientation int
}

// Image is a decoded frame: either JPEG, the reconstructed JPEG codestream (when asked for and
// the file holds reconstruction data), or samples interleaved in Pix8 (BitsPerSample up to 8)
// or Pix16, right-aligned.
type Image struct {
	Width, Height, Components int
	BitsPerSample             int
	JPEG                      []byte
	Pix8                      []byte
	Pix16                     []uint16
}

// ErrNotCompiled is returned by Decode in a build without the library.
var ErrNotCompiled = errors.New("JPEG XL decoding is not compiled into this build (libjxl needs cgo; built with nocodecs or CGO_ENABLED=0)")

// ErrDecode is wrapped by every error for a codestream the library refuses or fails on.
var ErrDecode = errors.New("JPEG XL")

// ErrUnsupported is wrapped by the error for a valid codestream this package does not turn
// into an image (floating-point samples, more than 16 bits).
var ErrUnsupported = errors.New("unsupported JPEG XL")
