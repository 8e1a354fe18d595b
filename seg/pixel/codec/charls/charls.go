// Package charls decodes JPEG-LS (ISO/IEC 14495-1, ITU-T T.87) codestreams with CharLS, through
// cgo: DICOM's JPEG-LS Lossless (1.2.840.10008.1.2.4.80) and Near-Lossless (.81). A build
// without cgo, or with the nocodecs tag, has none of it: Available reports false and Decode
// returns ErrNotCompiled.
package charls

import "errors"

// Header is what a codestream's frame and scan headers say.
type Header struct {
	Width, Height, Components int
	BitsPerSample             int
	// NearLossless is the NEAR parameter of the first scan: 0 for lossless.
	NearLossless int
	// Interleave is 0 (none: one scan per component), 1 (line) or 2 (sample).
	Interleave int
}

// Image is a decoded frame: samples interleaved, in Pix8 (BitsPerSample up to 8) or Pix16.
type Image struct {
	Width, Height, Components int
	BitsPerSample             int
	NearLossless              int
	Pix8                      []byte
	Pix16                     []uint16
}

// ErrNotCompiled is returned by Decode in a build without the library.
var ErrNotCompiled = errors.New("JPEG-LS decoding is not compiled into this build (CharLS needs cgo; built with nocodecs or CGO_ENABLED=0)")

// ErrDecode is wrapped by every error the library reports for a codestream.
var ErrDecode = errors.New("JPEG-LS")
