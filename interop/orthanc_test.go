package interop

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

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
)

// orthancDICOMweb is Debian's Orthanc with its DICOMweb plugin (orthanc-dicomweb), the node
// declared as a DICOMweb server in its configuration.
type orthancDICOMweb struct {
	t    *testing.T
	rest string
}

const orthancDICOMwebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

func startOrthancDICOMweb(t *testing.T, espnodeDICOMweb string, extra map[string]any) *orthancDICOMweb {
	t.Helper()
	bin := testutil.Tool(t, "Orthanc", "orthanc")
	if _, err := os.Stat(orthancDICOMwebPlugin); err != nil {
		t.Fatalf("%s not found: install Debian's orthanc-dicomweb (scripts/deps.sh test does)", orthancDICOMwebPlugin)
	}
	dir := t.TempDir()
	httpPort, dicomPort := freePort(t), freePort(t)
	cfg := map[string]any{
		"Name": "espnode-dicomweb-test", "StorageDirectory": filepath.Join(dir, "db"), "IndexDirectory": filepath.Join(dir, "db"),
		"HttpPort": httpPort, "DicomPort": dicomPort, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
		"AuthenticationEnabled": false, "Plugins": []string{orthancDICOMwebPlugin}, "HttpDescribeErrors": true,
		"DicomWeb": map[string]any{"Enable": true, "Root": "/dicom-web/", "Servers": map[string]any{"espnode": []string{espnodeDICOMweb + "/"}}},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "Orthanc", httpPort, exec.Command(bin, path))
	o := &orthancDICOMweb{t: t, rest: fmt.Sprintf("http://127.0.0.1:%d", httpPort)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var plugins []string
		if code, _ := o.call("GET", "/plugins", nil, &plugins); code == http.StatusOK {
			if !strings.Contains(strings.Join(plugins, ","), "dicom-web") {
				t.Fatalf("Orthanc loaded plugins %v, not the DICOMweb plugin", plugins)
			}
			return o
		}
		if time.Now().After(deadline) {
			t.Fatal("Orthanc did not answer on its REST port")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call sends a REST request to Orthanc and decodes its JSON answer into into.
func (o *orthancDICOMweb) call(method, path string, body any, into any) (int, string) {
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, o.rest+path, r)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer rsp.Body.Close()
	data, _ := io.ReadAll(rsp.Body)
	if into != nil && rsp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, into); err != nil {
			o.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return rsp.StatusCode, string(data)
}

func (o *orthancDICOMweb) mustCall(method, path string, body any, into any) {
	o.t.Helper()
	if code, msg := o.call(method, path, body, into); code != http.StatusOK {
		o.t.Fatalf("Orthanc %s %s: %d\n%s", method, path, code, msg)
	}
}

// TestOrthancDICOMweb: Orthanc's DICOMweb plugin, with the node as a remote DICOMweb server,
// queries the node's studies and series (QIDO-RS) and retrieves its SEG series (WADO-RS), which
// it did not have: the SEG arrives whole, and nothing else does.
func TestOrthancDICOMweb(t *testing.T) {
	f := newFixture(t)
	n := startNode(t, nodeOptions{http: webHTTP})
	base := n.waitHTTP(n.httpPort)
	storeFixture(t, n, f)
	o := startOrthancDICOMweb(t, base+"/dicom-web", nil)

	var studies []map[string]any
	o.mustCall("POST", "/dicom-web/servers/espnode/qido", map[string]any{"Uri": "/studies", "Arguments": map[string]string{"00100020": "", "StudyInstanceUID": f.segStudy}}, &studies)
	if len(studies) != 1 || jsonValue(studies[0], "0020000D") != f.segStudy {
		t.Fatalf("Orthanc's QIDO-RS of the SEG's study: %v", studies)
	}
	var series []map[string]any
	o.mustCall("POST", "/dicom-web/servers/espnode/qido", map[string]any{"Uri": "/studies/" + f.segStudy + "/series", "Arguments": map[string]string{"Modality": "SEG"}}, &series)
	if len(series) != 1 || jsonValue(series[0], "00080060") != "SEG" {
		t.Fatalf("Orthanc's QIDO-RS of SEG series: %v", series)
	}
	segSeries := jsonValue(series[0], "0020000E")
	var all []map[string]any
	o.mustCall("POST", "/dicom-web/servers/espnode/qido", map[string]any{"Uri": "/studies"}, &all)
	if len(all) != 2 {
		t.Fatalf("Orthanc's QIDO-RS of every study: %d studies, want 2 (the CT's and the SEG's)", len(all))
	}
	var metadata []map[string]any
	o.mustCall("POST", "/dicom-web/servers/espnode/get", map[string]any{"Uri": "/studies/" + f.segStudy + "/series/" + segSeries + "/metadata"}, &metadata)
	if len(metadata) != 1 || jsonValue(metadata[0], "00080018") != f.segUID {
		t.Fatalf("Orthanc's WADO-RS metadata of the SEG series: %d instances", len(metadata))
	}

	var job map[string]any
	o.mustCall("POST", "/dicom-web/servers/espnode/retrieve", map[string]any{"Resources": []map[string]string{{"Study": f.segStudy, "Series": segSeries}}}, &job)
	var found []string
	o.mustCall("POST", "/tools/find", map[string]any{"Level": "Instance", "Query": map[string]string{"SOPInstanceUID": f.segUID}}, &found)
	if len(found) != 1 {
		t.Fatalf("Orthanc holds %d instances with the SEG's UID after the retrieve (answer %v)\nnode log:\n%s", len(found), job, n.logs.String())
	}
	var tags map[string]any
	o.mustCall("GET", "/instances/"+found[0]+"/simplified-tags", nil, &tags)
	if tags["Modality"] != "SEG" || tags["SOPClassUID"] != "1.2.840.10008.5.1.4.1.1.66.4" || tags["NumberOfFrames"] != "3" {
		t.Fatalf("retrieved instance: Modality %v, SOP class %v, frames %v", tags["Modality"], tags["SOPClassUID"], tags["NumberOfFrames"])
	}
	var file []byte
	{
		req, _ := http.NewRequest("GET", o.rest+"/instances/"+found[0]+"/file", nil)
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		file, _ = io.ReadAll(rsp.Body)
		rsp.Body.Close()
	}
	sent, err := os.ReadFile(f.seg)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := pixelDataOf(t, file), pixelDataOf(t, sent); !bytes.Equal(a, b) {
		t.Fatalf("the SEG's pixel data in Orthanc (%d bytes) differs from what the node was sent (%d)", len(a), len(b))
	}
	var instances []string
	o.mustCall("GET", "/instances", nil, &instances)
	if len(instances) != 1 {
		t.Fatalf("Orthanc holds %d instances, want only the SEG series it asked for", len(instances))
	}
}

// pixelDataOf is the pixel data of a Part-10 file.
func pixelDataOf(t *testing.T, file []byte) []byte {
	t.Helper()
	f, err := dcm.ReadPart10(bytes.NewReader(file), dcm.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f.DataSet.Bytes(dcm.PixelData)
}
