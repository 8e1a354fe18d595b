package dicomseg

import (
	"os"
	"testing"
)

// FuzzDecode feeds Decode arbitrary bytes: it must return an error or a SEG, never panic or
// allocate without bound.
func FuzzDecode(f *testing.F) {
	empty := make([]byte, 15)
	res, err := Encode(testSource(), []Segment{testSegment(ones(15), empty, ones(15))}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(res.Bytes)
	src := testSource()
	src.Frames = 1
	frac, err := Encode(src, []Segment{testSegment(ones(15))}, Options{Type: Fractional})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frac.Bytes)
	// A reference SEG in implicit VR, when the shared data is there; the fuzzer works without it.
	if b, err := os.ReadFile("../../../shared/data/dicom/SEG/highdicom_ct/seg_image_ct_binary_single_frame.dcm"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("DICM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		seg, err := Decode(data)
		if err != nil {
			return
		}
		for i, fr := range seg.Frames {
			if len(fr.Pixels) != seg.Rows*seg.Columns {
				t.Fatalf("frame %d has %d pixels for %dx%d", i, len(fr.Pixels), seg.Columns, seg.Rows)
			}
		}
	})
}
