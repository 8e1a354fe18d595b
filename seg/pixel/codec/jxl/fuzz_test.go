package jxl

import (
	"errors"
	"fmt"
	"testing"
)

// FuzzDecode feeds any bytes to libjxl through Decode, asking for the JPEG where there is one
// or not, bounded as seg/pixel bounds it (through accept and maxJPEG): an image of the declared
// size, a JPEG within the bound, or an error; never a crash or a hang. Seeds:
// testdata/fuzz/FuzzDecode (frames of the codec fixtures of seg/pixel).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, wantJPEG := range []bool{false, true} {
			img, err := Decode(data, wantJPEG, 1<<20, func(h *Header) error {
				if n := h.Width * h.Height * h.Components; n > 1<<18 {
					return fmt.Errorf("%d samples", n)
				}
				return nil
			})
			if errors.Is(err, ErrNotCompiled) {
				t.Skip("built without the library (nocodecs or CGO_ENABLED=0)")
			}
			if err != nil {
				continue
			}
			n := len(img.Pix8) + len(img.Pix16)
			switch {
			case img.JPEG != nil && len(img.JPEG) > 1<<20:
				t.Fatalf("JPEG of %d bytes past the bound", len(img.JPEG))
			case img.JPEG == nil && n != img.Width*img.Height*img.Components:
				t.Fatalf("%d samples for %dx%dx%d", n, img.Width, img.Height, img.Components)
			}
		}
	})
}
