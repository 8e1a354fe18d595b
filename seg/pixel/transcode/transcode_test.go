package transcode

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/pixel"
)

// TestDecompressShared decompresses every shared file in an encapsulated syntax this build
// decodes, writes it as an Explicit VR Little Endian file, and checks that DCMTK reads it
// without complaint, that its frames decode to exactly what the compressed file's frames
// decode to, and that the pixel attributes say what the data now is.
func TestDecompressShared(t *testing.T) {
	dcmdump := testutil.Tool(t, "dcmdump", "dcmtk")
	f, err := os.Open(testutil.SharedData(t, "dicom", "INVENTORY.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows[1:] {
		rel, ts := r[0], r[3]
		if !Decompressible(ts) {
			continue
		}
		n++
		t.Run(rel, func(t *testing.T) {
			src, err := pixel.ReadFile(testutil.SharedData(t, "dicom", rel))
			if err != nil {
				t.Fatal(err)
			}
			out, err := Decompress(src.DataSet, ts, dcm.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "native.dcm")
			writeFile(t, path, src, out)
			if b, err := exec.Command(dcmdump, "-E", "-q", path).CombinedOutput(); err != nil || bytes.Contains(b, []byte("E: ")) || bytes.Contains(b, []byte("W: ")) {
				t.Fatalf("dcmdump: %v\n%s", err, b)
			}
			a := image(t, src)
			got, err := pixel.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b := image(t, got)
			if b.TransferSyntax != dcm.ExplicitVRLittleEndian || b.NumFrames() != a.NumFrames() {
				t.Fatalf("written in %s with %d frames", b.TransferSyntax, b.NumFrames())
			}
			for i := range a.NumFrames() {
				fa, fb := frame(t, a, i), frame(t, b, i)
				if fa.Photometric != fb.Photometric || !slices.Equal(fa.Data, fb.Data) {
					t.Fatalf("frame %d: %s differs from the compressed frame's %s", i, fb.Photometric, fa.Photometric)
				}
			}
			ds := got.DataSet
			if ds.Has(dcm.ExtendedOffsetTable) || ds.Find(dcm.PixelData).Fragments != nil {
				t.Error("pixel data still encapsulated")
			}
			if b.SamplesPerPixel == 3 && b.PlanarConfiguration != 0 {
				t.Errorf("planar configuration %d", b.PlanarConfiguration)
			}
			if _, lossy := dctMethod[ts]; lossy {
				if ds.String(dcm.LossyImageCompression) != "01" || ds.String(dcm.LossyImageCompressionMethod) == "" || ds.String(dcm.LossyImageCompressionRatio) == "" {
					t.Errorf("lossy image compression %q, method %q, ratio %q", ds.String(dcm.LossyImageCompression), ds.String(dcm.LossyImageCompressionMethod), ds.String(dcm.LossyImageCompressionRatio))
				}
			}
			if strings.HasPrefix(b.Photometric, "YBR_") && b.Photometric != "YBR_FULL" {
				t.Errorf("photometric %s left for native data", b.Photometric)
			}
		})
	}
	if n < 40 {
		t.Errorf("%d shared files decompressed, want at least 40", n)
	}
}

func TestDecompressRefuses(t *testing.T) {
	for _, ts := range []string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian, "1.2.840.10008.1.2.4.92", "1.2.3"} {
		if Decompressible(ts) {
			t.Errorf("%s decompressible", ts)
		}
		if _, err := Read(strings.NewReader(""), ts, dcm.Limits{}); err == nil {
			t.Errorf("%s: no error", ts)
		}
	}
	src, err := pixel.ReadFile(testutil.SharedData(t, "dicom", "CR/wg04_RG2_J2KR_mono2.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decompress(src.DataSet, dcm.JPEG2000Lossless, dcm.Limits{MaxValueLength: 1 << 20}); err == nil || !strings.Contains(err.Error(), "exceed the limit") {
		t.Errorf("over the limit: err = %v", err)
	}
	// A truncated codestream fails the whole instance.
	pd := src.DataSet.Find(dcm.PixelData)
	pd.Fragments = pd.Fragments[:len(pd.Fragments)/2]
	if _, err := Decompress(src.DataSet, dcm.JPEG2000Lossless, dcm.Limits{}); err == nil {
		t.Error("truncated codestream decompressed")
	}
}

func writeFile(t *testing.T, path string, src *dcm.File, ds *dcm.DataSet) {
	t.Helper()
	var b bytes.Buffer
	meta := src.Meta
	meta.TransferSyntaxUID = dcm.ExplicitVRLittleEndian
	meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.1"
	meta.SourceApplicationEntityTitle = "" // some shared files have a control character there
	if err := dcm.WriteFileMeta(&b, meta); err != nil {
		t.Fatal(err)
	}
	w, err := dcm.NewWriter(&b, dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDataSet(ds); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func image(t *testing.T, f *dcm.File) *pixel.Image {
	t.Helper()
	im, err := pixel.NewImage(f)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func frame(t *testing.T, im *pixel.Image, i int) *pixel.Frame {
	t.Helper()
	f, err := im.Frame(i)
	if err != nil {
		t.Fatalf("frame %d: %v", i, err)
	}
	return f
}

func TestOffer(t *testing.T) {
	tests := []struct {
		stored string
		want   []string
	}{
		{dcm.ExplicitVRLittleEndian, []string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}},
		{dcm.ImplicitVRLittleEndian, []string{dcm.ImplicitVRLittleEndian}},
		{dcm.JPEGLosslessSV1, []string{dcm.JPEGLosslessSV1, dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}},
		{dcm.RLELossless, []string{dcm.RLELossless, dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}},
		{"1.2.840.10008.1.2.4.92", []string{"1.2.840.10008.1.2.4.92"}}, // JPEG 2000 Part 2: not decoded
	}
	for _, tc := range tests {
		if got := Offer(tc.stored); !slices.Equal(got, tc.want) {
			t.Errorf("Offer(%s) = %v, want %v", tc.stored, got, tc.want)
		}
	}
}

// TestOpenRefuses: Open converts only to what Offer lists.
func TestOpenRefuses(t *testing.T) {
	for _, c := range [][2]string{
		{dcm.ExplicitVRLittleEndian, dcm.JPEGLosslessSV1},
		{dcm.ImplicitVRLittleEndian, dcm.ExplicitVRLittleEndian},
		{"1.2.840.10008.1.2.4.92", dcm.ExplicitVRLittleEndian},
	} {
		if rc, err := Open(strings.NewReader(""), c[0], c[1], dcm.Limits{}); err == nil {
			rc.Close()
			t.Errorf("Open from %s to %s: no error", c[0], c[1])
		}
	}
}
