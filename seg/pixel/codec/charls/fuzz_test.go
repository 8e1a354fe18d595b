package charls

import (
	"errors"
	"fmt"
	"testing"
)

// FuzzDecode feeds any bytes to the library through Decode, bounded as seg/pixel bounds it
// (through accept): an image of the declared size or an error, never a crash, a hang or an
// out-of-bounds access in the C code (run it under -race, or with the C library built with
// sanitizers, to see the latter). Seeds: testdata/fuzz/FuzzDecode (frames of the codec
// fixtures of seg/pixel).
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
		if err == nil && len(pixOf(img)) != img.Width*img.Height*img.Components {
			t.Fatalf("%d samples for %dx%dx%d", len(pixOf(img)), img.Width, img.Height, img.Components)
		}
	})
}

func pixOf(img *Image) []uint16 {
	if img.Pix8 != nil {
		return make([]uint16, len(img.Pix8))
	}
	return img.Pix16
}
