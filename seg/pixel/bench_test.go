package pixel

import (
	"path/filepath"
	"testing"
)

// BenchmarkDecodeFrame decodes the first frame of one shared file per codec; bench/pixel
// compares the same decoding with DCMTK and GDCM.
func BenchmarkDecodeFrame(b *testing.B) {
	for _, rel := range []string{
		"CR/wg04_RG2_RLE_mono2.dcm", "CR/wg04_RG3_JPLL_mono1.dcm", "CR/fodicom_CR_modality_lut_seq_jpegll.dcm", "CR/wg04_RG2_JPLY_mono2.dcm",
		"CR/orthanc_Issue44_mono1_jpegbaseline.dcm", "SM/cmu1_pyramid/level-0-frames-0-30.dcm", "CR/wg04_RG2_JLSL_mono2.dcm", "CR/wg04_RG2_J2KR_mono2.dcm",
	} {
		b.Run(filepath.Base(rel), func(b *testing.B) {
			im := loadImage(b, rel)
			b.SetBytes(int64(im.Rows * im.Columns * im.SamplesPerPixel))
			for b.Loop() {
				if _, err := im.Frame(0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// radiograph is the shared 1760x1760 CR (12 bits stored, a window, MONOCHROME1), decoded.
func radiograph(b *testing.B) (*Image, *Frame) {
	im := loadImage(b, "CR/wg04_RG3_UNC_mono1.dcm")
	fr, err := im.Frame(0)
	if err != nil {
		b.Fatal(err)
	}
	return im, fr
}

// BenchmarkRender maps the decoded radiograph to display RGB.
func BenchmarkRender(b *testing.B) {
	im, fr := radiograph(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := im.Render(fr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreprocess fits the rendered radiograph into the shipped model's 256 input: the
// letterbox's share of an X-ray's time before the model.
func BenchmarkPreprocess(b *testing.B) {
	im, fr := radiograph(b)
	rgb, err := im.Render(fr)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Preprocess(rgb, 256); err != nil {
			b.Fatal(err)
		}
	}
}
