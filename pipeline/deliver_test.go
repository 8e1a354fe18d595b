package pipeline

import (
	"bufio"
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

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/testutil"
)

// startStorescp runs DCMTK's storescp with extra arguments, writing what it receives to a new
// folder, and returns the folder and its port.
func startStorescp(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	var out strings.Builder
	cmd := exec.Command(testutil.Tool(t, "storescp", "dcmtk"), append(args, "-aet", "STORESCP", "-od", dir, strconv.Itoa(port))...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("storescp output:\n%s", out.String())
		}
	})
	for range 400 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return dir, port
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("storescp did not listen on %d", port)
	return "", 0
}

// TestDeliveryTransferSyntax: a SEG stored in explicit VR little endian reaches a receiver that
// accepts only implicit VR little endian (storescp +xi), converted, and reaches one that accepts
// both as stored.
func TestDeliveryTransferSyntax(t *testing.T) {
	n := startPipeline(t, t.TempDir(), nil, nil) // no model: SEG is not routed, no job runs
	seg := putFile(t, n.pl, testutil.SharedData(t, "dicom", "SEG", "dcmqi_partial_overlaps_seg.dcm"), "SCU")
	if seg.TransferSyntaxUID != dcm.ExplicitVRLittleEndian {
		t.Fatalf("fixture stored in %s, want explicit VR little endian", seg.TransferSyntaxUID)
	}
	dcmdump := testutil.Tool(t, "dcmdump", "dcmtk")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"implicit only (+xi)", []string{"+xi"}, dcm.ImplicitVRLittleEndian},
		{"explicit only (+xe)", []string{"+xe"}, dcm.ExplicitVRLittleEndian},
		{"any (default)", nil, dcm.ExplicitVRLittleEndian},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, port := startStorescp(t, tt.args...)
			w := &deliverWorker{p: n.pl}
			err := w.send(context.Background(), DeliverArgs{SEGInstanceUID: seg.SOPInstanceUID, AETitle: "STORESCP", Host: "127.0.0.1", Port: port})
			if err != nil {
				t.Fatalf("delivery: %v", err)
			}
			path := filepath.Join(dir, "SG."+seg.SOPInstanceUID)
			f, err := os.Open(path)
			if err != nil {
				t.Fatalf("storescp holds no SEG: %v", err)
			}
			defer f.Close()
			meta, err := dcm.ReadFileMeta(bufio.NewReader(f))
			if err != nil {
				t.Fatal(err)
			}
			if meta.TransferSyntaxUID != tt.want {
				t.Errorf("received in %s, want %s", meta.TransferSyntaxUID, tt.want)
			}
			out, err := exec.Command(dcmdump, "+P", "0062,0002", "+P", "0008,0018", path).CombinedOutput()
			if err != nil || !strings.Contains(string(out), seg.SOPInstanceUID) || !strings.Contains(string(out), "(0062,0002)") {
				t.Errorf("dcmdump of the received SEG (%v):\n%s", err, out)
			}
		})
	}
}

func TestStoreContexts(t *testing.T) {
	const segClass = "1.2.840.10008.5.1.4.1.1.66.4"
	for _, tt := range []struct {
		ts   string
		want [][]string
	}{
		{dcm.ExplicitVRLittleEndian, [][]string{{dcm.ExplicitVRLittleEndian}, {dcm.ImplicitVRLittleEndian}}},
		{dcm.ImplicitVRLittleEndian, [][]string{{dcm.ImplicitVRLittleEndian}}},
		{dimse.DeflatedExplicitVRLittleEndian, [][]string{{dimse.DeflatedExplicitVRLittleEndian}}},
		{"1.2.840.10008.1.2.4.90", [][]string{{"1.2.840.10008.1.2.4.90"}, {dcm.ExplicitVRLittleEndian}, {dcm.ImplicitVRLittleEndian}}},
	} {
		got := storeContexts(segClass, tt.ts)
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %d contexts %+v, want %v", tt.ts, len(got), got, tt.want)
		}
		for i, pc := range got {
			if pc.AbstractSyntax != segClass || !slices.Equal(pc.TransferSyntaxes, tt.want[i]) {
				t.Errorf("%s: context %d is %+v, want %v", tt.ts, i, pc, tt.want[i])
			}
		}
	}
}
