package transcode

import (
	"bytes"
	"os"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
)

// FuzzDecompress reads any bytes as a file and decompresses it as a C-MOVE, C-GET or delivery
// to a peer that takes no compressed syntax would, then writes the result: every frame through
// its codec, the native Pixel Data built from the header's sizes, the rewritten attributes.
func FuzzDecompress(f *testing.F) {
	for _, rel := range []string{"US/wg04_US1_RLE.dcm", "SM/highdicom_sm_image_rgb_jpegls.dcm", "CT/cornerstone_CT_j2k.dcm",
		"CT/cornerstone_CT_jpegll_p14.dcm", "US_multiframe/pydicom_examples_ybr_color_30fr_jpegbaseline.dcm"} {
		data, err := os.ReadFile(testutil.SharedData(f, "dicom", rel))
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > 160<<10 {
			data = data[:160<<10]
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := dcm.ReadPart10(bytes.NewReader(data), dcm.ParseOptions{})
		if err != nil || !Decompressible(file.Meta.TransferSyntaxUID) {
			return
		}
		ds, err := Decompress(file.DataSet, file.Meta.TransferSyntaxUID, dcm.Limits{MaxValueLength: 64 << 20})
		if err != nil {
			return
		}
		if _, err := dcm.Encode(ds, dcm.ExplicitVRLittleEndian); err != nil {
			t.Fatalf("decompressed data set does not encode: %v", err)
		}
	})
}
