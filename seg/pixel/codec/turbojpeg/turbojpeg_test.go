package turbojpeg

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func seed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", name))
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(v, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}

// TestDecodeMatchesGo decodes the seeds Go's encoder made and compares them with Go's own
// decoder: the two inverse DCTs round differently, and Go replicates subsampled chroma where
// libjpeg interpolates it, so samples may differ by a little, never by much.
func TestDecodeMatchesGo(t *testing.T) {
	if !Available() {
		t.Fatal("this build lacks the library: run the tests without -tags nocodecs, with cgo")
	}
	for _, tc := range []struct {
		seed          string
		comps         int
		maxDiff       int
		meanDiffLimit float64
	}{
		{"gray37x21", 1, 2, 0.5},
		{"rgb19x17_420", 3, 40, 4},
	} {
		data := seed(t, tc.seed)
		img, err := Decode(data, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.seed, err)
		}
		ref, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: Go: %v", tc.seed, err)
		}
		b := ref.Bounds()
		if img.Width != b.Dx() || img.Height != b.Dy() || img.Components != tc.comps {
			t.Fatalf("%s: %dx%dx%d, Go gives %dx%d", tc.seed, img.Width, img.Height, img.Components, b.Dx(), b.Dy())
		}
		worst, sum := 0, 0
		for y := range img.Height {
			for x := range img.Width {
				var want [3]int
				switch r := ref.(type) {
				case *image.Gray:
					want[0] = int(r.GrayAt(x, y).Y)
				default:
					c := r.At(x, y)
					rr, gg, bb, _ := c.RGBA()
					want = [3]int{int(rr >> 8), int(gg >> 8), int(bb >> 8)}
				}
				for k := range tc.comps {
					d := int(img.Pix[(y*img.Width+x)*tc.comps+k]) - want[k]
					worst, sum = max(worst, d, -d), sum+max(d, -d)
				}
			}
		}
		mean := float64(sum) / float64(len(img.Pix))
		if worst > tc.maxDiff || mean > tc.meanDiffLimit {
			t.Errorf("%s: differs from Go's decoder by up to %d (mean %.2f), want at most %d (%.2f)", tc.seed, worst, mean, tc.maxDiff, tc.meanDiffLimit)
		}
	}
}

// TestDecodeRefuses checks that damaged codestreams come back as errors wrapping ErrDecode
// (cut short, a garbled scan), that accept's error stops decoding, and that precisions and
// processes the library does not decode are refused.
func TestDecodeRefuses(t *testing.T) {
	if !Available() {
		t.Fatal("this build lacks the library: run the tests without -tags nocodecs, with cgo")
	}
	stop := errors.New("refused")
	for _, name := range []string{"gray37x21", "rgb19x17_420"} {
		data := seed(t, name)
		if _, err := Decode(data, func(*Header) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("%s: accept's error: got %v", name, err)
		}
		for _, n := range []int{0, 1, 2, 10, len(data) / 3, len(data) / 2, len(data) - 40} {
			if _, err := Decode(data[:n], nil); err == nil {
				t.Errorf("%s cut to %d of %d bytes decoded", name, n, len(data))
			} else if !errors.Is(err, ErrDecode) {
				t.Errorf("%s cut to %d bytes: error %v does not wrap ErrDecode", name, n, err)
			}
		}
		// Padding after EOI, as DICOM fragments have, is not data.
		if _, err := Decode(append(bytes.Clone(data), 0), nil); err != nil {
			t.Errorf("%s with a pad byte: %v", name, err)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "*"))
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, f := range files {
		// codec/jpeg's seeds: lossless and 12-bit frames.
		if name := filepath.Base(f); !strings.Contains(name, "x") {
			if _, err := Decode(seed(t, name), nil); err == nil {
				t.Errorf("%s (lossless or 12-bit) decoded", name)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Error("no lossless or 12-bit seed")
	}
	if !strings.Contains(Version(), ".") {
		t.Errorf("Version() = %q", Version())
	}
}

// TestDecodeInto checks that DecodeInto gives Decode's samples at the stride asked for, leaves
// the padding between rows alone, and refuses a destination too small for the header.
func TestDecodeInto(t *testing.T) {
	if !Available() {
		t.Fatal("this build lacks the library: run the tests without -tags nocodecs, with cgo")
	}
	for _, name := range []string{"gray37x21", "rgb19x17_420"} {
		data := seed(t, name)
		img, err := Decode(data, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		row := img.Width * img.Components
		stride := row + 5
		var dst []int32
		h, err := DecodeInto(data, func(h *Header) ([]int32, int, error) {
			dst = make([]int32, h.Height*stride)
			for i := range dst {
				dst[i] = -1
			}
			return dst, stride, nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if h.Width != img.Width || h.Height != img.Height || h.Components != img.Components {
			t.Fatalf("%s: header %+v, Decode gives %dx%dx%d", name, h, img.Width, img.Height, img.Components)
		}
		for y := range img.Height {
			for x := range stride {
				got := dst[y*stride+x]
				want := int32(-1)
				if x < row {
					want = int32(img.Pix[y*row+x])
				}
				if got != want {
					t.Fatalf("%s: sample %d of row %d is %d, want %d", name, x, y, got, want)
				}
			}
		}
		short := func(h *Header) ([]int32, int, error) {
			return make([]int32, h.Width*h.Height*h.Components-1), h.Width * h.Components, nil
		}
		if _, err := DecodeInto(data, short); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: a destination one sample short: got %v", name, err)
		}
	}
}
