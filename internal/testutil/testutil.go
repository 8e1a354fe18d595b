// Package testutil finds the shared test material and the external tools that tests talk to.
// A test that needs something missing fails with a message naming what to install: it never
// skips silently, so CI cannot go green without having run it.
package testutil

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod, found by walking up from the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// SharedDir returns the shared test material folder: $ESPNODE_SHARED, else ../shared beside the repo.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ESPNODE_SHARED")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("shared test data not found at %s (set ESPNODE_SHARED to the folder that holds data/): %v", dir, err)
	}
	return dir
}

// SharedData returns the path of a file or folder under shared/data, failing if it is absent.
func SharedData(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{SharedDir(t), "data"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared test data missing: %v", err)
	}
	return p
}

// Tool returns the path of an executable, failing with the Debian package that provides it.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's %s (scripts/deps.sh test does)", name, debianPackage)
	}
	return p
}

// Python returns Debian's python3, which is where python3-pydicom, python3-torch and python3-onnx
// install; a python3 earlier on PATH (pyenv, venv) would not see them.
func Python(t testing.TB) string {
	t.Helper()
	const p = "/usr/bin/python3"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found: install Debian's python3 (scripts/deps.sh test does)", p)
	}
	return p
}

// Seg2DPairs reads shared/data/seg2d/MANIFEST.csv with nothing but encoding/csv and returns how
// many image/mask pairs each "channel/dataset" has in split: what tests of the evaluation expect,
// whatever datasets the shared tree holds today.
func Seg2DPairs(t testing.TB, split string) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join(SharedData(t, "seg2d"), "MANIFEST.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("seg2d MANIFEST.csv: %v (%d records)", err, len(recs))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, c := range []string{"modality", "dataset", "split"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("seg2d MANIFEST.csv has no %q column", c)
		}
	}
	out := map[string]int{}
	for _, r := range recs[1:] {
		if r[col["split"]] == split {
			out[r[col["modality"]]+"/"+r[col["dataset"]]]++
		}
	}
	return out
}
