package dicomseg

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/channel"
)

// tagPaths lists the attributes in a dcmdump listing as nesting paths such as
// "5200,9230>0020,9111>0020,9157 UL", leaving out items and delimiters. The last tag carries
// its VR, which for an implicit VR file is DCMTK's dictionary's: comparing them checks ours.
func tagPaths(dump string) []string {
	var stack []string
	set := map[string]bool{}
	for _, line := range strings.Split(dump, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(trimmed, "(") || len(trimmed) < 11 || strings.HasPrefix(trimmed, "(fffe,") {
			continue
		}
		depth := (len(line) - len(trimmed)) / 4
		if depth > len(stack) {
			continue
		}
		stack = append(stack[:depth], trimmed[1:10])
		set[strings.Join(stack, ">")+" "+trimmed[12:14]] = true
	}
	var paths []string
	for p := range set {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// TestStructureMatchesHighdicom encodes a SEG from the CT image that highdicom's reference SEG
// was made from, and compares the attributes the two contain, at every nesting level.
func TestStructureMatchesHighdicom(t *testing.T) {
	dir := testutil.SharedData(t, "dicom", "SEG", "highdicom_ct")
	src, err := ReadSource(filepath.Join(dir, "ct_image.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := channel.ByName("xray")
	res, err := Encode(src, []Segment{SegmentForChannel(ch, [][]byte{pattern(src.Rows, src.Columns, 0, 0, Binary)})},
		Options{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(t.TempDir(), "seg.dcm")
	if err := os.WriteFile(ours, res.Bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	got := tagPaths(dcmdump(t, ours))
	want := tagPaths(dcmdump(t, filepath.Join(dir, "seg_image_ct_binary_single_frame.dcm")))
	if len(got) < 50 || len(want) < 50 {
		t.Fatalf("too few attributes parsed: %d ours, %d highdicom's", len(got), len(want))
	}

	// Attributes only one side has, and why that is right.
	onlyHighdicom := map[string]string{
		"7fe0,0010 OW":                     "(the same Pixel Data: see ours)",
		"0008,2112 SQ":                     "General Reference's Source Image Sequence is Type 3; each frame's Derivation Image names its source",
		"0008,2112>0008,1150 UI":           "(same)",
		"0008,2112>0008,1155 UI":           "(same)",
		"0010,1010 AS":                     "Patient Study module (Patient's Age) is optional; the SEG copies only Patient and General Study",
		"0010,1030 DS":                     "(Patient's Weight, same)",
		"0010,21b0 LT":                     "(Additional Patient History, same)",
		"0062,0002>0062,0020 UT":           "Tracking ID is Type 3; a single-image result tracks nothing over time",
		"0062,0002>0062,0021 UI":           "(Tracking UID, same)",
		"5200,9229>0028,9110>0018,0088 DS": "Spacing Between Slices is Type 3 and meaningless for one slice",
	}
	onlyOurs := map[string]string{
		"7fe0,0010 OB":           "1-bit Pixel Data is OB in explicit VR; highdicom's file is implicit VR, where dcmdump shows OW",
		"0008,0012 DA":           "Instance Creation Date (SOP Common, Type 3) records when the result was made",
		"0008,0013 TM":           "(Instance Creation Time, same)",
		"0008,0021 DA":           "Series Date (General Series, Type 3)",
		"0008,0031 TM":           "(Series Time, same)",
		"0008,103e LO":           "Series Description is configurable, as the issue asks",
		"0062,0002>0062,0006 ST": "Segment Description names the model channel",
	}
	for _, p := range got {
		if !slices.Contains(want, p) {
			if _, ok := onlyOurs[p]; !ok {
				t.Errorf("attribute %s is in ours, not in highdicom's", p)
			}
		}
	}
	for _, p := range want {
		if !slices.Contains(got, p) {
			if _, ok := onlyHighdicom[p]; !ok {
				t.Errorf("attribute %s is in highdicom's, not in ours", p)
			}
		}
	}
	for p := range onlyOurs {
		if !slices.Contains(got, p) || slices.Contains(want, p) {
			t.Errorf("listed difference %s (only ours) does not hold", p)
		}
	}
	for p := range onlyHighdicom {
		if slices.Contains(got, p) || !slices.Contains(want, p) {
			t.Errorf("listed difference %s (only highdicom's) does not hold", p)
		}
	}
}
