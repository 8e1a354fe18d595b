package pixel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
)

func dicomFile(t testing.TB, rel string) string {
	t.Helper()
	return testutil.SharedData(t, "dicom", rel)
}

func loadImage(t testing.TB, rel string) *Image {
	t.Helper()
	ds, err := ReadFile(dicomFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	im, err := NewImage(ds)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return im
}

func decodeFrame(t testing.TB, im *Image, i int) *Frame {
	t.Helper()
	f, err := im.Frame(i)
	if err != nil {
		t.Fatalf("frame %d: %v", i, err)
	}
	return f
}

// TestUnsupportedTransferSyntaxes checks the exact error for pixel data in a syntax no decoder
// here serves: real files whose file meta names a syntax of the same length that this package
// does not decode (JPEG 2000 Part 2, retired JPEG processes, the JPIP ones). A build without the
// C libraries says the same of theirs; TestDecodeInventory checks that under -tags nocodecs.
func TestUnsupportedTransferSyntaxes(t *testing.T) {
	tests := []struct{ file, from, to, want string }{
		{"US/wg04_US1_J2KR.dcm", dcm.JPEG2000Lossless, "1.2.840.10008.1.2.4.92", "unsupported transfer syntax 1.2.840.10008.1.2.4.92 (JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only))"},
		{"CT/cornerstone_CT_jpegext.dcm", dcm.JPEGExtended12Bit, "1.2.840.10008.1.2.4.52", "unsupported transfer syntax 1.2.840.10008.1.2.4.52 (JPEG Extended (Process 3 & 5))"},
		{"CT/cornerstone_CT_jpegll_sv1.dcm", dcm.JPEGLosslessSV1, "1.2.840.10008.1.2.4.66", "unsupported transfer syntax 1.2.840.10008.1.2.4.66 (JPEG Lossless, Hierarchical (Process 29))"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			data, err := os.ReadFile(dicomFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(data[:1024], []byte(tt.from))
			if i < 0 || len(tt.from) != len(tt.to) {
				t.Fatalf("%s: transfer syntax %s not in the file meta, or %s is not as long", tt.file, tt.from, tt.to)
			}
			copy(data[i:], tt.to)
			err = decodeBytes(data)
			if !errors.Is(err, ErrUnsupportedTransferSyntax) {
				t.Fatalf("err = %v, want ErrUnsupportedTransferSyntax", err)
			}
			if !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to end with %q", err, tt.want)
			}
		})
	}
}

func decodeBytes(data []byte) error {
	f, err := ReadPart10(bytes.NewReader(data))
	if err != nil {
		return err
	}
	im, err := NewImage(f)
	if err != nil {
		return err
	}
	_, err = im.Frame(0)
	return err
}

func decodeFirst(path string) error {
	ds, err := ReadFile(path)
	if err != nil {
		return err
	}
	im, err := NewImage(ds)
	if err != nil {
		return err
	}
	_, err = im.Frame(0)
	return err
}

// TestDecodeInventory decodes the first and last frame of every image in the shared inventory
// whose transfer syntax is supported, and checks that the rest fail as unsupported.
func TestDecodeInventory(t *testing.T) {
	f, err := os.Open(testutil.SharedData(t, "dicom", "INVENTORY.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows[1:] {
		path, ts := r[0], r[3]
		t.Run(path, func(t *testing.T) {
			if ts != "" && !Decodable(ts) {
				if err := decodeFirst(dicomFile(t, path)); !errors.Is(err, ErrUnsupportedTransferSyntax) {
					t.Errorf("err = %v, want unsupported transfer syntax", err)
				}
				return
			}
			im := loadImage(t, path)
			wantFrames, _ := strconv.Atoi(r[6])
			if im.NumFrames() != wantFrames {
				t.Errorf("%d frames, inventory says %d", im.NumFrames(), wantFrames)
			}
			for _, i := range []int{0, im.NumFrames() - 1} {
				fr := decodeFrame(t, im, i)
				if _, err := im.Render(fr); err != nil {
					t.Errorf("render frame %d: %v", i, err)
				}
			}
		})
	}
}

// TestDecodeEquivalence checks that the same image stored in different transfer syntaxes
// decodes to the same stored values, frame by frame.
func TestDecodeEquivalence(t *testing.T) {
	groups := [][]string{
		{"US/wg04_US1_UNC.dcm", "US/wg04_US1_RLE.dcm"},
		{"VL_SC/wg04_VL1_endo_barrett_UNC.dcm", "VL_SC/wg04_VL1_endo_barrett_RLE.dcm"},
		{"CT/cornerstone_CT_evrle.dcm", "CT/cornerstone_CT_ivrle.dcm", "CT/cornerstone_CT_evrbe.dcm", "CT/cornerstone_CT_rle.dcm", "CT/cornerstone_CT_deflate.dcm"},
		{"MR/pydicom_MR_small_ivrle.dcm", "MR/pydicom_MR_small_evrbe.dcm"},
		{"US_multiframe/pydicom_OBXXXX1A_2fr_evrle_palette.dcm", "US_multiframe/pydicom_OBXXXX1A_2fr_evrbe_palette.dcm"},
	}
	for _, g := range groups {
		t.Run(filepath.Base(g[0]), func(t *testing.T) {
			ref := loadImage(t, g[0])
			for _, other := range g[1:] {
				im := loadImage(t, other)
				if im.NumFrames() != ref.NumFrames() {
					t.Fatalf("%s has %d frames, %s %d", other, im.NumFrames(), g[0], ref.NumFrames())
				}
				for i := range ref.NumFrames() {
					a, b := decodeFrame(t, ref, i), decodeFrame(t, im, i)
					if !slices.Equal(a.Data, b.Data) || a.Samples != b.Samples {
						t.Errorf("%s frame %d differs from %s", other, i, g[0])
					}
				}
			}
		})
	}
}

// dcmtkRender renders a frame (1-based) with DCMTK's dcmj2pnm as 8-bit PNM.
func dcmtkRender(t testing.TB, path string, frame int, args ...string) *RGB {
	t.Helper()
	tool := testutil.Tool(t, "dcmj2pnm", "dcmtk")
	out := filepath.Join(t.TempDir(), "out.pnm")
	cmd := exec.Command(tool, append(append([]string{"+F", strconv.Itoa(frame)}, args...), path, out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dcmj2pnm %s: %v\n%s", path, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := readPNM(data)
	if err != nil {
		t.Fatalf("dcmj2pnm output: %v", err)
	}
	return img
}

// readPNM reads binary 8-bit PGM (P5) or PPM (P6) into RGB.
func readPNM(data []byte) (*RGB, error) {
	r := bufio.NewReader(bytes.NewReader(data))
	var magic string
	var w, h, maxv int
	if _, err := fmt.Fscan(r, &magic, &w, &h, &maxv); err != nil {
		return nil, err
	}
	if _, err := r.ReadByte(); err != nil {
		return nil, err
	}
	if maxv != 255 {
		return nil, fmt.Errorf("maxval %d", maxv)
	}
	img := &RGB{Width: w, Height: h, Pix: make([]uint8, w*h*3)}
	switch magic {
	case "P6":
		if _, err := io.ReadFull(r, img.Pix); err != nil {
			return nil, err
		}
	case "P5":
		gray := make([]byte, w*h)
		if _, err := io.ReadFull(r, gray); err != nil {
			return nil, err
		}
		for i, g := range gray {
			img.Pix[3*i], img.Pix[3*i+1], img.Pix[3*i+2] = g, g, g
		}
	default:
		return nil, fmt.Errorf("magic %q", magic)
	}
	return img, nil
}

func compareRGB(a, b *RGB) (maxDiff int, meanDiff float64, err error) {
	maxDiff, meanDiff, _, err = compareRGBQuantile(a, b)
	return maxDiff, meanDiff, err
}

// compareRGBQuantile also returns the 99th percentile of the absolute differences.
func compareRGBQuantile(a, b *RGB) (maxDiff int, meanDiff float64, p99 int, err error) {
	if a.Width != b.Width || a.Height != b.Height {
		return 0, 0, 0, fmt.Errorf("size %dx%d vs %dx%d", a.Width, a.Height, b.Width, b.Height)
	}
	var hist [256]int
	var sum int
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < 0 {
			d = -d
		}
		maxDiff = max(maxDiff, d)
		sum += d
		hist[d]++
	}
	for acc := 0; p99 < 255; p99++ {
		if acc += hist[p99]; acc >= len(a.Pix)*99/100 {
			break
		}
	}
	return maxDiff, float64(sum) / float64(len(a.Pix)), p99, nil
}

// TestRenderMatchesDCMTK compares this package's decode and display pipeline with DCMTK's
// rendering of the same frame. Lossless paths must agree to rounding (DCMTK converts YBR in
// integer arithmetic, hence 2). JPEG Baseline goes through libjpeg's chroma upsampling and
// colour conversion here too, so only the two decoders' IDCTs differ: a few levels at most,
// more where a steep rescale and window magnify them.
func TestRenderMatchesDCMTK(t *testing.T) {
	tests := []struct {
		file     string
		frame    int // 0-based
		args     []string
		maxDiff  int
		meanDiff float64
		p99      int // JPEG only; 0 means equal to maxDiff
	}{
		{file: "US/wg04_US1_UNC.dcm"},
		{file: "US/wg04_US1_RLE.dcm"},
		{file: "US/barre_US_RGB_8_epicard_evrbe.dcm"}, // planar configuration 1, big endian
		{file: "VL_SC/wg04_VL1_endo_barrett_RLE.dcm"},
		{file: "US/dcm4che_US_ybrfull_rle.dcm", maxDiff: 2, meanDiff: 0.7},
		{file: "US/orthanc_US_rle_planarconfig_ybrfull.dcm", maxDiff: 2, meanDiff: 0.7},
		{file: "US/cornerstone_US_ybr422_evrle_uncompressed.dcm", maxDiff: 2, meanDiff: 0.7},
		{file: "US_multiframe/barre_US_PAL_8_10x_echo_rle.dcm", frame: 6, maxDiff: 1, meanDiff: 0.6},
		{file: "US_multiframe/pydicom_OBXXXX1A_2fr_evrbe_palette.dcm", frame: 1, maxDiff: 1, meanDiff: 0.6},
		{file: "CT/cornerstone_CT_evrbe.dcm", args: []string{"+Wi", "1"}, maxDiff: 1, meanDiff: 0.6},
		{file: "CT/cornerstone_CT_rle.dcm", args: []string{"+Wi", "1"}, maxDiff: 1, meanDiff: 0.6},
		{file: "CR/wg04_RG3_UNC_mono1.dcm", args: []string{"+Wi", "1"}, maxDiff: 1, meanDiff: 0.6},
		{file: "CR/barre_CR_MONO1_10_chest_acrnema_nometa.dcm", args: []string{"+Wi", "1"}, maxDiff: 1, meanDiff: 0.6},
		{file: "CR/wg04_RG2_RLE_mono2.dcm", args: []string{"+Wi", "1"}, maxDiff: 1, meanDiff: 0.6},
		{file: "MR/wg04_MR2_RLE_1024.dcm", args: []string{"+Wi", "1"}, maxDiff: 1, meanDiff: 0.6},
		{file: "DX/highdicom_dx_image_mono1_evrle.dcm", args: []string{"+Wi", "1"}, maxDiff: 1, meanDiff: 0.6},
		{file: "US/gdcm_philips_US_jpegbaseline_ybr422.dcm", maxDiff: 4, meanDiff: 0.1, p99: 1},
		{file: "US_multiframe/orthanc_Issue16_34fr_jpegbaseline.dcm", frame: 20, maxDiff: 4, meanDiff: 0.1, p99: 1},
		{file: "US_multiframe/pydicom_examples_ybr_color_30fr_jpegbaseline.dcm", frame: 29, maxDiff: 4, meanDiff: 0.1, p99: 1},
		{file: "wrapped/OP_drive_drive_05.dcm", maxDiff: 4, meanDiff: 0.1, p99: 1},
		{file: "wrapped/ES_polypgen_130OLCV1_100H0002.dcm", maxDiff: 4, meanDiff: 0.1, p99: 1},
		{file: "SM/fodicom_WSI_140fr_jpegbaseline_modalitySC.dcm", frame: 0, maxDiff: 4, meanDiff: 0.1, p99: 1},
		// Photometric RGB over JFIF YCbCr data, as many slide scanners write: DCMTK trusts the
		// attribute unless told to follow the JPEG markers (+cg), as this package and PIL do.
		{file: "SM/cmu1_pyramid/level-3-frames-0-1.dcm", args: []string{"+cg"}, maxDiff: 4, meanDiff: 0.1, p99: 1},
		{file: "XC/fodicom_XC_photo_jpegbaseline_icon.dcm", maxDiff: 4, meanDiff: 0.1, p99: 1},
		{file: "wrapped/XC_ph2_IMD008.dcm", maxDiff: 4, meanDiff: 0.1, p99: 1},
		// Rescale slope 32 and a 400-wide window amplify each decoder difference about 20 times.
		{file: "CT/cornerstone_CT_jpegbaseline_8bit.dcm", args: []string{"+Wi", "1"}, maxDiff: 40, meanDiff: 1, p99: 4},
		{file: "CR/orthanc_Issue44_mono1_jpegbaseline.dcm", args: []string{"+Wi", "1"}, maxDiff: 8, meanDiff: 1, p99: 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s#%d", filepath.Base(tt.file), tt.frame), func(t *testing.T) {
			im := loadImage(t, tt.file)
			got, err := im.Render(decodeFrame(t, im, tt.frame))
			if err != nil {
				t.Fatal(err)
			}
			want := dcmtkRender(t, dicomFile(t, tt.file), tt.frame+1, tt.args...)
			maxDiff, mean, p99, err := compareRGBQuantile(got, want)
			if err != nil {
				t.Fatal(err)
			}
			limit99 := tt.p99
			if limit99 == 0 {
				limit99 = tt.maxDiff
			}
			t.Logf("max |diff| %d, mean %.3f, 99th percentile %d", maxDiff, mean, p99)
			if maxDiff > tt.maxDiff || mean > tt.meanDiff || p99 > limit99 {
				t.Errorf("differs from dcmj2pnm: max %d (limit %d), mean %.3f (limit %.3f), p99 %d (limit %d)", maxDiff, tt.maxDiff, mean, tt.meanDiff, p99, limit99)
			}
		})
	}
}

// TestPercentileWindow checks the fallback for grayscale without a window: it must equal
// DCMTK's linear window set to the 0.5th and 99.5th percentiles of the modality values.
func TestPercentileWindow(t *testing.T) {
	const file = "CT/wg04_CT1_UNC.dcm"
	im := loadImage(t, file)
	if len(im.Windows) != 0 || im.VOILUT != nil {
		t.Fatalf("%s has a window; the test needs a file without one", file)
	}
	fr := decodeFrame(t, im, 0)
	got, err := im.Render(fr)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := percentiles(modalitySample(fr.Data, im.modality(im.transform(0))), lowPercentile, highPercentile)
	// PS3.3's linear window maps c-0.5-(w-1)/2 to 0 and c-0.5+(w-1)/2 to 255.
	c, w := (lo+hi)/2+0.5, hi-lo+1
	want := dcmtkRender(t, dicomFile(t, file), 1, "+Ww", strconv.FormatFloat(c, 'f', -1, 64), strconv.FormatFloat(w, 'f', -1, 64))
	maxDiff, mean, err := compareRGB(got, want)
	if err != nil {
		t.Fatal(err)
	}
	if maxDiff > 1 || mean > 0.5 {
		t.Errorf("percentile window [%g, %g] differs from dcmj2pnm +Ww %g %g: max %d, mean %.3f", lo, hi, c, w, maxDiff, mean)
	}
}

// TestSingleBitFrames decodes a multi-frame 1-bit SEG and checks every frame against DCMTK.
func TestSingleBitFrames(t *testing.T) {
	const file = "SEG/dcmqi_liver/liver_seg.dcm"
	im := loadImage(t, file)
	if im.BitsAllocated != 1 {
		t.Fatalf("%s has BitsAllocated %d", file, im.BitsAllocated)
	}
	for i := range im.NumFrames() {
		fr := decodeFrame(t, im, i)
		want := dcmtkRender(t, dicomFile(t, file), i+1, "+Wm")
		ones := 0
		for k, v := range fr.Data {
			if (v == 1) != (want.Pix[3*k] > 127) {
				t.Fatalf("frame %d pixel %d: decoded %d, dcmj2pnm %d", i, k, v, want.Pix[3*k])
			}
			ones += int(v)
		}
		t.Logf("frame %d: %d foreground pixels", i, ones)
	}
}

func TestNativeBitDepthsAndPlanar(t *testing.T) {
	tests := []struct {
		name string
		info Info
		raw  []byte
		want []int32
	}{
		{"8 unsigned", Info{Rows: 1, Columns: 2, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "MONOCHROME2"}, []byte{0, 255}, []int32{0, 255}},
		{"8 signed", Info{Rows: 1, Columns: 2, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, PixelRepresentation: 1, Photometric: "MONOCHROME2"}, []byte{0x7f, 0x80}, []int32{127, -128}},
		{"12 in 16 signed", Info{Rows: 1, Columns: 2, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 12, HighBit: 11, PixelRepresentation: 1, Photometric: "MONOCHROME2"}, []byte{0xff, 0xf7, 0xff, 0x0f}, []int32{2047, -1}},
		{"12 in 16 high bits", Info{Rows: 1, Columns: 1, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 12, HighBit: 15, Photometric: "MONOCHROME2"}, []byte{0x30, 0x12}, []int32{0x123}},
		{"32 signed", Info{Rows: 1, Columns: 1, SamplesPerPixel: 1, BitsAllocated: 32, BitsStored: 32, HighBit: 31, PixelRepresentation: 1, Photometric: "MONOCHROME2"}, []byte{0xfe, 0xff, 0xff, 0xff}, []int32{-2}},
		{"1 bit", Info{Rows: 1, Columns: 10, SamplesPerPixel: 1, BitsAllocated: 1, BitsStored: 1, HighBit: 0, Photometric: "MONOCHROME2"}, []byte{0b10000101, 0b10}, []int32{1, 0, 1, 0, 0, 0, 0, 1, 0, 1}},
		{"rgb planar 0", Info{Rows: 1, Columns: 2, SamplesPerPixel: 3, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "RGB"}, []byte{1, 2, 3, 4, 5, 6}, []int32{1, 2, 3, 4, 5, 6}},
		{"rgb planar 1", Info{Rows: 1, Columns: 2, SamplesPerPixel: 3, BitsAllocated: 8, BitsStored: 8, HighBit: 7, PlanarConfiguration: 1, Photometric: "RGB"}, []byte{1, 4, 2, 5, 3, 6}, []int32{1, 2, 3, 4, 5, 6}},
		{"ybr 422", Info{Rows: 1, Columns: 2, SamplesPerPixel: 3, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "YBR_FULL_422"}, []byte{10, 20, 100, 200}, []int32{10, 100, 200, 20, 100, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.info
			in.NumberOfFrames = 1
			in.TransferSyntax = dcm.ExplicitVRLittleEndian
			in.byteOrder = binary.LittleEndian
			im := &Image{Info: in, native: tt.raw}
			fr, err := im.Frame(0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fr.Data, tt.want) {
				t.Errorf("decoded %v, want %v", fr.Data, tt.want)
			}
		})
	}
}

func TestDecodeRLE(t *testing.T) {
	// Two 8-bit samples, 2x2 pixels: segment 0 is a replicate run, segment 1 a literal run
	// followed by a no-op (-128) and the even-length pad.
	seg0 := []byte{0xFD, 7}                      // repeat 7 four times
	seg1 := []byte{0x03, 1, 2, 3, 4, 0x80, 0x00} // literal 1 2 3 4, no-op, padding
	hdr := make([]byte, 64)
	hdr[0] = 2
	hdr[4] = 64
	hdr[8] = byte(64 + len(seg0))
	frame := append(append(hdr, seg0...), seg1...)
	got, err := DecodeRLE(frame, 2, 2, 2, 8)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{7, 1, 7, 2, 7, 3, 7, 4}; !bytes.Equal(got, want) {
		t.Errorf("decoded %v, want %v", got, want)
	}
	// 16-bit: the first segment holds the high bytes.
	hdr16 := make([]byte, 64)
	hdr16[0], hdr16[4], hdr16[8] = 2, 64, 66
	got, err = DecodeRLE(append(hdr16, 0x00, 0x12, 0x00, 0x34), 1, 1, 1, 16)
	if err != nil || !bytes.Equal(got, []byte{0x34, 0x12}) {
		t.Errorf("16-bit: %v, %v", got, err)
	}
	bad := []struct {
		name string
		data []byte
	}{
		{"short header", hdr[:10]},
		{"segment count", append(append([]byte{5}, hdr[1:]...), seg0...)},
		{"short segment", append(append(append([]byte{}, hdr[:8]...), append([]byte{66}, hdr[9:]...)...), 0xFF, 1, 0x00)},
	}
	for _, b := range bad {
		if _, err := DecodeRLE(b.data, 2, 2, 2, 8); err == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
}

func TestSplitFrames(t *testing.T) {
	soi := func(s string) []byte { return append([]byte{0xFF, 0xD8}, s...) }
	tests := []struct {
		name    string
		frags   [][]byte
		offsets []uint32
		frames  int
		jpeg    bool
		want    []string
		wantErr string
	}{
		{name: "one frame many fragments", frags: [][]byte{soi("a"), []byte("bc")}, frames: 1, want: []string{"\xff\xd8abc"}},
		{name: "one per frame", frags: [][]byte{[]byte("a"), []byte("b")}, frames: 2, want: []string{"a", "b"}},
		{name: "by SOI", frags: [][]byte{soi("a"), []byte("b"), soi("c")}, frames: 2, jpeg: true, want: []string{"\xff\xd8ab", "\xff\xd8c"}},
		{name: "by offsets", frags: [][]byte{[]byte("aa"), []byte("bb"), []byte("cc")}, offsets: []uint32{0, 20}, frames: 2, want: []string{"aabb", "cc"}},
		{name: "empty offset table", frags: [][]byte{[]byte("a"), []byte("b")}, offsets: []uint32{0}, frames: 2, want: []string{"a", "b"}},
		{name: "rle needs one per frame", frags: [][]byte{[]byte("a"), []byte("b"), []byte("c")}, frames: 2, wantErr: "one fragment per frame"},
		{name: "too few SOI", frags: [][]byte{soi("a"), []byte("b"), []byte("c")}, frames: 2, jpeg: true, wantErr: "found 1 codestream starts"},
		{name: "offset inside fragment", frags: [][]byte{[]byte("aa"), []byte("bb")}, offsets: []uint32{0, 5}, frames: 2, wantErr: "does not start a fragment"},
		{name: "offset count", frags: [][]byte{[]byte("aa")}, offsets: []uint32{0, 10, 20}, frames: 2, wantErr: "3 entries for 2 frames"},
		{name: "no fragments", frames: 1, wantErr: "no fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var starts func([]byte) bool
			if tt.jpeg {
				starts = FrameStart(dcm.JPEGBaseline8Bit)
			}
			got, err := SplitFrames(tt.frags, tt.offsets, tt.frames, starts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, f := range got {
				s = append(s, string(f))
			}
			if !slices.Equal(s, tt.want) {
				t.Errorf("frames %q, want %q", s, tt.want)
			}
		})
	}
}

func TestParseItems(t *testing.T) {
	item := func(b ...byte) []byte {
		return append([]byte{0xFE, 0xFF, 0x00, 0xE0, byte(len(b)), 0, 0, 0}, b...)
	}
	value := bytes.Join([][]byte{item(0, 0, 0, 0, 10, 0, 0, 0), item(1, 2), item(3, 4), {0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}}, nil)
	offsets, frags, err := dcm.ParseFragments(value)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(offsets, []uint32{0, 10}) || len(frags) != 2 || !bytes.Equal(frags[1], []byte{3, 4}) {
		t.Errorf("offsets %v fragments %v", offsets, frags)
	}
	frames, err := SplitFrames(frags, offsets, 2, FrameStart(dcm.JPEGBaseline8Bit))
	if err != nil || !bytes.Equal(frames[1], []byte{3, 4}) {
		t.Errorf("split: %v %v", frames, err)
	}
	if _, _, err := dcm.ParseFragments(value[:len(value)-11]); err == nil {
		t.Error("truncated item: no error")
	}
}

func TestFitPreprocessPostprocess(t *testing.T) {
	geoms := []struct {
		w, h, s      int
		wantW, wantH int
	}{
		{640, 480, 1024, 1024, 768},
		{480, 640, 256, 192, 256},
		{2000, 10, 256, 256, 1},
		{256, 256, 256, 256, 256},
	}
	for _, g := range geoms {
		got := Fit(g.w, g.h, g.s)
		if got.Width != g.wantW || got.Height != g.wantH {
			t.Errorf("Fit(%d,%d,%d) = %dx%d, want %dx%d", g.w, g.h, g.s, got.Width, got.Height, g.wantW, g.wantH)
		}
	}

	// A disk on a 300x200 image: pre-process to S=128, make "logits" from the model input
	// (positive where bright), post-process, and get the disk back on the source grid.
	const w, h, s = 300, 200, 128
	img := &RGB{Width: w, Height: h, Pix: make([]uint8, w*h*3)}
	inDisk := func(x, y int) bool { return (x-150)*(x-150)+(y-90)*(y-90) < 60*60 }
	for y := range h {
		for x := range w {
			if inDisk(x, y) {
				img.Pix[3*(y*w+x)], img.Pix[3*(y*w+x)+1], img.Pix[3*(y*w+x)+2] = 200, 200, 200
			}
		}
	}
	tensor, g, err := Preprocess(img, s)
	if err != nil {
		t.Fatal(err)
	}
	if g.Width != 128 || g.Height != 85 {
		t.Fatalf("geometry %+v", g)
	}
	for c := range 3 {
		if v := tensor[c*s*s+100*s+5]; v != 0 {
			t.Fatalf("padding row 100 holds %v", v)
		}
	}
	logits := make([]float32, s*s)
	for i := range logits {
		logits[i] = tensor[i]/100 - 1 // +1 inside the disk, -1 outside, and padding -1
	}
	m, err := Postprocess(logits, g, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	var inter, union int
	for y := range h {
		for x := range w {
			a, b := inDisk(x, y), m.Bits[y*w+x] == 1
			if a && b {
				inter++
			}
			if a || b {
				union++
			}
		}
	}
	if iou := float64(inter) / float64(union); iou < 0.97 {
		t.Errorf("round trip IoU %.3f", iou)
	}
	if p := m.Prob[90*w+150]; math.Abs(float64(p)-1/(1+math.Exp(-1))) > 1e-3 {
		t.Errorf("probability at the disk centre %v", p)
	}
}

// TestResampleAntialias checks that reducing a one-pixel checkerboard averages it instead of
// sampling it (which would give pure black or white).
func TestResampleAntialias(t *testing.T) {
	const n = 64
	src := make([]float32, n*n)
	for y := range n {
		for x := range n {
			if (x+y)%2 == 0 {
				src[y*n+x] = 255
			}
		}
	}
	out := Resample(src, n, n, 1, 16, 16)
	for i, v := range out {
		if math.Abs(float64(v)-127.5) > 8 {
			t.Fatalf("pixel %d = %v, want about 127.5", i, v)
		}
	}
	flat := Resample(slices.Repeat([]float32{42}, 7*5), 7, 5, 1, 19, 3)
	for _, v := range flat {
		if math.Abs(float64(v)-42) > 1e-4 {
			t.Fatalf("constant image resampled to %v", v)
		}
	}
}

// TestResampleMaskAgrees: the mask made row by row has the bits of thresholding the whole resize.
func TestResampleMaskAgrees(t *testing.T) {
	for _, tt := range []struct{ w, h, dw, dh int }{
		{256, 256, 1760, 1760}, // a letterbox's logits to a radiograph
		{100, 68, 90, 61},      // a tiled working size back to its source
		{7, 5, 19, 3},          // enlarged along rows, reduced along columns
		{64, 48, 64, 48},       // the same size
	} {
		t.Run(fmt.Sprintf("%dx%d-%dx%d", tt.w, tt.h, tt.dw, tt.dh), func(t *testing.T) {
			logits := make([]float32, tt.w*tt.h)
			for i := range logits {
				logits[i] = float32((i*7919)%2001-1000) / 100 // -10..10, many near the threshold
			}
			want, err := Threshold(Resample(logits, tt.w, tt.h, 1, tt.dw, tt.dh), tt.dw, tt.dh, 0.5, false)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ResampleMask(logits, tt.w, tt.h, tt.dw, tt.dh, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			if got.Width != tt.dw || got.Height != tt.dh || !slices.Equal(got.Bits, want.Bits) {
				t.Fatalf("%dx%d mask, %d of %d foreground; want %d", got.Width, got.Height, got.Foreground(), len(got.Bits), want.Foreground())
			}
		})
	}
	if _, err := ResampleMask(make([]float32, 5), 2, 2, 4, 4, 0); err == nil {
		t.Error("5 logits for 2x2 accepted")
	}
}

// TestRenderSaysGray: a grayscale source renders with RGB.Gray set (so resampling takes the gray
// path), and its channels are in fact equal; a colour one renders without it.
func TestRenderSaysGray(t *testing.T) {
	for _, tt := range []struct {
		file string
		gray bool
	}{
		{"CR/wg04_RG3_UNC_mono1.dcm", true},
		{"US/wg04_US1_UNC.dcm", false},
	} {
		t.Run(tt.file, func(t *testing.T) {
			im := loadImage(t, tt.file)
			rgb, err := im.Render(decodeFrame(t, im, 0))
			if err != nil {
				t.Fatal(err)
			}
			if rgb.Gray != tt.gray {
				t.Fatalf("Gray = %v, want %v", rgb.Gray, tt.gray)
			}
			for i := 0; tt.gray && i < len(rgb.Pix); i += 3 {
				if rgb.Pix[i] != rgb.Pix[i+1] || rgb.Pix[i] != rgb.Pix[i+2] {
					t.Fatalf("pixel %d is %v but Gray is set", i/3, rgb.Pix[i:i+3])
				}
			}
		})
	}
}

// TestResampleSourcesAgree checks that resampling the 8-bit pixels themselves, the
// three-channel path that sums the channels of a tap side by side, and the gray path that sums
// one of three equal channels, give bit for bit what the per-channel float32 path gives:
// Preprocess and the tiles switched to the first three, and the Python reference
// (model/espmedsam/infer.py) was matched against the last.
func TestResampleSourcesAgree(t *testing.T) {
	for _, tt := range []struct {
		w, h, dw, dh int
		gray         bool // three equal channels, and RGB.Gray says so
	}{
		{1760, 9, 256, 2, false},    // a radiograph's rows reduced 6.9 times
		{1760, 9, 256, 2, true},     // the same, rendered from grayscale
		{90, 61, 100, 68, false},    // enlarged a little (the tiles' working size)
		{90, 61, 100, 68, true},     // the same, gray
		{7, 5, 19, 3, true},         // enlarged along rows, reduced along columns
		{640, 480, 640, 480, false}, // the same size: a converted copy
	} {
		t.Run(fmt.Sprintf("%dx%d-%dx%d-gray=%v", tt.w, tt.h, tt.dw, tt.dh, tt.gray), func(t *testing.T) {
			pix := make([]uint8, tt.w*tt.h*3)
			for i := range pix {
				pix[i] = uint8((i*7919 + i/3*104729) % 251)
				if tt.gray {
					pix[i] = uint8(i / 3 * 104729 % 251)
				}
			}
			img := &RGB{Width: tt.w, Height: tt.h, Pix: pix, Gray: tt.gray}
			got := img.Resample(tt.dw, tt.dh)
			for c := range 3 {
				plane := make([]float32, tt.w*tt.h)
				for i := range plane {
					plane[i] = float32(pix[i*3+c])
				}
				want := Resample(plane, tt.w, tt.h, 1, tt.dw, tt.dh)
				for i, v := range want {
					if g := got[i*3+c]; g != v {
						t.Fatalf("channel %d, output %d: 8-bit RGB path %v, float32 plane %v", c, i, g, v)
					}
				}
			}
		})
	}
}

// TestSegmentedPalette checks the segmented palette of the ALOKA file (which DCMTK 3.6.7 does
// not support) against pydicom's apply_color_lut, whose 16-bit output we take the high byte of.
func TestSegmentedPalette(t *testing.T) {
	const file = "US/gdcm_US_ALOKA_16_ivrle_palette.dcm"
	path := dicomFile(t, file)
	script := `import sys, pydicom
from pydicom.pixel_data_handlers.util import apply_color_lut
ds = pydicom.dcmread(sys.argv[1])
rgb = apply_color_lut(ds.pixel_array, ds)
sys.stdout.buffer.write((rgb >> 8).astype("uint8").tobytes())`
	out, err := exec.Command(testutil.Python(t), "-c", script, path).Output()
	if err != nil {
		t.Fatalf("pydicom reference (install Debian's python3-pydicom and python3-numpy): %v", err)
	}
	im := loadImage(t, file)
	got, err := im.Render(decodeFrame(t, im, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := &RGB{Width: got.Width, Height: got.Height, Pix: out}
	if len(out) != len(got.Pix) {
		t.Fatalf("pydicom gave %d bytes, want %d", len(out), len(got.Pix))
	}
	if maxDiff, mean, _ := compareRGB(got, want); maxDiff > 1 {
		t.Errorf("differs from pydicom: max %d, mean %.3f", maxDiff, mean)
	}
}

// TestCroppedEdgeTile checks a tiled slide whose last JPEG tile is encoded at its cropped size
// (55x121 in a 240x240 frame): the tile sits at the top left and the rest is black.
func TestCroppedEdgeTile(t *testing.T) {
	im := loadImage(t, "SM/fodicom_WSI_140fr_jpegbaseline_modalitySC.dcm")
	fr := decodeFrame(t, im, 139)
	var inside, outside int64
	for y := range fr.Rows {
		for x := range fr.Columns {
			v := int64(fr.At(x, y, 0))
			if x < 55 && y < 121 {
				inside += v
			} else {
				outside += v
			}
		}
	}
	if inside == 0 || outside != 0 {
		t.Errorf("tile sum %d, outside sum %d; want tile content and black outside", inside, outside)
	}
}

// TestGrayTableMatchesPerPixel checks that the table grayToRGB fills once per stored level
// gives, pixel for pixel, what the modality and VOI stages (and the MONOCHROME1 inversion) give
// applied to each pixel: on real frames (a window, the percentile fallback) and on synthetic
// ones with negative stored values, a Modality LUT and a VOI LUT.
func TestGrayTableMatchesPerPixel(t *testing.T) {
	ramp := make([]int32, 4096)
	for i := range ramp {
		ramp[i] = int32(i%700) - 300
	}
	synthetic := Info{Rows: 64, Columns: 64, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 16, HighBit: 15,
		PixelRepresentation: 1, NumberOfFrames: 1, Photometric: "MONOCHROME2", RescaleSlope: 1}
	withLUTs := synthetic
	withLUTs.ModalityLUT = &LUT{First: -200, Bits: 16, Data: []uint16{0, 100, 4000, 9000}}
	withLUTs.VOILUT = &LUT{First: 50, Bits: 12, Data: []uint16{0, 1000, 4095}}
	windowed := synthetic
	windowed.RescaleSlope, windowed.RescaleIntercept = 0.5, -20
	windowed.Windows = []Window{{Center: 10, Width: 200}}
	cases := []struct {
		name   string
		im     *Image
		stored []int32
	}{
		{"percentile, negative levels", &Image{Info: synthetic}, ramp},
		{"modality and VOI LUTs", &Image{Info: withLUTs}, ramp},
		{"rescale and window", &Image{Info: windowed}, ramp},
	}
	for _, file := range []string{"CT/wg04_CT1_UNC.dcm", "CR/wg04_RG3_UNC_mono1.dcm"} {
		im := loadImage(t, file)
		cases = append(cases, struct {
			name   string
			im     *Image
			stored []int32
		}{file, im, decodeFrame(t, im, 0).Data})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ft := c.im.transform(0)
			modality := c.im.modality(ft)
			display := c.im.voi(c.stored, ft, modality)
			levels := 1 + int(slices.Max(c.stored)) - int(slices.Min(c.stored))
			if levels > len(c.stored) || levels > displayTableSize {
				t.Fatalf("%d levels in %d pixels: the case does not reach the table", levels, len(c.stored))
			}
			for _, invert := range []bool{false, true} {
				got := make([]uint8, 3*len(c.stored))
				c.im.grayToRGB(got, c.stored, ft, invert)
				for i, v := range c.stored {
					want := display(modality(v))
					if invert {
						want = 255 - want
					}
					if px := got[3*i : 3*i+3]; px[0] != want || px[1] != want || px[2] != want {
						t.Fatalf("invert %v, pixel %d (stored %d) = %v through the table, %d applied to the pixel", invert, i, v, px, want)
					}
				}
			}
		})
	}
}

func TestGrayscalePipeline(t *testing.T) {
	base := Info{Rows: 1, Columns: 4, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 16, HighBit: 15,
		NumberOfFrames: 1, Photometric: "MONOCHROME2", RescaleSlope: 1}
	tests := []struct {
		name   string
		edit   func(*Info)
		stored []int32
		want   []uint8
	}{
		{"rescale and window", func(in *Info) {
			in.RescaleSlope, in.RescaleIntercept = 2, -100
			in.Windows = []Window{{Center: 0, Width: 101}}
		}, []int32{0, 25, 50, 75}, []uint8{0, 0, 128, 255}},
		{"modality LUT wins over rescale", func(in *Info) {
			in.RescaleSlope = 100
			in.ModalityLUT = &LUT{First: 1, Bits: 16, Data: []uint16{0, 10, 20}}
			in.Windows = []Window{{Center: 10.5, Width: 21, Function: "LINEAR_EXACT"}}
		}, []int32{0, 1, 2, 9}, []uint8{0, 0, 121, 243}},
		{"VOI LUT wins over window", func(in *Info) {
			in.VOILUT = &LUT{First: 0, Bits: 8, Data: []uint16{0, 51, 255}}
			in.Windows = []Window{{Center: 0, Width: 1}}
		}, []int32{0, 1, 2, 7}, []uint8{0, 51, 255, 255}},
		{"sigmoid", func(in *Info) {
			in.Windows = []Window{{Center: 100, Width: 50, Function: "SIGMOID"}}
		}, []int32{100, 0, 1000, 100}, []uint8{128, 0, 255, 128}},
		{"MONOCHROME1 inverts", func(in *Info) {
			in.Photometric = "MONOCHROME1"
			in.Windows = []Window{{Center: 128, Width: 256}}
		}, []int32{0, 255, 0, 255}, []uint8{255, 0, 255, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.edit(&in)
			im := &Image{Info: in}
			got, err := im.Render(&Frame{Rows: 1, Columns: 4, Samples: 1, Photometric: in.Photometric, Data: tt.stored})
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				if g := got.Pix[3*i]; int(g)-int(w) > 1 || int(w)-int(g) > 1 || got.Pix[3*i+1] != g || got.Pix[3*i+2] != g {
					t.Errorf("pixel %d = %v, want gray %d", i, got.Pix[3*i:3*i+3], w)
				}
			}
		})
	}
}

func TestExpandSegmented(t *testing.T) {
	tests := []struct {
		name    string
		seg     []uint16
		n       int
		want    []uint16
		wantErr bool
	}{
		{"discrete then linear", []uint16{0, 2, 10, 20, 1, 3, 50}, 5, []uint16{10, 20, 30, 40, 50}, false},
		{"indirect", []uint16{0, 1, 7, 1, 2, 9, 2, 2, 0, 0}, 6, []uint16{7, 8, 9, 7, 8, 9}, false},
		{"length mismatch", []uint16{0, 2, 1, 2}, 3, nil, true},
		{"linear first", []uint16{1, 2, 5}, 2, nil, true},
		{"bad opcode", []uint16{9, 1, 1}, 1, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expandSegmented(tt.seg, tt.n)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("expandSegmented = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// BenchmarkDecodeRenderPreprocess measures the CPU work before the model for a 1760x1760
// 16-bit radiograph and a 640x480 RGB ultrasound frame, at S=1024.
func BenchmarkDecodeRenderPreprocess(b *testing.B) {
	for _, file := range []string{"CR/wg04_RG3_UNC_mono1.dcm", "US/wg04_US1_RLE.dcm"} {
		b.Run(filepath.Base(file), func(b *testing.B) {
			im := loadImage(b, file)
			for b.Loop() {
				fr, err := im.Frame(0)
				if err != nil {
					b.Fatal(err)
				}
				rgb, err := im.Render(fr)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := Preprocess(rgb, 1024); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNewEncapsulatedImage builds an image from fragments and a Basic Offset Table obtained
// outside the parser (as a network peer's data set would give them) and checks it decodes
// like the file it came from.
func TestNewEncapsulatedImage(t *testing.T) {
	src := loadImage(t, "US_multiframe/barre_US_PAL_8_10x_echo_rle.dcm")
	offsets := make([]uint32, len(src.fragments))
	pos := uint32(0)
	for i, f := range src.fragments {
		offsets[i] = pos
		pos += 8 + uint32(len(f))
	}
	im, err := NewEncapsulatedImage(src.Info, offsets, src.fragments)
	if err != nil {
		t.Fatal(err)
	}
	for i := range src.NumFrames() {
		if a, b := decodeFrame(t, src, i), decodeFrame(t, im, i); !slices.Equal(a.Data, b.Data) {
			t.Errorf("frame %d differs", i)
		}
	}
	if _, err := NewEncapsulatedImage(src.Info, offsets[:3], src.fragments); err == nil {
		t.Error("short offset table accepted")
	}
}

// TestFunctionalGroups reads each frame's window of an enhanced MR from the per-frame
// functional groups and renders with it, as DCMTK does when given that window.
func TestFunctionalGroups(t *testing.T) {
	const file = "MR/fodicom_EnhancedMR_MOVEKNEE_19fr.dcm"
	im := loadImage(t, file)
	if len(im.PerFrame) != 19 {
		t.Fatalf("%d per-frame transforms, want 19", len(im.PerFrame))
	}
	for _, tt := range []struct {
		frame         int
		center, width float64
	}{{0, 1518, 2810}, {1, 1519, 2808}, {3, 1523, 2800}} {
		ft := im.PerFrame[tt.frame]
		if len(ft.Windows) == 0 || ft.Windows[0].Center != tt.center || ft.Windows[0].Width != tt.width || ft.RescaleSlope != 1 {
			t.Fatalf("frame %d: %+v, want window %g/%g and slope 1", tt.frame, ft, tt.center, tt.width)
		}
		got, err := im.Render(decodeFrame(t, im, tt.frame))
		if err != nil {
			t.Fatal(err)
		}
		want := dcmtkRender(t, dicomFile(t, file), tt.frame+1, "+Ww", strconv.FormatFloat(tt.center, 'f', -1, 64), strconv.FormatFloat(tt.width, 'f', -1, 64))
		if maxDiff, mean, err := compareRGB(got, want); err != nil || maxDiff > 1 || mean > 0.6 {
			t.Errorf("frame %d differs from dcmj2pnm: max %d, mean %.3f, %v", tt.frame, maxDiff, mean, err)
		}
	}
	ct := loadImage(t, "CT/cornerstone_EnhancedCT_2fr_fragmented_nobot_jpegext.dcm")
	if len(ct.PerFrame) != 2 || ct.PerFrame[1].RescaleIntercept != -1024 {
		t.Errorf("enhanced CT transforms %+v, want intercept -1024 from the shared groups", ct.PerFrame)
	}
}

func parseBytes(b []byte) (*dcm.File, error) {
	return dcm.ReadPart10(bytes.NewReader(b), dcm.ParseOptions{})
}

// TestHostileLengths patches real files so that one element claims far more bytes than the
// file holds; parsing must fail at once instead of allocating the claimed length.
func TestHostileLengths(t *testing.T) {
	data, err := os.ReadFile(dicomFile(t, "US/wg04_US1_UNC.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	// (0028,0010) Rows is followed by Columns; find the Pixel Data header (explicit VR LE, OW/OB).
	i := bytes.Index(data, []byte{0xE0, 0x7F, 0x10, 0x00})
	if i < 0 {
		t.Fatal("pixel data header not found")
	}
	bad := slices.Clone(data)
	binary.LittleEndian.PutUint32(bad[i+8:], 0xFFFFFFF0)
	if _, err := parseBytes(bad); err == nil || !strings.Contains(err.Error(), "claims 4294967280 bytes") {
		t.Errorf("huge pixel data length: err = %v", err)
	}
	seq, err := os.ReadFile(dicomFile(t, "CR/fodicom_CR_modality_lut_seq_jpegll.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	// The LUT Data inside the Modality LUT Sequence (nested, OW).
	j := bytes.Index(seq, []byte{0x28, 0x00, 0x06, 0x30, 'O', 'W'})
	if j < 0 {
		t.Fatal("LUT Data header not found")
	}
	binary.LittleEndian.PutUint32(seq[j+8:], 0x7FFFFFF0)
	if _, err := parseBytes(seq); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("huge nested length: err = %v", err)
	}
	if _, err := parseBytes(data[:len(data)/2]); err == nil {
		t.Error("truncated file parsed")
	}
}
