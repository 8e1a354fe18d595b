package jpeg

import (
	"fmt"
	"testing"
)

// FuzzDecode feeds any bytes to Decode, bounded as seg/pixel bounds it (through accept): it
// must return an image of the declared size or an error, never panic or run away.
func FuzzDecode(f *testing.F) {
	for _, p := range []losslessParams{
		{width: 7, height: 5, precision: 16, selection: 6, restartLines: 2, planes: testPlanes(7, 5, 1, 16, 1)},
		{width: 4, height: 3, precision: 8, selection: 1, interleaved: true, planes: testPlanes(4, 3, 3, 8, 2)},
		{width: 5, height: 5, precision: 12, selection: 7, pt: 1, planes: testPlanes(5, 5, 3, 12, 3)},
	} {
		f.Add(encodeLossless(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data, func(h *Header) error {
			if h.Samples() > 1<<16 {
				return fmt.Errorf("%d samples", h.Samples())
			}
			return nil
		})
		if err == nil && len(img.Pix) != img.Width*img.Height*img.Components {
			t.Fatalf("%d samples for %dx%dx%d", len(img.Pix), img.Width, img.Height, img.Components)
		}
	})
}
