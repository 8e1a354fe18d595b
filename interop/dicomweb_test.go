package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
)

// webHTTP is the http section of a node serving DICOMweb on an ephemeral port, without the viewer.
const webHTTP = "  addr: 127.0.0.1:{http_port}\n  dicomweb: true\n  viewer: {addr: \"\"}"

// waitHTTP waits until the node answers on its HTTP port.
func (n *node) waitHTTP(port int) string {
	n.t.Helper()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		rsp, err := http.Get(base + "/healthz")
		if err == nil {
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("HTTP on %d not answering: %v\n%s", port, err, n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webTool returns node and checks that the npm packages of interop/web are installed.
func webTool(t *testing.T) string {
	t.Helper()
	nodeBin := testutil.Tool(t, "node", "nodejs")
	for _, p := range []string{"dicomweb-client", "playwright-core", "xhr2"} {
		if _, err := os.Stat(filepath.Join("web", "node_modules", p)); err != nil {
			t.Fatalf("%s not installed in interop/web/node_modules: run scripts/deps.sh test (npm ci in interop/web/)", p)
		}
	}
	return nodeBin
}

// jsonValue is the first value of an attribute of a DICOM JSON object, as text. Orthanc's
// DICOMweb plugin passes QIDO-RS answers on in its own form, a single "Value" for each tag.
func jsonValue(ds map[string]any, tag string) string {
	a, _ := ds[tag].(map[string]any)
	vs, ok := a["Value"].([]any)
	if !ok && a["Value"] != nil {
		vs = []any{a["Value"]}
	}
	if len(vs) == 0 {
		return ""
	}
	if pn, ok := vs[0].(map[string]any); ok {
		return fmt.Sprint(pn["Alphabetic"])
	}
	return fmt.Sprint(vs[0])
}

// TestDICOMwebClient: dicomweb-client (npm) stores a CT series in implicit VR and its SEG with
// STOW-RS, finds them with QIDO-RS, and retrieves instances, metadata, frames, bulk data and
// rendered PNGs with WADO-RS; what it got is judged against the files sent, read by dcm and
// DCMTK.
func TestDICOMwebClient(t *testing.T) {
	nodeBin := webTool(t)
	n := startNode(t, nodeOptions{http: webHTTP})
	base := n.waitHTTP(n.httpPort)
	liver := testutil.SharedData(t, "dicom", "SEG", "dcmqi_liver")
	files := []string{filepath.Join(liver, "ct_01.dcm"), filepath.Join(liver, "ct_02.dcm"), filepath.Join(liver, "ct_03.dcm"), filepath.Join(liver, "liver_seg.dcm")}
	originals := map[string]*dcm.File{}
	for _, f := range files {
		df, err := dcm.ReadFile(f, dcm.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		originals[df.DataSet.String(dcm.SOPInstanceUID)] = df
	}
	study := originals[tagValue(t, files[0], "0008,0018")].DataSet.String(dcm.StudyInstanceUID)
	out := t.TempDir()
	cmd := exec.Command(nodeBin, append([]string{filepath.Join("web", "dicomweb.js"), base + "/dicom-web", out, study}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("dicomweb-client: %v\n%s\nnode log:\n%s", err, stderr.String(), n.logs.String())
	}
	var report struct {
		Stow           map[string]any   `json:"stow"`
		Studies        []map[string]any `json:"studies"`
		StudiesByName  []map[string]any `json:"studiesByName"`
		Series         []map[string]any `json:"series"`
		Instances      []map[string]any `json:"instances"`
		SeriesMetadata int              `json:"seriesMetadata"`
		StudyMetadata  int              `json:"studyMetadata"`
		StudyParts     int              `json:"studyParts"`
		Retrieved      []struct {
			SOP, Series, Instance, Frame, Bulk, Rendered string
			Metadata                                     map[string]any
		} `json:"retrieved"`
	}
	if err := json.Unmarshal(stdout, &report); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout)
	}

	stored, _ := report.Stow["00081199"].(map[string]any)["Value"].([]any)
	if len(stored) != 4 || report.Stow["00081198"] != nil {
		t.Fatalf("STOW-RS response lists %d stored instances and failures %v, want 4 and none: %v", len(stored), report.Stow["00081198"], report.Stow)
	}
	for _, it := range stored {
		item := it.(map[string]any)
		if u := jsonValue(item, "00081190"); !strings.HasPrefix(u, base+"/dicom-web/studies/"+study+"/series/") {
			t.Errorf("stored instance's RetrieveURL %q", u)
		}
	}
	if len(report.Studies) != 1 || len(report.StudiesByName) != 1 {
		t.Fatalf("QIDO-RS: %d studies by UID, %d by name, want 1 and 1", len(report.Studies), len(report.StudiesByName))
	}
	st := report.Studies[0]
	if jsonValue(st, "0020000D") != study || jsonValue(st, "00201208") != "4" || jsonValue(st, "00201206") != "2" {
		t.Errorf("study attributes: UID %q, instances %q, series %q", jsonValue(st, "0020000D"), jsonValue(st, "00201208"), jsonValue(st, "00201206"))
	}
	if mods := fmt.Sprint(st["00080061"]); !strings.Contains(mods, "CT") || !strings.Contains(mods, "SEG") {
		t.Errorf("ModalitiesInStudy %s", mods)
	}
	if len(report.Series) != 2 || len(report.Instances) != 4 || len(report.Retrieved) != 4 {
		t.Fatalf("QIDO-RS: %d series, %d instances; %d retrieved", len(report.Series), len(report.Instances), len(report.Retrieved))
	}
	if report.SeriesMetadata < 1 || report.StudyMetadata != 4 || report.StudyParts != 4 {
		t.Errorf("series metadata %d, study metadata %d, study retrieved in %d parts", report.SeriesMetadata, report.StudyMetadata, report.StudyParts)
	}

	for _, r := range report.Retrieved {
		orig := originals[r.SOP]
		if orig == nil {
			t.Fatalf("retrieved %s, which was not sent", r.SOP)
		}
		path := filepath.Join(out, r.Instance)
		got, err := dcm.ReadFile(path, dcm.ParseOptions{})
		if err != nil {
			t.Fatalf("retrieved %s: %v", r.SOP, err)
		}
		// dicomweb-client asks without a transfer syntax: the default, explicit VR little endian
		// (PS3.18 §8.7.3.5.2), into which the implicit VR CTs are converted.
		if got.Meta.TransferSyntaxUID != dcm.ExplicitVRLittleEndian {
			t.Errorf("%s retrieved in %s", r.SOP, got.Meta.TransferSyntaxUID)
		}
		if dump, err := run(t, "dcmdump", "dcmtk", "-q", "-dc", path); err != nil || strings.Contains(dump, "W:") || strings.Contains(dump, "E:") {
			t.Errorf("dcmdump of retrieved %s: %v\n%s", r.SOP, err, dump)
		}
		want := orig.DataSet.Bytes(dcm.PixelData)
		if !bytes.Equal(got.DataSet.Bytes(dcm.PixelData), want) {
			t.Errorf("%s: retrieved pixel data differs from what was sent", r.SOP)
		}
		for _, tag := range []dcm.Tag{dcm.PatientName, dcm.StudyInstanceUID, dcm.SeriesInstanceUID, dcm.Rows, dcm.ImagePositionPatient} {
			if got.DataSet.String(tag) != orig.DataSet.String(tag) {
				t.Errorf("%s: %s retrieved as %q, sent %q", r.SOP, tag, got.DataSet.String(tag), orig.DataSet.String(tag))
			}
		}
		md := r.Metadata
		if jsonValue(md, "00080018") != r.SOP || jsonValue(md, "00100010") != orig.DataSet.String(dcm.PatientName) {
			t.Errorf("metadata of %s: SOP Instance UID %q, PatientName %q", r.SOP, jsonValue(md, "00080018"), jsonValue(md, "00100010"))
		}
		if jsonValue(md, "00280010") != strconv.Itoa(int(mustInt(t, orig.DataSet, dcm.Rows))) {
			t.Errorf("metadata of %s: Rows %q", r.SOP, jsonValue(md, "00280010"))
		}
		if pd, _ := md["7FE00010"].(map[string]any); pd == nil || !strings.HasPrefix(fmt.Sprint(pd["BulkDataURI"]), base) {
			t.Errorf("metadata of %s: pixel data %v, want a BulkDataURI", r.SOP, md["7FE00010"])
		}
		frame, err := os.ReadFile(filepath.Join(out, r.Frame))
		if err != nil {
			t.Fatal(err)
		}
		rows, cols := int(mustInt(t, orig.DataSet, dcm.Rows)), int(mustInt(t, orig.DataSet, dcm.Columns))
		frameSize := rows * cols * int(mustInt(t, orig.DataSet, dcm.BitsAllocated)) / 8
		if !bytes.Equal(frame, want[:frameSize]) {
			t.Errorf("%s: frame 1 (%d bytes) differs from the first %d bytes of the pixel data", r.SOP, len(frame), frameSize)
		}
		bulk, _ := os.ReadFile(filepath.Join(out, r.Bulk))
		if !bytes.Equal(bulk, want[:len(bulk)]) || len(bulk) < frameSize {
			t.Errorf("%s: bulk data (%d bytes) is not the pixel data's start", r.SOP, len(bulk))
		}
		pb, _ := os.ReadFile(filepath.Join(out, r.Rendered))
		img, err := png.Decode(bytes.NewReader(pb))
		if err != nil || img.Bounds().Dx() != cols || img.Bounds().Dy() != rows {
			t.Errorf("%s: rendered PNG: %v (%v), want %dx%d", r.SOP, err, img, cols, rows)
		}
	}
}

func mustInt(t *testing.T, ds *dcm.DataSet, tag dcm.Tag) int64 {
	t.Helper()
	v, err := ds.Int(tag)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
