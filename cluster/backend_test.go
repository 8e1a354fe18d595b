package cluster

import (
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// backend is the engines a cluster keeps its index and archive on.
type backend interface {
	// describe names the engines, for the test's log.
	describe() string
	// roles are the roles of the scenario's nodes, one a node ("" for the default): a single
	// node for engines that share nothing.
	roles() []string
	// newStorage makes an empty index and archive for one cluster.
	newStorage(tb testing.TB) storage
	// restartIndex restarts the index's database server; false when the engine has none.
	restartIndex(tb testing.TB) bool
}

// storage is one cluster's index and archive.
type storage struct {
	// env is added to every node's environment (ESPNODE_INDEX, ESPNODE_ARCHIVE, AWS_*).
	env []string
	// objects returns every object of the archive by key (archive/STUDY/SERIES/SOP.dcm, as
	// store.Store names them), with its size.
	objects func(tb testing.TB, nodes []*node) map[string]int64
}

// localBackend is the single-node default: SQLite and the file archive under each node's
// data_dir, which the nodes do not share.
type localBackend struct{}

func (localBackend) describe() string             { return "SQLite index and file archive in each node's data_dir" }
func (localBackend) roles() []string              { return []string{""} }
func (localBackend) restartIndex(testing.TB) bool { return false }

func (localBackend) newStorage(testing.TB) storage {
	return storage{objects: dataDirObjects}
}

// dataDirObjects lists the file archives of the nodes' data_dirs.
func dataDirObjects(tb testing.TB, nodes []*node) map[string]int64 {
	tb.Helper()
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
			tb.Fatalf("%s: reading the archive: %v", n.name, err)
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
