package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/scp"
)

// qrFixture is a node loaded with real files, plus what those files say, read straight from the
// archived files (not through the index) as the oracle for query results.
type qrFixture struct {
	node      *node
	scpPort   int
	scpDir    string
	instances []map[dcm.Tag]string
}

var oracleTags = []dcm.Tag{dcm.PatientName, dcm.PatientID, dcm.StudyInstanceUID, dcm.StudyDate, dcm.SeriesInstanceUID,
	dcm.Modality, dcm.SOPInstanceUID, dcm.SOPClassUID}

func newQRFixture(t *testing.T) *qrFixture {
	t.Helper()
	f := &qrFixture{scpDir: t.TempDir()}
	f.scpPort = startStorescp(t, f.scpDir)
	f.node = startNode(t, func(c *config.Config) {
		c.Peers = []config.Peer{{AETitle: "STORESCP", Host: "127.0.0.1", Port: f.scpPort}}
	})
	var stdout, stderr bytes.Buffer
	args := []string{"store", "--called-ae", "ESPNODE", f.node.addr}
	for _, d := range []string{"wrapped", "MR", "SEG"} {
		args = append(args, testutil.SharedData(t, "dicom", d))
	}
	if code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, args); code != 0 {
		t.Fatalf("loading the node: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, p := range archived(t, f.node.dataDir) {
		attrs := readAttrs(t, p, oracleTags...)
		row := map[dcm.Tag]string{}
		for _, tag := range oracleTags {
			row[tag] = attrs.String(tag)
		}
		f.instances = append(f.instances, row)
	}
	if len(f.instances) < 20 {
		t.Fatalf("only %d instances loaded", len(f.instances))
	}
	return f
}

// distinct returns the distinct values of key among instances that satisfy keep.
func (f *qrFixture) distinct(key dcm.Tag, keep func(map[dcm.Tag]string) bool) []string {
	set := map[string]bool{}
	for _, in := range f.instances {
		if keep(in) {
			set[in[key]] = true
		}
	}
	var out []string
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// findscu runs DCMTK's findscu and returns the response identifiers it extracted.
func findscu(t *testing.T, port int, args ...string) ([]*dcm.DataSet, string) {
	t.Helper()
	dir := t.TempDir()
	all := append([]string{"-aec", "ESPNODE", "-X", "-od", dir}, args...)
	all = append(all, "127.0.0.1", strconv.Itoa(port))
	out, err := dcmtk(t, "findscu", all...)
	if err != nil {
		t.Logf("findscu exited with %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var rsps []*dcm.DataSet
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(bytes.NewReader(b))
		m, err := dcm.ReadFileMeta(br)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(br)
		elems, err := dcm.Parse(body, m.TransferSyntaxUID)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		rsps = append(rsps, elems)
	}
	return rsps, out
}

// encodeIdentifier encodes a query identifier.
func encodeIdentifier(t *testing.T, ts string, elems ...dcm.Element) []byte {
	t.Helper()
	b, err := dcm.Encode(dcm.NewDataSet(elems...), ts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func values(rsps []*dcm.DataSet, tag dcm.Tag) []string {
	var out []string
	for _, r := range rsps {
		out = append(out, r.String(tag))
	}
	sort.Strings(out)
	return out
}

func TestQueryRetrieveWithDCMTK(t *testing.T) {
	f := newQRFixture(t)
	port := f.node.port
	all := func(map[dcm.Tag]string) bool { return true }
	wrapped := func(in map[dcm.Tag]string) bool { return strings.HasPrefix(in[dcm.PatientName], "WRAPPED") }
	studies := f.distinct(dcm.StudyInstanceUID, all)
	liver := f.distinct(dcm.StudyInstanceUID, func(in map[dcm.Tag]string) bool {
		return in[dcm.Modality] == "SEG" && strings.Contains(in[dcm.StudyInstanceUID], "")
	})

	t.Run("study root, all studies", func(t *testing.T) {
		rsps, out := findscu(t, port, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID")
		if got := values(rsps, dcm.StudyInstanceUID); strings.Join(got, ",") != strings.Join(studies, ",") {
			t.Fatalf("studies %v, want %v\n%s", got, studies, out)
		}
	})
	t.Run("wildcard * on PatientName", func(t *testing.T) {
		rsps, _ := findscu(t, port, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=WRAPPED*", "-k", "StudyInstanceUID", "-k", "ModalitiesInStudy")
		want := f.distinct(dcm.StudyInstanceUID, wrapped)
		if got := values(rsps, dcm.StudyInstanceUID); len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("studies %v, want %v", got, want)
		}
		for _, r := range rsps {
			if r.String(dcm.ModalitiesInStudy) == "" {
				t.Errorf("ModalitiesInStudy empty in %v", r)
			}
		}
	})
	t.Run("wildcard ? and patient root PATIENT level", func(t *testing.T) {
		rsps, _ := findscu(t, port, "-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientName=WRAPPED^TEST^E?", "-k", "PatientID", "-k", "NumberOfPatientRelatedStudies")
		want := f.distinct(dcm.PatientID, func(in map[dcm.Tag]string) bool { return in[dcm.PatientName] == "WRAPPED^TEST^ES" })
		if got := values(rsps, dcm.PatientID); len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("patients %v, want %v", got, want)
		}
		for _, r := range rsps {
			if v := r.String(dcm.NumberOfPatientRelatedStudies); v == "" || v == "0" {
				t.Errorf("NumberOfPatientRelatedStudies %q", v)
			}
		}
	})
	t.Run("date range", func(t *testing.T) {
		rsps, _ := findscu(t, port, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyDate=-20050101", "-k", "StudyInstanceUID")
		want := f.distinct(dcm.StudyInstanceUID, func(in map[dcm.Tag]string) bool {
			return in[dcm.StudyDate] != "" && in[dcm.StudyDate] <= "20050101"
		})
		if got := values(rsps, dcm.StudyInstanceUID); len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("studies %v, want %v", got, want)
		}
		later, _ := findscu(t, port, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyDate=20050102-", "-k", "StudyInstanceUID")
		if len(later)+len(rsps) > len(studies) {
			t.Fatalf("ranges before and after overlap: %d + %d > %d", len(rsps), len(later), len(studies))
		}
	})
	t.Run("list of UIDs, series and image levels", func(t *testing.T) {
		two := studies[:2]
		rsps, _ := findscu(t, port, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+strings.Join(two, `\`))
		if got := values(rsps, dcm.StudyInstanceUID); strings.Join(got, ",") != strings.Join(two, ",") {
			t.Fatalf("UID list gave %v, want %v", got, two)
		}
		study := liver[0]
		rsps, _ = findscu(t, port, "-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID="+study, "-k", "SeriesInstanceUID", "-k", "Modality")
		wantSeries := f.distinct(dcm.SeriesInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.StudyInstanceUID] == study })
		if got := values(rsps, dcm.SeriesInstanceUID); strings.Join(got, ",") != strings.Join(wantSeries, ",") {
			t.Fatalf("series %v, want %v", got, wantSeries)
		}
		series := wantSeries[0]
		rsps, _ = findscu(t, port, "-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID="+study, "-k", "SeriesInstanceUID="+series, "-k", "SOPInstanceUID")
		wantImages := f.distinct(dcm.SOPInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.SeriesInstanceUID] == series })
		if got := values(rsps, dcm.SOPInstanceUID); strings.Join(got, ",") != strings.Join(wantImages, ",") {
			t.Fatalf("images %v, want %v", got, wantImages)
		}
	})
	t.Run("relational query refused", func(t *testing.T) {
		rsps, out := findscu(t, port, "-v", "-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "Modality=MR")
		if len(rsps) != 0 || !strings.Contains(out, "Final Find Response (Error: DataSetDoesNotMatchSOPClass)") {
			t.Fatalf("%d responses; output:\n%s", len(rsps), out)
		}
	})
	t.Run("movescu to storescp", func(t *testing.T) {
		study := liver[0]
		out, err := dcmtk(t, "movescu", "-S", "-aec", "ESPNODE", "-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "127.0.0.1", strconv.Itoa(port))
		if err != nil {
			t.Fatalf("movescu: %v\n%s", err, out)
		}
		want := f.distinct(dcm.SOPInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.StudyInstanceUID] == study })
		got := map[string]bool{}
		entries, _ := os.ReadDir(f.scpDir)
		for _, e := range entries {
			_, uid, _ := strings.Cut(e.Name(), ".")
			got[uid] = true
		}
		for _, uid := range want {
			if !got[uid] {
				t.Errorf("storescp did not receive %s", uid)
			}
		}
		out, err = dcmtk(t, "movescu", "-S", "-aec", "ESPNODE", "-aem", "NOBODY", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "127.0.0.1", strconv.Itoa(port))
		if !strings.Contains(out, "MoveDestinationUnknown") {
			t.Fatalf("move to an unknown AE: %v\n%s", err, out)
		}
	})
	t.Run("getscu", func(t *testing.T) {
		dir := t.TempDir()
		study := liver[0]
		out, err := dcmtk(t, "getscu", "-S", "-aec", "ESPNODE", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "-od", dir, "127.0.0.1", strconv.Itoa(port))
		if err != nil {
			t.Fatalf("getscu: %v\n%s", err, out)
		}
		want := f.distinct(dcm.SOPInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.StudyInstanceUID] == study })
		entries, _ := os.ReadDir(dir)
		if len(entries) != len(want) {
			t.Fatalf("getscu wrote %d files, want %d\n%s", len(entries), len(want), out)
		}
	})
}

// TestFindAndGetCommands drives `espnode find` and `espnode get` against the node, and checks the
// statuses the Client sees for bad requests.
func TestFindAndGetCommands(t *testing.T) {
	f := newQRFixture(t)
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	code := run(ctx, &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"find", "--called-ae", "ESPNODE", "--json",
		"-k", "PatientName=WRAPPED*", "-k", "StudyInstanceUID", f.node.addr})
	if code != 0 {
		t.Fatalf("find: exit %d\n%s", code, stderr.String())
	}
	want := f.distinct(dcm.StudyInstanceUID, func(in map[dcm.Tag]string) bool { return strings.HasPrefix(in[dcm.PatientName], "WRAPPED") })
	if got := strings.Count(stdout.String(), "StudyInstanceUID"); got != len(want) {
		t.Fatalf("find printed %d matches, want %d:\n%s", got, len(want), stdout.String())
	}
	seg := f.distinct(dcm.SeriesInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.Modality] == "SEG" })
	segStudy := f.distinct(dcm.StudyInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.SeriesInstanceUID] == seg[0] })
	dir := t.TempDir()
	stdout.Reset()
	code = run(ctx, &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"get", "--called-ae", "ESPNODE", "--level", "SERIES",
		"-k", "StudyInstanceUID=" + segStudy[0], "-k", "SeriesInstanceUID=" + seg[0], "-o", dir, f.node.addr})
	if code != 0 {
		t.Fatalf("get: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	wantFiles := f.distinct(dcm.SOPInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.SeriesInstanceUID] == seg[0] })
	for _, uid := range wantFiles {
		if _, err := os.Stat(filepath.Join(dir, uid+".dcm")); err != nil {
			t.Errorf("get did not write %s: %v", uid, err)
		}
	}

	// Statuses as PS3.4 gives them, seen through the Client.
	c, err := dimse.Dial(ctx, f.node.addr, dimse.ClientConfig{CallingAE: "TEST", CalledAE: "ESPNODE", Contexts: []dimse.PresentationContextRQ{
		{AbstractSyntax: scp.StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}},
		{AbstractSyntax: scp.StudyRootMove, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}},
		{AbstractSyntax: scp.PatientRootMove, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(ctx)
	ident := func(elems ...dcm.Element) []byte { return encodeIdentifier(t, dimse.ExplicitVRLittleEndian, elems...) }
	st, err := c.Find(ctx, scp.StudyRootFind, ident(dcm.StrElement(dcm.QueryRetrieveLevel, "PATIENT")), func([]byte) error { return nil })
	if err != nil || st.Code != dimse.StatusDataSetDoesNotMatchClass {
		t.Errorf("PATIENT level in study root: %v %v, want 0xA900", st, err)
	}
	res, err := c.Move(ctx, scp.StudyRootMove, "NOBODY", ident(dcm.StrElement(dcm.QueryRetrieveLevel, "STUDY"), dcm.StrElement(dcm.StudyInstanceUID, segStudy[0])), nil)
	if err != nil || res.Status.Code != dimse.StatusMoveDestinationUnknown {
		t.Errorf("move to an unknown AE: %v %v, want 0xA801", res.Status, err)
	}
	var pending int
	res, err = c.Move(ctx, scp.StudyRootMove, "STORESCP", ident(dcm.StrElement(dcm.QueryRetrieveLevel, "STUDY"), dcm.StrElement(dcm.StudyInstanceUID, segStudy[0])),
		func(dimse.SubOperations) error { pending++; return nil })
	n := len(f.distinct(dcm.SOPInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.StudyInstanceUID] == segStudy[0] }))
	if err != nil || res.Status.Code != dimse.StatusSuccess || int(res.SubOperations.Completed) != n || pending != n-1 {
		t.Errorf("move: %v %v, %+v, %d pending; want success, %d completed", res.Status, err, res.SubOperations, pending, n)
	}
	// Patient root, PATIENT level: everything of one patient, identifier in implicit VR.
	patient := f.distinct(dcm.PatientID, func(in map[dcm.Tag]string) bool { return in[dcm.StudyInstanceUID] == segStudy[0] })
	nPatient := len(f.distinct(dcm.SOPInstanceUID, func(in map[dcm.Tag]string) bool { return in[dcm.PatientID] == patient[0] }))
	res, err = c.Move(ctx, scp.PatientRootMove, "STORESCP", encodeIdentifier(t, dimse.ImplicitVRLittleEndian, dcm.StrElement(dcm.QueryRetrieveLevel, "PATIENT"),
		dcm.StrElement(dcm.PatientID, patient[0])), nil)
	if err != nil || res.Status.Code != dimse.StatusSuccess || int(res.SubOperations.Completed) != nPatient {
		t.Errorf("patient-level move: %v %v, %+v; want success, %d completed", res.Status, err, res.SubOperations, nPatient)
	}
	res, err = c.Move(ctx, scp.StudyRootMove, "STORESCP", ident(dcm.StrElement(dcm.QueryRetrieveLevel, "STUDY"), dcm.StrElement(dcm.StudyInstanceUID)), nil)
	if err != nil || res.Status.Code != dimse.StatusDataSetDoesNotMatchClass {
		t.Errorf("move without a StudyInstanceUID value: %v %v, want 0xA900", res.Status, err)
	}
}
