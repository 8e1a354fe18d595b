package jpeg

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// testPlanes returns components of width x height samples of the precision: a ramp with
// noise, plus both extremes side by side so that differences of 2^15 and more occur.
func testPlanes(width, height, comps, precision int, seed uint64) [][]uint16 {
	rng := rand.New(rand.NewPCG(seed, 1))
	maxv := 1<<precision - 1
	out := make([][]uint16, comps)
	for c := range out {
		out[c] = make([]uint16, width*height)
		for i := range out[c] {
			x, y := i%width, i/width
			v := (x*maxv/max(width-1, 1) + y*7 + c*13 + rng.IntN(5)) % (maxv + 1)
			if y == 1 && x < 4 {
				v = []int{0, maxv, 0, maxv}[x]
			}
			out[c][i] = uint16(v)
		}
	}
	return out
}

// TestLosslessVectors decodes codestreams made by the test encoder for every combination of
// precision, selection value, point transform, restart interval and scan layout, and expects
// the samples back (less the bits the point transform dropped).
func TestLosslessVectors(t *testing.T) {
	for _, precision := range []int{2, 3, 8, 12, 15, 16} {
		for sv := 1; sv <= 7; sv++ {
			for _, pt := range []int{0, 1} {
				for _, restart := range []int{0, 3} {
					for _, layout := range []struct {
						comps       int
						interleaved bool
					}{{1, false}, {3, true}, {3, false}} {
						name := fmt.Sprintf("P%d_SV%d_Pt%d_R%d_C%d_i%v", precision, sv, pt, restart, layout.comps, layout.interleaved)
						p := losslessParams{width: 13, height: 11, precision: precision, selection: sv, pt: pt, restartLines: restart,
							interleaved: layout.interleaved, planes: testPlanes(13, 11, layout.comps, precision, uint64(precision*100+sv))}
						src := encodeLossless(p)
						img, err := Decode(src, nil)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						if img.Width != 13 || img.Height != 11 || img.Components != layout.comps || img.Precision != precision {
							t.Fatalf("%s: decoded %dx%d, %d components, %d bits", name, img.Width, img.Height, img.Components, img.Precision)
						}
						for c, plane := range p.planes {
							for i, v := range plane {
								if want := v >> uint(pt) << uint(pt); img.Pix[i*layout.comps+c] != want {
									t.Fatalf("%s: component %d sample %d is %d, want %d", name, c, i, img.Pix[i*layout.comps+c], want)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestHeader(t *testing.T) {
	src := encodeLossless(losslessParams{width: 5, height: 4, precision: 12, selection: 1, planes: testPlanes(5, 4, 1, 12, 1)})
	h, err := ReadHeader(src)
	if err != nil {
		t.Fatal(err)
	}
	if h.Process != Lossless || h.Precision != 12 || h.Width != 5 || h.Height != 4 || len(h.Components) != 1 || h.AdobeTransform != -1 {
		t.Errorf("header %+v", h)
	}
	// accept sees the header before anything is allocated, and its error stops decoding.
	stop := errors.New("too large")
	if _, err := Decode(src, func(h *Header) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("accept's error: got %v", err)
	}
}

// TestMalformed: every prefix of a valid codestream, and codestreams with broken parts, give an
// error (never a panic, never an image).
func TestMalformed(t *testing.T) {
	p := losslessParams{width: 9, height: 7, precision: 16, selection: 4, restartLines: 2, planes: testPlanes(9, 7, 1, 16, 2)}
	src := encodeLossless(p)
	for n := range len(src) - 2 {
		if _, err := Decode(src[:n], nil); err == nil {
			t.Fatalf("a codestream cut to %d of %d bytes decoded", n, len(src))
		}
	}
	// Without EOI, but with every scan complete, it decodes.
	if _, err := Decode(src[:len(src)-2], nil); err != nil {
		t.Errorf("no EOI after the last scan: %v", err)
	}
	sof := slices.Index(src, mSOF3) - 1
	for _, tt := range []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"arithmetic coding", func(b []byte) []byte { b[sof+1] = 0xC9; return b }, ErrUnsupported},
		{"hierarchical", func(b []byte) []byte { b[sof+1] = 0xC7; return b }, ErrUnsupported},
		{"precision 17", func(b []byte) []byte { b[sof+4] = 17; return b }, ErrMalformed},
		{"no SOI", func(b []byte) []byte { b[1] = 0; return b }, ErrMalformed},
		{"zero components", func(b []byte) []byte { b[sof+9] = 0; return b }, ErrMalformed},
		{"wrong restart marker", func(b []byte) []byte {
			i := slices.Index(b[sof:], mRST0) + sof
			b[i] = mRST0 + 5
			return b
		}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.mutate(slices.Clone(src)), nil); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func BenchmarkLossless(b *testing.B) {
	p := losslessParams{width: 1024, height: 1024, precision: 16, selection: 1, planes: testPlanes(1024, 1024, 1, 16, 3)}
	src := encodeLossless(p)
	b.SetBytes(2 * 1024 * 1024)
	for b.Loop() {
		if _, err := Decode(src, nil); err != nil {
			b.Fatal(err)
		}
	}
}
