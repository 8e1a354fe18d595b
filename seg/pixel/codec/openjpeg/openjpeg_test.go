package openjpeg

import (
	"errors"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// seeds returns the codestreams of testdata/fuzz/FuzzDecode (frames that real encoders made
// for seg/pixel's codec fixtures).
func seeds(t *testing.T) [][]byte { return testutil.FuzzSeeds(t, "FuzzDecode", 3) }

// TestDecodeAndRefuse decodes every seed, and checks that the library's failures on the same
// codestreams cut short or garbled come back as errors, and that accept's error stops it.
func TestDecodeAndRefuse(t *testing.T) {
	if !Available() {
		t.Fatal("this build lacks the library: run the tests without -tags nocodecs, with cgo")
	}
	stop := errors.New("refused")
	for i, data := range seeds(t) {
		img, err := Decode(data, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if img.Width < 1 || img.Height < 1 {
			t.Fatalf("seed %d: %dx%d", i, img.Width, img.Height)
		}
		accept := func(h *Header) error { return stop }
		if _, err := Decode(data, accept); !errors.Is(err, stop) {
			t.Errorf("seed %d: accept's error: got %v", i, err)
		}
		for _, n := range []int{0, 1, 2, 10, len(data) / 3, len(data) / 2} {
			cut := data[:n]
			if _, err := Decode(cut, nil); err == nil {
				t.Errorf("seed %d cut to %d of %d bytes decoded", i, n, len(data))
			} else if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) {
				t.Errorf("seed %d cut to %d bytes: error %v does not wrap ErrDecode", i, n, err)
			}
		}
	}
	if !strings.Contains(Version(), ".") {
		t.Errorf("Version() = %q", Version())
	}
}
