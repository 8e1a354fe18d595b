package testutil

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzSeeds returns the []byte values of a fuzz target's seed corpus (testdata/fuzz/TARGET, the
// files `go test -fuzz` reads: a version line, then one []byte("...") line), so that a unit test
// can run what the fuzzer starts from; it fails when the corpus has fewer than min entries.
func FuzzSeeds(t testing.TB, target string, min int) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil || len(files) < min {
		t.Fatalf("seed corpus of %s: %d files (want at least %d), %v", target, len(files), min, err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, v, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(v, "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, []byte(s))
	}
	return out
}
