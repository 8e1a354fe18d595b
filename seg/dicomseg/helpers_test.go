package dicomseg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
)

// parseFile reads an encoded SEG's data set.
func parseFile(b []byte) (*dcm.DataSet, error) {
	f, err := dcm.ReadPart10(bytes.NewReader(b), dcm.ParseOptions{})
	if err != nil {
		return nil, err
	}
	return f.DataSet, nil
}

// pattern makes a deterministic mask for a segment over a source frame: an ellipse whose centre
// moves with the frame and segment, cut by diagonal stripes so that set bits cross byte
// boundaries irregularly. Fractional masks get a gradient inside the ellipse.
func pattern(rows, cols, segment, frame int, typ SegmentationType) []byte {
	m := make([]byte, rows*cols)
	cy := float64(rows)/2 + float64((frame*7+segment*3)%(rows/4+1))
	cx := float64(cols)/3 + float64((frame*5+segment*11)%(cols/3+1))
	ry, rx := float64(rows)/3+1, float64(cols)/4+1
	for r := range rows {
		for c := range cols {
			dy, dx := (float64(r)-cy)/ry, (float64(c)-cx)/rx
			if dy*dy+dx*dx > 1 || (r+2*c+frame)%9 == 0 {
				continue
			}
			if typ == Fractional {
				m[r*cols+c] = byte(1 + (r*3+c+frame*17+segment*29)%255)
			} else {
				m[r*cols+c] = 1
			}
		}
	}
	return m
}

// pydicomFrames decodes a SEG with Debian's pydicom and returns its frames' pixels and each
// frame's Referenced Segment Number.
func pydicomFrames(t *testing.T, path string) (frames [][]byte, segments []int) {
	t.Helper()
	py := testutil.Python(t)
	out := filepath.Join(t.TempDir(), "frames.raw")
	cmd := exec.Command(py, filepath.Join("testdata", "pydicom_frames.py"), path, out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom could not decode %s: %v\n%s", path, err, stderr.String())
	}
	var summary struct {
		Rows, Columns, Frames int
		Segments              []int
	}
	if err := json.Unmarshal(stdout, &summary); err != nil {
		t.Fatalf("pydicom summary %q: %v", stdout, err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	size := summary.Rows * summary.Columns
	if len(raw) != size*summary.Frames {
		t.Fatalf("pydicom wrote %d bytes for %d frames of %dx%d", len(raw), summary.Frames, summary.Columns, summary.Rows)
	}
	for f := range summary.Frames {
		frames = append(frames, raw[f*size:(f+1)*size])
	}
	return frames, summary.Segments
}

// dciodvfy runs dicom3tools' validator and returns its error and warning lines.
func dciodvfy(t *testing.T, path string) (errs, warnings []string) {
	t.Helper()
	tool := testutil.Tool(t, "dciodvfy", "dicom3tools")
	// dciodvfy exits non-zero when it finds errors; the lines say which, so the status is not used.
	out, _ := exec.Command(tool, path).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Error"):
			errs = append(errs, line)
		case strings.HasPrefix(line, "Warning"):
			warnings = append(warnings, line)
		}
	}
	if len(out) == 0 {
		t.Fatalf("dciodvfy printed nothing for %s", path)
	}
	return errs, warnings
}

// dcmdump runs DCMTK's dcmdump and returns its output, failing on any warning or error.
func dcmdump(t *testing.T, path string) string {
	t.Helper()
	tool := testutil.Tool(t, "dcmdump", "dcmtk")
	cmd := exec.Command(tool, "+L", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", path, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("dcmdump complained about %s:\n%s", path, stderr.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "W: ") || strings.HasPrefix(line, "E: ") {
			t.Errorf("dcmdump: %s", line)
		}
	}
	return stdout.String()
}

func diffPixels(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d pixels, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			n := 0
			for j := range got {
				if got[j] != want[j] {
					n++
				}
			}
			return fmt.Sprintf("%d pixels differ, first at %d: got %d, want %d", n, i, got[i], want[i])
		}
	}
	return ""
}
