package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
)

// orthanc is a real Orthanc (Debian's package) on loopback, with espnode in its modality table.
type orthanc struct {
	t    *testing.T
	http string
}

func startOrthanc(t *testing.T, dicomPort, espnodePort int) *orthanc {
	t.Helper()
	bin, err := exec.LookPath("Orthanc")
	if err != nil {
		t.Fatal("Orthanc not found: install Debian's orthanc (scripts/deps.sh test does)")
	}
	dir := t.TempDir()
	httpPort := freePort(t)
	cfg := map[string]any{
		"Name": "espnode-test", "StorageDirectory": filepath.Join(dir, "db"), "IndexDirectory": filepath.Join(dir, "db"),
		"HttpPort": httpPort, "DicomPort": dicomPort, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
		"AuthenticationEnabled": false, "DicomCheckCalledAet": false, "Plugins": []string{},
		"DicomModalities":    map[string]any{"espnode": []any{"ESPNODE", "127.0.0.1", espnodePort}},
		"HttpDescribeErrors": true,
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "Orthanc", exec.Command(bin, path))
	o := &orthanc{t: t, http: fmt.Sprintf("http://127.0.0.1:%d", httpPort)}
	for i := 0; i < 200; i++ {
		if rsp, err := http.Get(o.http + "/system"); err == nil {
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return o
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("Orthanc did not answer on its HTTP port (its output follows)")
	return nil
}

func (o *orthanc) call(method, path string, body any, into any) {
	o.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, o.http+path, r)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer rsp.Body.Close()
	data, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != http.StatusOK {
		o.t.Fatalf("%s %s: %s\n%s", method, path, rsp.Status, data)
	}
	if into != nil {
		if err := json.Unmarshal(data, into); err != nil {
			o.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

// TestOrthancQueriesAndRetrievesSEG: Orthanc, with espnode declared as a modality, finds a study
// on espnode and retrieves its SEG, which it did not have.
func TestOrthancQueriesAndRetrievesSEG(t *testing.T) {
	orthancDICOM := freePort(t)
	n := startNode(t, func(c *config.Config) {
		c.Peers = []config.Peer{{AETitle: "ORTHANC", Host: "127.0.0.1", Port: orthancDICOM}}
	})
	o := startOrthanc(t, orthancDICOM, n.port)
	var stdout, stderr bytes.Buffer
	liver := testutil.SharedData(t, "dicom", "SEG", "dcmqi_liver")
	if code := run(t.Context(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"store", "--called-ae", "ESPNODE", n.addr, liver}); code != 0 {
		t.Fatalf("load: %d\n%s%s", code, stdout.String(), stderr.String())
	}
	seg := readMeta(t, filepath.Join(liver, "liver_seg.dcm"))
	study := readAttrs(t, filepath.Join(liver, "liver_seg.dcm"), dcm.StudyInstanceUID).String(dcm.StudyInstanceUID)

	var echo any
	o.call("POST", "/modalities/espnode/echo", "{}", &echo)

	var q struct{ ID string }
	o.call("POST", "/modalities/espnode/query", map[string]any{"Level": "Study", "Query": map[string]string{"StudyInstanceUID": study, "ModalitiesInStudy": ""}}, &q)
	var answers []string
	o.call("GET", "/queries/"+q.ID+"/answers", nil, &answers)
	if len(answers) != 1 {
		t.Fatalf("Orthanc's study query got %d answers, want 1", len(answers))
	}
	var content map[string]any
	o.call("GET", "/queries/"+q.ID+"/answers/0/content?simplify", nil, &content)
	if mods := fmt.Sprint(content["ModalitiesInStudy"]); !strings.Contains(mods, "SEG") || !strings.Contains(mods, "CT") {
		t.Fatalf("ModalitiesInStudy %q, want CT and SEG (answer %v)", mods, content)
	}

	o.call("POST", "/modalities/espnode/query", map[string]any{"Level": "Series", "Query": map[string]string{"StudyInstanceUID": study, "Modality": "SEG", "SeriesInstanceUID": ""}}, &q)
	o.call("GET", "/queries/"+q.ID+"/answers", nil, &answers)
	if len(answers) != 1 {
		t.Fatalf("Orthanc's SEG series query got %d answers, want 1", len(answers))
	}
	var job any
	o.call("POST", "/queries/"+q.ID+"/answers/0/retrieve", map[string]any{"TargetAet": "ORTHANC", "Synchronous": true}, &job)

	var found []string
	o.call("POST", "/tools/find", map[string]any{"Level": "Instance", "Query": map[string]string{"SOPInstanceUID": seg.MediaStorageSOPInstanceUID}}, &found)
	if len(found) != 1 {
		t.Fatalf("Orthanc holds %d instances with the SEG's UID after the retrieve, want 1", len(found))
	}
	var tags map[string]any
	o.call("GET", "/instances/"+found[0]+"/simplified-tags", nil, &tags)
	if tags["Modality"] != "SEG" || tags["SOPClassUID"] != "1.2.840.10008.5.1.4.1.1.66.4" {
		t.Fatalf("retrieved instance: Modality %v, SOPClassUID %v", tags["Modality"], tags["SOPClassUID"])
	}
	var all []string
	o.call("GET", "/instances", nil, &all)
	if len(all) != 1 {
		t.Fatalf("Orthanc holds %d instances, want only the SEG series it asked for", len(all))
	}
}
