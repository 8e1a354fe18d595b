// Package cluster holds the cluster scenario of docs/SCALING.md: several espnode serve processes,
// built and run by the test, behind Debian's HAProxy (TCP mode, round-robin), sharing one index
// and one archive; the test kills a node with SIGKILL and restarts it, restarts the index's
// database, and checks afterwards that nothing acknowledged was lost and nothing was kept twice.
// Every program is a real one: DCMTK's storescu sends, storescp receives the SEGs.
package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bins are the programs built once for the whole package: espnode, and bench/ingest/gen, the
// project's writer of small synthetic instances (each with its own SOP Instance UID).
var bins struct {
	espnode, gen string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "espnode-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.espnode = filepath.Join(dir, "espnode")
	bins.gen = filepath.Join(dir, "gen")
	for bin, pkg := range map[string]string{bins.espnode: "../cmd/espnode", bins.gen: "../bench/ingest/gen"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
