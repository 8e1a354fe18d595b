package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/store/datadir"
)

// node is an espnode started in-process by a test, the way `espnode serve` runs.
type node struct {
	addr    string
	port    int
	dataDir string
	stop    func()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startNode(t *testing.T, mutate func(*config.Config)) *node {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.DICOM.Host = "127.0.0.1"
	cfg.DICOM.Port = freePort(t)
	cfg.DICOM.Timeouts.ARTIM = 2 * time.Second
	cfg.DICOM.Timeouts.DIMSE = 10 * time.Second
	// Storage tests run without segmentation and without the HTTP endpoint
	// (whose default port would collide); pipeline tests turn them on in mutate.
	cfg.Pipeline.Routing = nil
	cfg.HTTP.Addr = ""
	cfg.HTTP.Viewer.Addr = ""
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, nil) }()
	n := &node{addr: cfg.DICOM.Addr(), port: cfg.DICOM.Port, dataDir: cfg.DataDir}
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("node did not stop within 15 s")
			}
		})
	}
	t.Cleanup(n.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", n.addr)
		if err == nil {
			c.Close()
			return n
		}
		select {
		case err := <-done:
			t.Fatalf("node exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not listening on %s: %v", n.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dcmtk runs a DCMTK tool with TCP_NODELAY=1 (Debian's build otherwise keeps Nagle on).
func dcmtk(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	path := testutil.Tool(t, name, "dcmtk")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestEchoscuToNode(t *testing.T) {
	n := startNode(t, nil)
	if out, err := dcmtk(t, "echoscu", "-aet", "ECHOSCU", "-aec", "ESPNODE", "127.0.0.1", strconv.Itoa(n.port)); err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	// Strict called AE: echoscu to another AE title is rejected with the right reason.
	strict := startNode(t, func(c *config.Config) { c.DICOM.StrictCalledAE = true })
	out, err := dcmtk(t, "echoscu", "-aec", "SOMEONE", "127.0.0.1", strconv.Itoa(strict.port))
	if err == nil || !strings.Contains(out, "Called AE Title Not Recognized") {
		t.Fatalf("echoscu to a wrong called AE: err %v, output:\n%s", err, out)
	}
}

func TestEspnodeEchoToStorescp(t *testing.T) {
	port := startStorescp(t, t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"echo", "--called-ae", "STORESCP", "127.0.0.1:" + strconv.Itoa(port)})
	if code != 0 || !strings.Contains(stdout.String(), "success") {
		t.Fatalf("espnode echo: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	// Nobody listening: a non-zero exit status.
	code = run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"echo", "--timeout", "2s", "127.0.0.1:" + strconv.Itoa(freePort(t))})
	if code == 0 {
		t.Fatal("espnode echo to a closed port exited 0")
	}
}

// startStorescp runs DCMTK's storescp on a free port, accepting every transfer syntax it knows.
func startStorescp(t *testing.T, dir string) int {
	t.Helper()
	return startStorescpOn(t, dir, freePort(t))
}

// startProcess starts a peer program for the test's duration; its output is shown if the test
// fails.
func startProcess(t *testing.T, label string, cmd *exec.Cmd) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", label, out.String())
		}
	})
}

// startStorescpOn runs storescp on a given port: a destination that comes up late.
func startStorescpOn(t *testing.T, dir string, port int) int {
	t.Helper()
	path := testutil.Tool(t, "storescp", "dcmtk")
	cmd := exec.Command(path, "-aet", "STORESCP", "+xa", "-od", dir, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	startProcess(t, "storescp", cmd)
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return port
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("storescp did not start listening")
	return 0
}

// sourceFile is one DICOM file of the shared tree, with what identifies it.
type sourceFile struct {
	path, sopClass, sopInstance, ts string
	oddLength                       bool // a malformed file `espnode store` refuses to send
}

// sharedDICOM lists the DICOM files of ../shared/data/dicom with their SOP instance UIDs.
func sharedDICOM(t *testing.T) []sourceFile {
	t.Helper()
	root := testutil.SharedData(t, "dicom")
	var out []sourceFile
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".dcm") {
			return err
		}
		f, err := inspectFile(p)
		if err != nil && f.sopInstance == "" {
			return fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, sourceFile{path: p, sopClass: f.sopClass, sopInstance: f.sopInstance, ts: f.ts, oddLength: err != nil})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("found %d DICOM files under %s, expected over 100", len(out), root)
	}
	return out
}

// compareStored checks each received file against the source files with its SOP instance UID.
// It returns the UIDs compared.
func compareStored(t *testing.T, received map[string]string, sources []sourceFile) {
	t.Helper()
	byUID := map[string][]string{}
	for _, s := range sources {
		byUID[s.sopInstance] = append(byUID[s.sopInstance], s.path)
	}
	type pair struct {
		Got  string   `json:"got"`
		Want []string `json:"want"`
	}
	var pairs []pair
	for uid, path := range received {
		want, ok := byUID[uid]
		if !ok {
			t.Errorf("received %s (%s), which no source file has", uid, path)
			continue
		}
		pairs = append(pairs, pair{path, want})
	}
	in, _ := json.Marshal(pairs)
	script := filepath.Join(testutil.RepoRoot(t), "cmd", "espnode", "testdata", "dscompare.py")
	cmd := exec.Command(testutil.Python(t), script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dscompare.py: %v\n%s", err, stderr.String())
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Got   string   `json:"got"`
			Equal bool     `json:"equal"`
			Diffs []string `json:"diffs"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("dscompare.py output %q: %v", line, err)
		}
		n++
		if !r.Equal {
			t.Errorf("%s differs from its source: %s", r.Got, strings.Join(r.Diffs, "; "))
		}
	}
	if n != len(pairs) {
		t.Fatalf("dscompare.py answered %d of %d pairs", n, len(pairs))
	}
}

// archived maps SOP instance UID to file for everything in a node's archive.
func archived(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dataDir, "archive"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		out[strings.TrimSuffix(filepath.Base(p), ".dcm")] = p
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func readMeta(t *testing.T, path string) dcm.FileMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := dcm.ReadFileMeta(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// readAttrs reads top-level attributes of a Part-10 file.
func readAttrs(t *testing.T, path string, tags ...dcm.Tag) *dcm.DataSet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	m, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	attrs, err := dcm.ReadDataSet(br, m.TransferSyntaxUID, dcm.ParseOptions{Keep: dcm.NewTagSet(tags...)})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return attrs
}

var uncompressed = map[string]bool{
	dimse.ImplicitVRLittleEndian: true, dimse.ExplicitVRLittleEndian: true,
	dimse.ExplicitVRBigEndian: true, dimse.DeflatedExplicitVRLittleEndian: true,
}

// TestStorescuToNode sends the shared DICOM tree with DCMTK storescu under each transfer syntax
// proposal, with the node preferring the proposed syntax, and compares what was stored.
func TestStorescuToNode(t *testing.T) {
	sources := sharedDICOM(t)
	tree := testutil.SharedData(t, "dicom")
	tests := []struct {
		option string
		prefer string // the node's first choice, so the proposed syntax is what gets used
	}{
		{"-xi", dimse.ImplicitVRLittleEndian},
		{"-xe", dimse.ExplicitVRLittleEndian},
		{"-xb", dimse.ExplicitVRBigEndian},
		{"-xd", dimse.DeflatedExplicitVRLittleEndian},
		{"-xs", "1.2.840.10008.1.2.4.70"},
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			n := startNode(t, func(c *config.Config) {
				rest := []string{tt.prefer}
				for _, ts := range c.DICOM.TransferSyntaxes {
					if ts != tt.prefer {
						rest = append(rest, ts)
					}
				}
				c.DICOM.TransferSyntaxes = rest
			})
			out, err := dcmtk(t, "storescu", "-aet", "STORESCU", "-aec", "ESPNODE", "-nh", "-R", "+sd", "+r", tt.option,
				"127.0.0.1", strconv.Itoa(n.port), tree)
			// storescu exits non-zero when some files could not be sent (syntaxes it cannot convert).
			t.Logf("storescu %s: err %v", tt.option, err)
			got := archived(t, n.dataDir)
			if len(got) == 0 {
				t.Fatalf("nothing stored; storescu said:\n%s", out)
			}
			// Every well-formed uncompressed source of a SOP class storescu knows must have arrived,
			// converted as storescu chose.
			for _, s := range sources {
				if uncompressed[s.ts] && !s.oddLength && !dcmtk367Unknown[s.sopClass] && got[s.sopInstance] == "" {
					t.Errorf("%s (%s) was not stored", s.path, s.ts)
				}
			}
			usedPreferred := 0
			for _, p := range got {
				if readMeta(t, p).TransferSyntaxUID == tt.prefer {
					usedPreferred++
				}
			}
			if usedPreferred == 0 {
				t.Errorf("no file was received in %s although the node preferred it", tt.prefer)
			}
			compareStored(t, got, sources)
			if _, err := os.Stat(filepath.Join(n.dataDir, "tmp")); err == nil {
				if left, _ := os.ReadDir(filepath.Join(n.dataDir, "tmp")); len(left) > 0 {
					t.Errorf("%d temporary files left behind", len(left))
				}
			}
			t.Logf("%s: %d instances stored, %d in %s", tt.option, len(got), usedPreferred, tt.prefer)
		})
	}
}

// TestWindowedStoreToNode sends the shared tree with `espnode store` to two nodes, one at a time
// and with --window 8, which the node grants (dicom.max_operations, 8 by default): each data set
// is then committed and answered while the next arrives. Both nodes must end up with the same
// instances, stored whole, and refuse the same malformed files.
func TestWindowedStoreToNode(t *testing.T) {
	sources := sharedDICOM(t)
	type outcome struct {
		stored   map[string]string
		failures []string
	}
	send := func(window string) outcome {
		n := startNode(t, nil)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr},
			[]string{"store", "--window", window, "--called-ae", "ESPNODE", n.addr, testutil.SharedData(t, "dicom")})
		t.Logf("espnode store --window %s: exit %d\n%s", window, code, stdout.String())
		if want := "(window " + window + ")"; window != "1" && !strings.Contains(stdout.String(), want) {
			t.Errorf("summary %q does not say %s", stdout.String(), want)
		}
		var failed []string
		for _, line := range strings.Split(stderr.String(), "\n") {
			if path, _, ok := strings.Cut(strings.TrimPrefix(line, "failed "), ": "); ok && strings.HasPrefix(line, "failed ") {
				failed = append(failed, path)
			}
		}
		slices.Sort(failed)
		return outcome{archived(t, n.dataDir), failed}
	}
	one, windowed := send("1"), send("8")
	if len(windowed.stored) < 80 {
		t.Fatalf("%d instances stored with the window, expected over 80", len(windowed.stored))
	}
	for uid := range one.stored {
		if windowed.stored[uid] == "" {
			t.Errorf("%s was stored one at a time but not with the window", uid)
		}
	}
	if len(windowed.stored) != len(one.stored) {
		t.Errorf("%d instances stored with the window, %d one at a time", len(windowed.stored), len(one.stored))
	}
	if !slices.Equal(windowed.failures, one.failures) {
		t.Errorf("failed with the window:\n%s\none at a time:\n%s", strings.Join(windowed.failures, "\n"), strings.Join(one.failures, "\n"))
	}
	compareStored(t, windowed.stored, sources)
}

// dcmtk367Unknown are the transfer syntaxes and SOP classes that DCMTK 3.6.7's storescp +xa and
// storescu do not handle, so transfers of them fail on the DCMTK side.
var dcmtk367Unknown = map[string]bool{
	"1.2.840.10008.1.2.4.57":  true,                                                                   // JPEG Lossless P14: not in storescp's +xa list
	"1.2.840.10008.1.2.4.201": true, "1.2.840.10008.1.2.4.202": true, "1.2.840.10008.1.2.4.203": true, // HTJ2K
	"1.2.840.10008.1.2.4.110": true, "1.2.840.10008.1.2.4.111": true, "1.2.840.10008.1.2.4.112": true, // JPEG XL
	"1.2.840.10008.5.1.4.1.1.66.7": true, // Label Map Segmentation Storage (2023)
}

// TestEspnodeStoreToStorescp sends the shared tree with `espnode store` to DCMTK storescp.
func TestEspnodeStoreToStorescp(t *testing.T) {
	sources := sharedDICOM(t)
	dir := t.TempDir()
	port := startStorescp(t, dir)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr},
		[]string{"store", "--called-ae", "STORESCP", "127.0.0.1:" + strconv.Itoa(port), testutil.SharedData(t, "dicom")})
	t.Logf("espnode store: exit %d\n%s", code, stdout.String())
	wantFailed := 0
	for _, s := range sources {
		if dcmtk367Unknown[s.ts] || dcmtk367Unknown[s.sopClass] || s.oddLength {
			wantFailed++
		}
	}
	if wantFailed == 0 || code != 1 {
		t.Errorf("exit status %d, want 1 (%d files in syntaxes storescp does not know)", code, wantFailed)
	}
	// INVENTORY.csv is the one file of the tree that is not DICOM.
	summary := fmt.Sprintf("sent %d, failed %d, skipped 1 (not DICOM) of %d files", len(sources)-wantFailed, wantFailed, len(sources)+1)
	if !strings.Contains(stdout.String(), summary) {
		t.Errorf("summary %q, want it to contain %q\nstderr:\n%s", stdout.String(), summary, stderr.String())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "failed ") && !strings.Contains(line, "accepted no presentation context") && !strings.Contains(line, "odd length") {
			t.Errorf("unexpected failure: %s", line)
		}
	}
	// storescp names files MODALITY.UID after the command's SOP instance UID.
	received := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, uid, _ := strings.Cut(e.Name(), ".")
		received[uid] = filepath.Join(dir, e.Name())
	}
	distinct := map[string]bool{}
	for _, s := range sources {
		if !dcmtk367Unknown[s.ts] && !dcmtk367Unknown[s.sopClass] && !s.oddLength {
			distinct[s.sopInstance] = true
		}
	}
	if len(received) != len(distinct) {
		t.Errorf("storescp holds %d instances, want %d", len(received), len(distinct))
	}
	compareStored(t, received, sources)
}

// TestAbortMidTransfer: a sender that aborts, or dies, in the middle of a data set leaves no file,
// and the node goes on serving.
func TestAbortMidTransfer(t *testing.T) {
	n := startNode(t, nil)
	src := testutil.SharedData(t, "dicom", "CR", "wg04_RG3_UNC_mono1.dcm")
	meta := readMeta(t, src)

	t.Run("A-ABORT", func(t *testing.T) {
		ctx := context.Background()
		c, err := dimse.Dial(ctx, n.addr, dimse.ClientConfig{CallingAE: "ABORTER", CalledAE: "ESPNODE",
			Contexts: []dimse.PresentationContextRQ{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		br := bufio.NewReader(f)
		if _, err := dcm.ReadFileMeta(br); err != nil {
			t.Fatal(err)
		}
		// Half the data set, then the reader fails: the client gives up and aborts.
		_, err = c.Store(ctx, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID,
			io.MultiReader(io.LimitReader(br, 3<<20), errReader{}))
		if err == nil {
			t.Fatal("store succeeded with a failing reader")
		}
		_ = c.Abort()
	})
	t.Run("connection dropped mid data set", func(t *testing.T) {
		conn, err := net.Dial("tcp", n.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write(dimse.EncodePDU(&dimse.AssociateRQ{ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "DROPPER",
			ApplicationContext:   dimse.ApplicationContextName,
			PresentationContexts: []dimse.PresentationContextRQ{{ID: 1, AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}},
			UserInfo:             dimse.UserInfo{MaxLength: 16384}}))
		if p, err := dimse.ReadPDU(conn, 1<<20); err != nil || p.Type() != dimse.TypeAssociateAC {
			t.Fatalf("association: %v %v", p, err)
		}
		cmd := dimse.EncodeCommand(&dimse.CStoreRQ{MessageID: 1, AffectedSOPClassUID: meta.MediaStorageSOPClassUID, AffectedSOPInstanceUID: meta.MediaStorageSOPInstanceUID})
		_, _ = conn.Write(dimse.EncodePDU(&dimse.PDataTF{Items: []dimse.PDV{{ContextID: 1, Command: true, Last: true, Data: cmd}}}))
		chunk := make([]byte, 16000)
		for i := 0; i < 64; i++ {
			_, _ = conn.Write(dimse.EncodePDU(&dimse.PDataTF{Items: []dimse.PDV{{ContextID: 1, Data: chunk}}}))
		}
		conn.Close() // the sender dies: no A-ABORT, no last fragment
	})
	t.Run("storescu --abort after sending", func(t *testing.T) {
		if out, err := dcmtk(t, "storescu", "--abort", "-aec", "ESPNODE", "127.0.0.1", strconv.Itoa(n.port),
			testutil.SharedData(t, "dicom", "MR", "pydicom_MR_small_ivrle.dcm")); err != nil {
			t.Fatalf("storescu --abort: %v\n%s", err, out)
		}
	})
	// Give the node a moment to notice the dead connections, then check the disk.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, _ := os.ReadDir(filepath.Join(n.dataDir, "tmp"))
		if len(left) == 0 || time.Now().After(deadline) {
			if len(left) > 0 {
				t.Errorf("%d partial files left in tmp", len(left))
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := archived(t, n.dataDir)
	if got[meta.MediaStorageSOPInstanceUID] != "" {
		t.Errorf("the aborted instance %s was stored", meta.MediaStorageSOPInstanceUID)
	}
	if len(got) != 1 {
		t.Errorf("archive holds %d instances, want 1 (the MR sent before --abort)", len(got))
	}
	if out, err := dcmtk(t, "echoscu", "-aec", "ESPNODE", "127.0.0.1", strconv.Itoa(n.port)); err != nil {
		t.Fatalf("node stopped serving: %v\n%s", err, out)
	}
	// The index agrees with the files.
	n.stop()
	st, err := datadir.Open(context.Background(), datadir.Options{Dir: n.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _, _, instances, err := st.Counts(context.Background())
	if err != nil || instances != 1 {
		t.Fatalf("index counts %d instances (%v), want 1", instances, err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk gone") }

// TestServeCommand runs `espnode serve` as a user would: a config file, then flags over it.
func TestServeCommand(t *testing.T) {
	dir := t.TempDir()
	filePort, flagPort := freePort(t), freePort(t)
	cfgFile := filepath.Join(dir, "espnode.yaml")
	yaml := fmt.Sprintf("ae_title: FILEAE\ndata_dir: %s\ndicom:\n  host: 127.0.0.1\n  port: %d\n  strict_called_ae: true\n", filepath.Join(dir, "from-file"), filePort)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "from-flag")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &cliEnv{stdout: io.Discard, stderr: &stderr}, []string{"serve", "--config", cfgFile, "--port", strconv.Itoa(flagPort), "--data-dir", dataDir})
	}()
	port := strconv.Itoa(flagPort)
	var out string
	var err error
	for i := 0; i < 100; i++ {
		if out, err = dcmtk(t, "echoscu", "-aec", "FILEAE", "127.0.0.1", port); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatalf("echoscu to the flag's port with the file's AE title: %v\n%s\nserve log:\n%s", err, out, stderr.String())
	}
	// The file's strict_called_ae still holds.
	if out, err := dcmtk(t, "echoscu", "-aec", "OTHER", "127.0.0.1", port); err == nil {
		t.Errorf("strict_called_ae from the file was not applied:\n%s", out)
	}
	src := testutil.SharedData(t, "dicom", "MR", "pydicom_MR_small_ivrle.dcm")
	if out, err := dcmtk(t, "storescu", "-aec", "FILEAE", "127.0.0.1", port, src); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d after SIGTERM-like cancel:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	if got := archived(t, dataDir); len(got) != 1 {
		t.Fatalf("%d instances under the flag's data dir, want 1", len(got))
	}

	// Invalid values are refused with the key's name.
	var errOut bytes.Buffer
	code := run(context.Background(), &cliEnv{stdout: io.Discard, stderr: &errOut}, []string{"serve", "--port", "70000"})
	if code == 0 || !strings.Contains(errOut.String(), "dicom.port") {
		t.Fatalf("serve --port 70000: exit %d, stderr %q; want an error naming dicom.port", code, errOut.String())
	}
}
