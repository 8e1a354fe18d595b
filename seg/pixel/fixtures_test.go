package pixel

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

type codecFixture struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Ref     string `json:"ref"`
	MaxDiff int    `json:"max_diff"`
}

var fixtures struct {
	once sync.Once
	dir  string
	list []codecFixture
	err  error
}

// codecFixtures makes the fixtures of testdata/codec_fixtures.py once per test binary.
func codecFixtures(t *testing.T) (string, []codecFixture) {
	t.Helper()
	for _, tool := range [][2]string{{"dcmcjpeg", "dcmtk"}, {"dcmcjpls", "dcmtk"}, {"gdcmconv", "libgdcm-tools"},
		{"opj_compress", "libopenjp2-tools"}, {"cjxl", "libjxl-tools"}, {"djxl", "libjxl-tools"}} {
		testutil.Tool(t, tool[0], tool[1])
	}
	python := testutil.Python(t)
	fixtures.once.Do(func() {
		dir, err := os.MkdirTemp("", "espnode-codec-fixtures-")
		if err != nil {
			fixtures.err = err
			return
		}
		fixtures.dir = dir
		out, err := exec.Command(python, filepath.Join("testdata", "codec_fixtures.py"), dir).CombinedOutput()
		if err != nil {
			fixtures.err = &fixtureError{string(out), err}
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err == nil {
			err = json.Unmarshal(b, &fixtures.list)
		}
		fixtures.err = err
	})
	if fixtures.err != nil {
		t.Fatalf("codec fixtures (testdata/codec_fixtures.py needs python3-pydicom and python3-numpy): %v", fixtures.err)
	}
	return fixtures.dir, fixtures.list
}

type fixtureError struct {
	out string
	err error
}

func (e *fixtureError) Error() string { return e.err.Error() + "\n" + e.out }

// TestCodecFixtures decodes small files that real encoders made for the cases of PS3.5 the
// shared files lack (every JPEG lossless selection value, 2 to 16 bits, point transform,
// signed 12 and 16 bits, YBR_FULL, planar sources, the three JPEG-LS interleave modes, palette
// colour, multi-frame JPEG 2000 and JPEG XL, three fragments per frame with and without a
// Basic Offset Table, an Extended Offset Table, a JPEG recompressed into JPEG XL) and compares
// every frame with its reference: the native source for lossless codecs, a reference tool's
// decode otherwise.
func TestCodecFixtures(t *testing.T) {
	dir, list := codecFixtures(t)
	if len(list) < 40 {
		t.Fatalf("%d fixtures, want at least 40", len(list))
	}
	for _, fx := range list {
		t.Run(fx.Name, func(t *testing.T) {
			got, want := loadPath(t, filepath.Join(dir, fx.File)), loadPath(t, filepath.Join(dir, fx.Ref))
			if !Decodable(got.TransferSyntax) {
				t.Fatalf("%s: syntax %s not decodable in this build", fx.File, got.TransferSyntax)
			}
			if got.NumFrames() != want.NumFrames() {
				t.Fatalf("%d frames, reference %d", got.NumFrames(), want.NumFrames())
			}
			var st diffStats
			for i := range got.NumFrames() {
				a, b := decodeFrame(t, got, i), decodeFrame(t, want, i)
				if a.Samples != b.Samples || a.Photometric != b.Photometric {
					t.Fatalf("frame %d: %d samples %s, reference %d %s", i, a.Samples, a.Photometric, b.Samples, b.Photometric)
				}
				st.add(a.Data, b.Data)
			}
			t.Logf("%s: %d frames of %dx%d, %d-bit; max |diff| %d", got.TransferSyntax, got.NumFrames(), got.Columns, got.Rows, got.BitsStored, st.max)
			if st.max > fx.MaxDiff {
				t.Errorf("max |diff| %d from %s in %d of %d samples, bound %d", st.max, fx.Ref, st.differ, st.n, fx.MaxDiff)
			}
		})
	}
}
