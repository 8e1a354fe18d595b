package interop

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// dcmjsResult is what interop/dcmjs/peer.js prints.
type dcmjsResult struct {
	Op        string `json:"op"`
	Accepted  bool   `json:"accepted"`
	Released  bool   `json:"released"`
	Error     string `json:"error"`
	Responses []struct {
		Status    int            `json:"status"`
		Completed int            `json:"completed"`
		Failures  int            `json:"failures"`
		Warnings  int            `json:"warnings"`
		Remaining int            `json:"remaining"`
		Dataset   map[string]any `json:"dataset"`
	} `json:"responses"`
	Stored []string `json:"stored"`
}

// dcmjs runs one operation of the dcmjs-dimse peer; npm ci in interop/ (scripts/deps.sh test)
// installs it.
func dcmjs(t *testing.T, args map[string]any) (dcmjsResult, string) {
	t.Helper()
	nodeBin := testutil.Tool(t, "node", "nodejs")
	if _, err := os.Stat(filepath.Join("node_modules", "dcmjs-dimse")); err != nil {
		t.Fatalf("dcmjs-dimse not installed in interop/node_modules: run scripts/deps.sh test (npm ci in interop/)")
	}
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	out, runErr := exec.Command(nodeBin, filepath.Join("dcmjs", "peer.js"), string(b)).CombinedOutput()
	var r dcmjsResult
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("dcmjs-dimse %s: %v (exit %v)\n%s", args["op"], err, runErr, out)
	}
	if runErr != nil && r.Error == "" {
		r.Error = runErr.Error()
	}
	return r, string(out)
}

// TestGetFailedSOPInstanceUIDList: a C-GET of a study with one instance the requestor cannot take
// (JPEG-LS, which it did not propose with the SCP role, and whose codestream is cut short, so the
// node cannot decompress it for the requestor either) fails that sub-operation; the final
// response is B000 with the Failed SOP Instance UID List (PS3.4 C.4.3.1.3.1). dcmjs-dimse reads
// it and releases cleanly. DCMTK 3.6.7's getscu completes the retrieve (the file it can take
// arrives, it exits 0) but never reads the final response's identifier, so its A-RELEASE then
// meets that P-DATA and fails: for such a requestor the AE table's omit_get_failed_list leaves
// the list out, and getscu releases cleanly.
func TestGetFailedSOPInstanceUIDList(t *testing.T) {
	f := newFixture(t)
	n := startNode(t, nodeOptions{peers: []string{"{ae_title: GETSCU_NOLIST, host: 127.0.0.1, port: 104, omit_get_failed_list: true}"}})
	storeFixture(t, n, f)
	getscu := func(t *testing.T, aet string) (string, map[string]any) {
		dir := t.TempDir()
		before := len(n.logLinesExactly("C-GET"))
		out, err := run(t, "getscu", "dcmtk", "-aet", aet, "-aec", "ESPNODE", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+f.study,
			"-od", dir, "127.0.0.1", strconv.Itoa(n.port))
		if err != nil {
			t.Fatalf("getscu: %v\n%s", err, out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("getscu received %d files, want 1 (the uncompressed CT)\n%s", len(entries), out)
		}
		if !strings.Contains(out, "SubOperationsCompleteOneOrMoreFailures") {
			t.Fatalf("getscu did not see the final B000:\n%s", out)
		}
		// The summary is logged after the final response, which getscu may read, and exit on, first.
		waitFor(t, "the node's C-GET summary log line", func() bool { return len(n.logLinesExactly("C-GET")) > before })
		l := n.logLinesExactly("C-GET")
		last := l[len(l)-1]
		if last["failed"] != 1.0 || last["completed"] != 1.0 {
			t.Fatalf("node's C-GET log %v: want one completed and one failed sub-operation", last)
		}
		return out, last
	}
	t.Run("getscu with the list", func(t *testing.T) {
		out, summary := getscu(t, "GETSCU")
		if summary["failed_list_sent"] != true {
			t.Fatal("the list was not sent")
		}
		// getscu's own limitation, recorded so that a DCMTK that fixes it is noticed.
		if !strings.Contains(out, "Association Release Failed") {
			t.Logf("getscu now releases cleanly after a final response with an identifier:\n%s", out)
		}
	})
	t.Run("getscu without the list (omit_get_failed_list)", func(t *testing.T) {
		out, summary := getscu(t, "GETSCU_NOLIST")
		if summary["failed_list_sent"] != false {
			t.Fatal("the list was sent to an AE marked omit_get_failed_list")
		}
		if strings.Contains(out, "Release Failed") {
			t.Fatalf("getscu's release failed without the list:\n%s", out)
		}
	})
	t.Run("dcmjs-dimse", func(t *testing.T) {
		r, out := dcmjs(t, map[string]any{"op": "get", "host": "127.0.0.1", "port": n.port, "study": f.study, "out": t.TempDir()})
		if r.Error != "" || !r.Released || len(r.Responses) == 0 {
			t.Fatalf("dcmjs-dimse C-GET did not complete and release: %+v\n%s", r, out)
		}
		last := r.Responses[len(r.Responses)-1]
		if last.Status != 0xB000 || last.Completed != 1 || last.Failures != 1 || last.Dataset["FailedSOPInstanceUIDList"] != f.ctJLSUID {
			t.Fatalf("final C-GET-RSP %+v: want B000, 1 completed, 1 failed, the list naming %s", last, f.ctJLSUID)
		}
		if len(r.Stored) != 1 || r.Stored[0] != f.ctPlainUID {
			t.Fatalf("dcmjs-dimse received %v, want %s", r.Stored, f.ctPlainUID)
		}
	})
}
