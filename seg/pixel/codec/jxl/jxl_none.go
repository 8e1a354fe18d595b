//go:build !cgo || nocodecs

package jxl

// Available reports whether this build decodes JPEG XL.
func Available() bool { return false }

// Version is empty: the library is not compiled in.
func Version() string { return "" }

// Decode returns ErrNotCompiled.
func Decode(src []byte, wantJPEG bool, maxJPEG int, accept func(*Header) error) (*Image, error) {
	return nil, ErrNotCompiled
}
