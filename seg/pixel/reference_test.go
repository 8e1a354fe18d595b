package pixel

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	jpegcodec "github.com/espnode/espnode/seg/pixel/codec/jpeg"
	"github.com/espnode/espnode/seg/pixel/codec/turbojpeg"
)

// referenceDecoder is the tool whose decode a family's frames are compared with: DCMTK's where
// it has one, GDCM's for JPEG 2000 (DCMTK's JPEG 2000 codec is not free software).
type referenceDecoder struct {
	tool, pkg string
	args      []string
}

var referenceDecoders = map[family]referenceDecoder{
	famRLE: {"dcmdrle", "dcmtk", nil},
	// +cg: convert YCbCr to RGB where the JPEG markers say so, as this package does.
	famJPEG:   {"dcmdjpeg", "dcmtk", []string{"+cg"}},
	famJPEGLS: {"dcmdjpls", "dcmtk", nil},
	famJ2K:    {"gdcmconv", "libgdcm-tools", []string{"--raw"}},
}

// lossyBound is how far a DCT decode may be from the reference: the decoders' inverse DCTs
// round differently (IJG's integer one in DCMTK; image/jpeg's, and codec/jpeg's single
// precision one here). Every other codec's decode is exact, lossy codestreams included:
// JPEG-LS near-lossless and JPEG 2000 decoding are defined to the sample.
type lossyBound struct {
	maxDiff int
	minPSNR float64
}

func referenceBound(ts string, bitsStored int) (lossyBound, bool) {
	switch ts {
	case dcm.JPEGBaseline8Bit:
		if turbojpeg.Available() {
			// libjpeg-turbo's islow inverse DCT and fancy upsampling are IJG's, to the sample.
			return lossyBound{}, false
		}
		return lossyBound{maxDiff: 4, minPSNR: 50}, true
	case dcm.JPEGExtended12Bit:
		if bitsStored <= 8 {
			if turbojpeg.Available() {
				return lossyBound{}, false
			}
			return lossyBound{maxDiff: 4, minPSNR: 50}, true
		}
		return lossyBound{maxDiff: 2, minPSNR: 70}, true
	}
	return lossyBound{}, false
}

// TestDecodeMatchesReference decodes every frame of every shared file in an encapsulated
// syntax that DCMTK or GDCM decodes, and compares the stored values with the reference tool's
// decompressed file (read by this package's native path): equal for lossless syntaxes, and for
// lossy ones too except the DCT, which stays within lossyBound (max |diff| and PSNR printed).
func TestDecodeMatchesReference(t *testing.T) {
	for _, r := range inventory(t) {
		path, ts := r[0], r[3]
		fam := families[ts]
		ref, ok := referenceDecoders[fam]
		if !ok || !Decodable(ts) || htj2k[ts] {
			continue
		}
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			tool := testutil.Tool(t, ref.tool, ref.pkg)
			out := filepath.Join(t.TempDir(), "native.dcm")
			cmd := exec.Command(tool, append(append([]string{}, ref.args...), dicomFile(t, path), out)...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", ref.tool, err, b)
			}
			got, want := loadImage(t, path), loadPath(t, out)
			if got.NumFrames() != want.NumFrames() {
				t.Fatalf("%d frames, %s gives %d", got.NumFrames(), ref.tool, want.NumFrames())
			}
			var st diffStats
			cropped := 0
			for i := range got.NumFrames() {
				if fam == famJPEG {
					if h, err := jpegcodec.ReadHeader(got.frames[i]); err == nil && (h.Width < got.Columns || h.Height < got.Rows) {
						// An edge tile encoded at its cropped size (TestCroppedEdgeTile): DCMTK
						// lays its rows out at the tile's width, so the two do not compare.
						cropped++
						continue
					}
				}
				a, b := decodeFrame(t, got, i), decodeFrame(t, want, i)
				// DCMTK labels every grayscale JPEG it decompresses MONOCHROME2, MONOCHROME1
				// included, and leaves the values as they are.
				relabelled := a.Photometric == "MONOCHROME1" && b.Photometric == "MONOCHROME2" && ref.tool == "dcmdjpeg"
				if a.Samples != b.Samples || (a.Photometric != b.Photometric && !relabelled) {
					t.Fatalf("frame %d: %d samples %s, %s gives %d %s", i, a.Samples, a.Photometric, ref.tool, b.Samples, b.Photometric)
				}
				st.add(a.Data, b.Data)
			}
			peak := float64(int(1)<<uint(got.BitsStored) - 1)
			t.Logf("%s (%s) vs %s: %d frames (%d cropped edge tiles not compared), max |diff| %d, PSNR %.1f dB", ts, dcm.TransferSyntaxName(ts), ref.tool, got.NumFrames(), cropped, st.max, st.psnr(peak))
			bound, lossy := referenceBound(ts, got.BitsStored)
			switch {
			case !lossy && st.max != 0:
				t.Errorf("differs from %s: max |diff| %d in %d of %d samples", ref.tool, st.max, st.differ, st.n)
			case lossy && (st.max > bound.maxDiff || st.psnr(peak) < bound.minPSNR):
				t.Errorf("differs from %s by more than the DCT bound: max |diff| %d (bound %d), PSNR %.1f dB (bound %.0f)", ref.tool, st.max, bound.maxDiff, st.psnr(peak), bound.minPSNR)
			}
		})
	}
}

// htj2k are the HTJ2K syntaxes, which neither DCMTK nor GDCM (3.0.21) decodes:
// TestHTJ2KMatchesOpenJPEGTool compares them with OpenJPEG's command-line decoder.
var htj2k = map[string]bool{dcm.HTJ2KLossless: true, dcm.HTJ2KLosslessRPCL: true, dcm.HTJ2K: true}

type diffStats struct {
	n, differ, max int
	sq             float64
}

func (s *diffStats) add(a, b []int32) {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d != 0 {
			s.differ++
		}
		s.max = max(s.max, d)
		s.sq += float64(d) * float64(d)
	}
	s.n += len(a)
}

func (s *diffStats) psnr(peak float64) float64 {
	if s.sq == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(peak*peak/(s.sq/float64(s.n)))
}

func loadPath(t testing.TB, path string) *Image {
	t.Helper()
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := NewImage(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return im
}

func inventory(t testing.TB) [][]string {
	t.Helper()
	f, err := os.Open(testutil.SharedData(t, "dicom", "INVENTORY.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 2 || fmt.Sprint(rows[0][:4]) != "[path modality sop_class transfer_syntax]" {
		t.Fatalf("INVENTORY.csv header %v", rows[0])
	}
	return rows[1:]
}
