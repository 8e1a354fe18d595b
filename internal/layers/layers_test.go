// Package layers holds the test of the import rule of docs/DESIGN.md ("Packages and layers"):
// a package imports only packages of layers below its own.
package layers

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

const module = "github.com/espnode/espnode/"

// layers are the module's packages from the bottom up. A package may import a package of a
// lower layer only: not one of its own layer, not one above. A package missing here fails the
// test until it is given its place.
var layers = [][]string{
	{"internal/version", "internal/testutil", "internal/layers", "dcm/internal/dictgen"},
	{"dcm"},
	{"dimse", "dcm/dcmtest"},
	{"store"},
	{"store/fsarchive", "store/sqlite", "store/postgres", "store/postgres/pgtest", "store/indextest", "store/s3archive", "store/s3archive/s3test", "store/archivetest"},
	{"store/datadir"},
	{"store/compose"},
	{"seg/channel", "seg/pixel/codec/jpeg", "seg/pixel/codec/charls", "seg/pixel/codec/openjpeg", "seg/pixel/codec/jxl", "seg/pixel/codec/turbojpeg"},
	{"seg/pixel", "seg/dicomseg"},
	{"seg/onnx", "seg/pixel/transcode"},
	{"seg/segment"},
	{"seg/eval"},
	{"config"},
	{"scp", "pipeline", "dicomweb", "httpguard", "viewer", "console"},
	{"cmd/espnode", "bench/dicomweb", "bench/dicomweb/load", "bench/e2e", "bench/infer", "bench/ingest/floor", "bench/ingest/gen", "bench/ingest/send", "bench/pixel", "bench/queue", "interop", "cluster"},
}

// engineOnly are imports that keep the choice of database and queue driver inside the engine
// packages: only the packages listed may import them.
var engineOnly = map[string][]string{
	"database/sql":                                        {"store/sqlite"},
	"modernc.org/sqlite":                                  {"store/sqlite"},
	"github.com/riverqueue/river/riverdriver":             {"store/sqlite"},
	"github.com/riverqueue/river/riverdriver/riversqlite": {"store/sqlite"},
	"github.com/riverqueue/river/rivermigrate":            {"store/sqlite", "store/postgres"},
	"github.com/riverqueue/river/riverdriver/riverpgxv5":  {"store/postgres"},
	"github.com/jackc/pgx/v5":                             {"store/postgres", "store/postgres/pgtest"},
	"github.com/jackc/pgx/v5/pgconn":                      {"store/postgres"},
	"github.com/jackc/pgx/v5/pgxpool":                     {"store/postgres"},
}

// engineOnlyTrees are engineOnly for every package under a module path: the object-store
// client stays inside the S3 archive engine and its test server.
var engineOnlyTrees = map[string][]string{
	"github.com/aws/": {"store/s3archive", "store/s3archive/s3test"},
}

// onlyFor returns the packages that alone may import imp, and whether imp is so restricted.
func onlyFor(imp string) ([]string, bool) {
	if allowed, ok := engineOnly[imp]; ok {
		return allowed, true
	}
	for tree, allowed := range engineOnlyTrees {
		if strings.HasPrefix(imp, tree) {
			return allowed, true
		}
	}
	return nil, false
}

// imports returns each package of the module with its (non-test) imports, from go list.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = testutil.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkgs[strings.TrimPrefix(f[0], module)] = f[1:]
	}
	return pkgs
}

func TestImportsGoDown(t *testing.T) {
	layer := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			layer[p] = i
		}
	}
	pkgs := imports(t)
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for pkg, imps := range pkgs {
		from, ok := layer[pkg]
		if !ok {
			t.Errorf("%s has no layer: give it one in internal/layers and docs/DESIGN.md", pkg)
			continue
		}
		for _, imp := range imps {
			if allowed, ok := onlyFor(imp); ok && !slices.Contains(allowed, pkg) {
				t.Errorf("%s imports %s, which only %v may (the engine chooses the database or object-store client)", pkg, imp, allowed)
			}
			own, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			to, ok := layer[own]
			switch {
			case !ok:
				t.Errorf("%s imports %s, which has no layer", pkg, own)
			case to >= from:
				t.Errorf("%s (layer %d) imports %s (layer %d): a package imports only layers below its own", pkg, from, own, to)
			}
		}
	}
}
