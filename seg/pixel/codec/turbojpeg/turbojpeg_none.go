//go:build !cgo || nocodecs

package turbojpeg

// Available reports whether this build decodes with libjpeg-turbo.
func Available() bool { return false }

// Version is empty: the library is not compiled in.
func Version() string { return "" }

// Decode returns ErrNotCompiled.
func Decode(src []byte, accept func(*Header) error) (*Image, error) { return nil, ErrNotCompiled }

// DecodeInto returns ErrNotCompiled.
func DecodeInto(src []byte, dst func(*Header) ([]int32, int, error)) (*Header, error) {
	return nil, ErrNotCompiled
}
