package turbojpeg

import (
	"errors"
	"fmt"
	"testing"
)

// FuzzDecode feeds any bytes to the library through Decode, bounded as seg/pixel bounds it
// (through accept): an image of the declared size or an error, never a crash, a hang or an
// out-of-bounds access in the C code, through Decode and DecodeInto alike. Seeds: testdata/fuzz/FuzzDecode (small gray and 4:2:0
// colour frames from Go's encoder; codec/jpeg's lossless and 12-bit seeds, which this package
// refuses).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data, func(h *Header) error {
			if n := h.Width * h.Height * h.Components; n > 1<<18 {
				return fmt.Errorf("%d samples", n)
			}
			return nil
		})
		if errors.Is(err, ErrNotCompiled) {
			t.Skip("built without the library (nocodecs or CGO_ENABLED=0)")
		}
		if err == nil && len(img.Pix) != img.Width*img.Height*img.Components {
			t.Fatalf("%d samples for %dx%dx%d", len(img.Pix), img.Width, img.Height, img.Components)
		}
		// The int32 path, as seg/pixel calls it: rows one sample further apart than they need.
		_, err2 := DecodeInto(data, func(h *Header) ([]int32, int, error) {
			stride := h.Width*h.Components + 1
			if n := stride * h.Height; n > 1<<18 {
				return nil, 0, fmt.Errorf("%d samples", n)
			}
			return make([]int32, stride*h.Height), stride, nil
		})
		if (err == nil) != (err2 == nil) && img != nil && (img.Width+1)*img.Height*img.Components <= 1<<18 {
			t.Fatalf("Decode: %v; DecodeInto: %v", err, err2)
		}
	})
}
