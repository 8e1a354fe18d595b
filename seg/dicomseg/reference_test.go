package dicomseg

import (
	"os"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// TestDecodeReferenceSEGs decodes SEGs made by other tools (dcmqi, highdicom, the TCGA
// collection) and compares every frame with what pydicom gives.
func TestDecodeReferenceSEGs(t *testing.T) {
	tests := []struct {
		path          string
		typ           string
		frames        int
		rows, columns int
	}{
		{path: "tcga_gbm_TCGA-08-0360_seg_96fr.dcm", typ: "BINARY", frames: 96, rows: 256, columns: 256},
		{path: "dcmqi_partial_overlaps_seg.dcm", typ: "BINARY", frames: 7, rows: 512, columns: 512},
		{path: "dcmqi_liver/liver_seg.dcm", typ: "BINARY", frames: 3, rows: 512, columns: 512},
		{path: "highdicom_ct/seg_image_ct_binary_single_frame.dcm", typ: "BINARY", frames: 1, rows: 128, columns: 128},
		{path: "highdicom_sm/seg_image_sm_control_labelmap.dcm", typ: "LABELMAP", frames: 20, rows: 10, columns: 10},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			path := testutil.SharedData(t, "dicom", "SEG", tt.path)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			seg, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if seg.Type != tt.typ || len(seg.Frames) != tt.frames || seg.Rows != tt.rows || seg.Columns != tt.columns {
				t.Fatalf("decoded %s, %d frames of %dx%d; want %s, %d of %dx%d",
					seg.Type, len(seg.Frames), seg.Columns, seg.Rows, tt.typ, tt.frames, tt.columns, tt.rows)
			}
			if len(seg.Segments) == 0 {
				t.Error("no segments decoded")
			}
			numbers := map[int]bool{}
			for _, s := range seg.Segments {
				numbers[s.Number] = true
				if s.Label == "" || s.Category.Value == "" || s.Type.Value == "" {
					t.Errorf("segment %d incomplete: %+v", s.Number, s)
				}
			}
			pyFrames, pySegments := pydicomFrames(t, path)
			if len(pyFrames) != len(seg.Frames) {
				t.Fatalf("pydicom has %d frames, we %d", len(pyFrames), len(seg.Frames))
			}
			foreground := 0
			for i, fr := range seg.Frames {
				if d := diffPixels(fr.Pixels, pyFrames[i]); d != "" {
					t.Errorf("frame %d: %s", i+1, d)
				}
				if fr.SegmentNumber != pySegments[i] {
					t.Errorf("frame %d: segment %d, pydicom says %d", i+1, fr.SegmentNumber, pySegments[i])
				}
				if tt.typ != "LABELMAP" && !numbers[fr.SegmentNumber] {
					t.Errorf("frame %d refers to segment %d, which is not in the Segment Sequence", i+1, fr.SegmentNumber)
				}
				if len(fr.Sources) == 0 || fr.Sources[0].SOPInstanceUID == "" {
					t.Errorf("frame %d: no source image decoded", i+1)
				}
				for _, v := range fr.Pixels {
					if v != 0 {
						foreground++
					}
				}
			}
			// All-zero frames on both sides would make the comparison vacuous.
			if foreground == 0 {
				t.Error("no foreground pixel in any frame")
			}
		})
	}
}
