package cluster

import (
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// backend is where a cluster keeps its index and archive: what each node's environment gets, and
// what the test reads back and restarts.
type backend interface {
	// describe names the engines, for the test's log.
	describe() string
	// nodes is how many nodes the scenario runs on these engines.
	nodes() int
	// env is added to every node's environment (ESPNODE_INDEX, ESPNODE_ARCHIVE, AWS_*).
	env() []string
	// objects returns every object of the archive by key (archive/STUDY/SERIES/SOP.dcm, as
	// store.Store names them), with its size.
	objects(t *testing.T, nodes []*node) map[string]int64
	// restartIndex restarts the index's database server; false when the engine has none.
	restartIndex(t *testing.T) bool
}

// localBackend is the single-node default: SQLite and the file archive under the node's
// data_dir. It shares nothing, so it runs one node.
type localBackend struct{}

func (localBackend) describe() string             { return "SQLite index, file archive (one node)" }
func (localBackend) nodes() int                   { return 1 }
func (localBackend) env() []string                { return nil }
func (localBackend) restartIndex(*testing.T) bool { return false }

func (localBackend) objects(t *testing.T, nodes []*node) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, n := range nodes {
		err := filepath.WalkDir(n.dataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".dcm") {
				return err
			}
			rel, err := filepath.Rel(n.dataDir, p)
			if err != nil {
				return err
			}
			if key := filepath.ToSlash(rel); strings.HasPrefix(key, "archive/") {
				info, err := d.Info()
				if err != nil {
					return err
				}
				out[key] = info.Size()
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: reading the archive: %v", n.name, err)
		}
	}
	return out
}

// objectsBySOP counts the archive's objects by the SOP Instance UID their key ends with.
func objectsBySOP(keys map[string]int64) map[string]int {
	out := map[string]int{}
	for k := range keys {
		out[strings.TrimSuffix(path.Base(k), ".dcm")]++
	}
	return out
}
