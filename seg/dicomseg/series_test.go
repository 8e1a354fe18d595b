package dicomseg

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/channel"
)

// TestEncodeSeriesLikeDcmqi re-encodes dcmqi's liver SEG from the three CT slices it was made
// from: our SEG must validate and hold the same mask for each slice, at the same position.
func TestEncodeSeriesLikeDcmqi(t *testing.T) {
	dir := testutil.SharedData(t, "dicom", "SEG", "dcmqi_liver")
	data, err := os.ReadFile(filepath.Join(dir, "liver_seg.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var sources []*Source
	var masks [][]byte
	for _, name := range []string{"ct_03.dcm", "ct_01.dcm", "ct_02.dcm"} {
		src, err := ReadSource(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		m := ref.Mask(1, src.SOPInstanceUID, 0)
		if m == nil {
			t.Fatalf("dcmqi's SEG has no frame for %s", name)
		}
		sources = append(sources, src)
		masks = append(masks, m)
	}
	if !slices.ContainsFunc(masks, func(m []byte) bool { return slices.Contains(m, 1) }) {
		t.Fatal("dcmqi's liver masks are all empty: the comparison would prove nothing")
	}
	// dcmqi coded the liver in SNOMED RT (SRT), which dciodvfy flags as deprecated; SNOMED CT's
	// code for the same concept is used instead.
	liver := Segment{
		Label:    ref.Segments[0].Label,
		Category: channel.Code{Scheme: "SCT", Value: "91723000", Meaning: "Anatomical Structure"},
		Type:     channel.Code{Scheme: "SCT", Value: "10200004", Meaning: "Liver"},
		Masks:    masks,
	}
	res, err := EncodeSeries(sources, []Segment{liver}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "seg.dcm")
	if err := os.WriteFile(path, res.Bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	errs, warnings := dciodvfy(t, path)
	for _, e := range errs {
		t.Errorf("dciodvfy: %s", e)
	}
	// dcmqi's CT slices carry an ACR-NEMA style name (no caret), copied as it is.
	wantWarnings := []string{"Warning - Value dubious for this VR - (0x0010,0x0010) PN Patient's Name  PN [1] = <JANCT000> - Retired Person Name form"}
	if !slices.Equal(warnings, wantWarnings) {
		t.Errorf("dciodvfy warnings %q, want %q", warnings, wantWarnings)
	}
	dcmdump(t, path)

	ours, err := Decode(res.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pyFrames, _ := pydicomFrames(t, path)
	if len(ours.Frames) != 3 || len(pyFrames) != 3 {
		t.Fatalf("%d frames decoded, %d by pydicom; want 3", len(ours.Frames), len(pyFrames))
	}
	for i, src := range sources {
		refFrame, ourFrame := frameOf(ref, src.SOPInstanceUID), frameOf(ours, src.SOPInstanceUID)
		if ourFrame == nil {
			t.Fatalf("no frame refers to %s", src.SOPInstanceUID)
		}
		if d := diffPixels(ourFrame.Pixels, refFrame.Pixels); d != "" {
			t.Errorf("slice %d: %s", i+1, d)
		}
		if d := diffPixels(pyFrames[i], refFrame.Pixels); d != "" {
			t.Errorf("slice %d, pydicom: %s", i+1, d)
		}
		// dcmqi rounds positions to a few decimals; ours are the CT's own values.
		if !slices.EqualFunc(ourFrame.Position, refFrame.Position, func(a, b float64) bool { return math.Abs(a-b) < 1e-3 }) || len(ourFrame.Position) != 3 {
			t.Errorf("slice %d at %v, dcmqi says %v", i+1, ourFrame.Position, refFrame.Position)
		}
	}
	// The index values follow the slices along the normal, whatever order they came in.
	var idx []int
	for _, f := range ours.Frames {
		idx = append(idx, f.DimensionIndexValues[1])
	}
	slices.Sort(idx)
	if !slices.Equal(idx, []int{1, 2, 3}) {
		t.Errorf("position index values %v, want 1, 2 and 3", idx)
	}
}

func frameOf(s *Segmentation, sourceUID string) *Frame {
	for i, f := range s.Frames {
		if len(f.Sources) > 0 && f.Sources[0].SOPInstanceUID == sourceUID {
			return &s.Frames[i]
		}
	}
	return nil
}

func TestEncodeSeriesRejects(t *testing.T) {
	withGeometry := func(uid string, z float64) *Source {
		s := testSource()
		s.SOPInstanceUID, s.Frames = uid, 1
		s.FrameOfReferenceUID = "1.2.3.9"
		s.Geometry = &Geometry{PixelSpacing: [2]float64{1, 1}, Orientation: [6]float64{1, 0, 0, 0, 1, 0}, Positions: [][3]float64{{0, 0, z}}}
		return s
	}
	tests := []struct {
		name    string
		change  func(a, b *Source)
		wantErr string
	}{
		{"other study", func(_, b *Source) { b.Study.InstanceUID = "1.2.4" }, "in study"},
		{"other size", func(_, b *Source) { b.Rows = 4 }, "is 5x4"},
		{"other frame of reference", func(_, b *Source) { b.FrameOfReferenceUID = "1.2.3.10" }, "frame of reference"},
		{"no geometry", func(_, b *Source) { b.Geometry = nil }, "no plane geometry"},
		{"other spacing", func(_, b *Source) { b.Geometry.PixelSpacing[0] = 2 }, "pixel spacing or orientation"},
		{"same position", func(_, b *Source) { b.Geometry.Positions[0][2] = 0 }, "same position"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := withGeometry("1.2.3.4.5", 0), withGeometry("1.2.3.4.6", 5)
			if _, err := EncodeSeries([]*Source{a, b}, []Segment{testSegment(ones(15), ones(15))}, Options{}); err != nil {
				t.Fatalf("unchanged sources: %v", err)
			}
			tt.change(a, b)
			_, err := EncodeSeries([]*Source{a, b}, []Segment{testSegment(ones(15), ones(15))}, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("EncodeSeries error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
