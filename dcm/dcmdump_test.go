package dcm

import (
	"bytes"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// sharedFiles lists every .dcm file of the shared test set.
func sharedFiles(t testing.TB) []string {
	t.Helper()
	root := testutil.SharedData(t, "dicom")
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".dcm") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("only %d DICOM files under %s", len(files), root)
	}
	return files
}

// dumpLine matches one dcmdump line: indentation, tag, VR, value, length.
var dumpLine = regexp.MustCompile(`^( *)\(([0-9a-f]{4}),([0-9a-f]{4})\) ([A-Z?]{2}) (.*?) +# *(\d+|u/l),`)

// dcmdumpTop runs DCMTK's dcmdump on path and returns the values of the
// top-level elements (meta group included) as dcmdump prints them, brackets
// removed, plus whether dcmdump wrote warnings or errors.
func dcmdumpTop(t testing.TB, path string, args ...string) (map[Tag]string, string) {
	t.Helper()
	tool := testutil.Tool(t, "dcmdump", "dcmtk")
	cmd := exec.Command(tool, append([]string{"-M", "-Un", "+L"}, append(args, path)...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", path, err, stderr.String())
	}
	vals := make(map[Tag]string)
	for _, line := range strings.Split(stdout.String(), "\n") {
		m := dumpLine.FindStringSubmatch(line)
		if m == nil || m[1] != "" {
			continue
		}
		g, _ := strconv.ParseUint(m[2], 16, 16)
		e, _ := strconv.ParseUint(m[3], 16, 16)
		v := m[5]
		switch {
		case v == "(no value available)":
			v = ""
		case strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]"):
			v = v[1 : len(v)-1]
		}
		vals[NewTag(uint16(g), uint16(e))] = v
	}
	return vals, stderr.String()
}
