package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/pixel"
)

// TestRetrieveDecompresses stores instances in compressed syntaxes and retrieves them with
// DCMTK peers that accept uncompressed syntaxes only (storescp and getscu as they come): the
// node sends each decompressed instead of failing the sub-operation, and every frame received
// decodes to what the stored instance's frame decodes to.
func TestRetrieveDecompresses(t *testing.T) {
	files := []string{
		"CR/wg04_RG2_J2KR_mono2.dcm", "US/wg04_US1_J2KI.dcm", "CR/wg04_RG3_JLSN_mono1.dcm",
		"CT/cornerstone_CT_jpegll_p14.dcm", "CT/cornerstone_EnhancedCT_2fr_fragmented_nobot_jpegext.dcm",
		"US/gdcm_philips_US_jpegbaseline_ybr422.dcm", "US_multiframe/dcm4che_will_27fr_jpegxl.dcm",
		"US_multiframe/dcm4che_US_palette_10fr_jpegls.dcm", "XC/fodicom_XC_photo_jpegbaseline_icon.dcm",
	}
	scpDir := t.TempDir()
	scpPort := freePort(t)
	cmd := exec.Command(testutil.Tool(t, "storescp", "dcmtk"), "-aet", "PLAINSCP", "-od", scpDir, strconv.Itoa(scpPort))
	startProcess(t, "storescp", cmd)
	waitListening(t, scpPort)
	n := startNode(t, func(c *config.Config) {
		c.Peers = []config.Peer{{AETitle: "PLAINSCP", Host: "127.0.0.1", Port: scpPort}}
	})
	var stdout, stderr bytes.Buffer
	args := []string{"store", "--called-ae", "ESPNODE", n.addr}
	studies := map[string]bool{}
	want := map[string]string{} // SOP Instance UID -> shared file
	for _, f := range files {
		p := testutil.SharedData(t, "dicom", f)
		args = append(args, p)
		a := readAttrs(t, p, dcm.StudyInstanceUID, dcm.SOPInstanceUID)
		studies[a.String(dcm.StudyInstanceUID)] = true
		want[a.String(dcm.SOPInstanceUID)] = p
	}
	if code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, args); code != 0 {
		t.Fatalf("store: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	getDir := t.TempDir()
	for study := range studies {
		key := []string{"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + study}
		if out, err := dcmtk(t, "movescu", append([]string{"-S", "-aec", "ESPNODE", "-aem", "PLAINSCP"}, append(key, "127.0.0.1", strconv.Itoa(n.port))...)...); err != nil || strings.Contains(out, "Failed") {
			t.Fatalf("movescu: %v\n%s", err, out)
		}
		if out, err := dcmtk(t, "getscu", append([]string{"-S", "-aec", "ESPNODE", "-od", getDir}, append(key, "127.0.0.1", strconv.Itoa(n.port))...)...); err != nil || strings.Contains(out, "Failed") {
			t.Fatalf("getscu: %v\n%s", err, out)
		}
	}
	for label, dir := range map[string]string{"C-MOVE to storescp": scpDir, "C-GET by getscu": getDir} {
		t.Run(label, func(t *testing.T) {
			entries, _ := os.ReadDir(dir)
			got := map[string]string{}
			for _, e := range entries {
				_, uid, _ := strings.Cut(e.Name(), ".")
				got[uid] = filepath.Join(dir, e.Name())
			}
			for uid, src := range want {
				p, ok := got[uid]
				if !ok {
					t.Errorf("%s not received", filepath.Base(src))
					continue
				}
				compareDecoded(t, src, p)
			}
		})
	}
}

func compareDecoded(t *testing.T, stored, received string) {
	t.Helper()
	load := func(p string) *pixel.Image {
		f, err := pixel.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		im, err := pixel.NewImage(f)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return im
	}
	a, b := load(stored), load(received)
	if ts, ok := dcm.LookupTransferSyntax(b.TransferSyntax); !ok || ts.Encapsulated {
		t.Errorf("%s received in %s", filepath.Base(stored), b.TransferSyntax)
	}
	if a.NumFrames() != b.NumFrames() {
		t.Fatalf("%s: %d frames received of %d", filepath.Base(stored), b.NumFrames(), a.NumFrames())
	}
	for i := range a.NumFrames() {
		fa, err := a.Frame(i)
		if err != nil {
			t.Fatal(err)
		}
		fb, err := b.Frame(i)
		if err != nil {
			t.Fatal(err)
		}
		if fa.Photometric != fb.Photometric || !slices.Equal(fa.Data, fb.Data) {
			t.Fatalf("%s frame %d: received %s differs from stored %s", filepath.Base(stored), i, fb.Photometric, fa.Photometric)
		}
	}
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	for range 200 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("nothing listening on port %d", port)
}
