package pipeline

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/store"
)

// TestDeliveryConverts: a destination that accepts none of the syntaxes an object is stored in
// gets it converted instead of a failed delivery: DCMTK's storescp as it comes (uncompressed
// syntaxes only) gets compressed objects decompressed to explicit VR little endian, and with
// +xi (implicit VR little endian only) gets them decompressed to implicit, and an explicit VR
// one converted to implicit. Each received frame decodes to what the stored frame decodes to.
func TestDeliveryConverts(t *testing.T) {
	files := []string{
		"CR/wg04_RG2_J2KR_mono2.dcm",                 // JPEG 2000 (OpenJPEG)
		"CR/wg04_RG3_JLSN_mono1.dcm",                 // JPEG-LS near-lossless (CharLS)
		"CT/cornerstone_CT_jpegll_p14.dcm",           // JPEG Lossless (Go)
		"US/gdcm_philips_US_jpegbaseline_ybr422.dcm", // YBR_FULL_422 -> RGB, lossy attributes
		"CT/wg04_CT1_UNC.dcm",                        // explicit VR LE
	}
	tests := []struct {
		name string
		args []string
		want func(stored string) string
	}{
		{"storescp", nil, func(stored string) string {
			if stored == dcm.ExplicitVRLittleEndian {
				return stored
			}
			return dcm.ExplicitVRLittleEndian
		}},
		{"storescp +xi", []string{"+xi"}, func(string) string { return dcm.ImplicitVRLittleEndian }},
	}
	n := startPipeline(t, t.TempDir(), nil, nil)
	uids := map[string]string{} // SOP Instance UID -> shared file
	for _, f := range files {
		src := testutil.SharedData(t, "dicom", f)
		inst := putStore(t, n, src)
		uids[inst.SOPInstanceUID] = src
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// +B: written as received, so that the received transfer syntax is the sent one.
			dir, port := startStorescp(t, append([]string{"+B"}, tc.args...)...)
			w := &deliverWorker{p: n.pl}
			for uid, src := range uids {
				err := w.send(context.Background(), DeliverArgs{SEGInstanceUID: uid, AETitle: "STORESCP", Host: "127.0.0.1", Port: port})
				if err != nil {
					t.Errorf("%s: %v", filepath.Base(src), err)
					continue
				}
				got := receivedFile(t, dir, uid)
				if got == "" {
					t.Errorf("%s: not received", filepath.Base(src))
					continue
				}
				stored := readMeta(t, src).TransferSyntaxUID
				if ts := readMeta(t, got).TransferSyntaxUID; ts != tc.want(stored) {
					t.Errorf("%s stored in %s received in %s, want %s", filepath.Base(src), stored, ts, tc.want(stored))
				}
				sameFrames(t, src, got)
			}
		})
	}
}

// putStore stores a Part-10 file in the archive without the pipeline (no routing, no job).
func putStore(t *testing.T, n *testNode, path string) store.Instance {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := n.st.Put(context.Background(), store.PutRequest{
		SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID, CallingAE: "SCU", CalledAE: "ESPNODE", Data: br,
	})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func readMeta(t *testing.T, path string) dcm.FileMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta, err := dcm.ReadFileMeta(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return meta
}

// receivedFile is the file storescp wrote for a SOP Instance UID (named MODALITY.UID), or "".
func receivedFile(t *testing.T, dir, uid string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, u, _ := strings.Cut(e.Name(), "."); u == uid {
			return filepath.Join(dir, e.Name())
		}
	}
	return ""
}

func sameFrames(t *testing.T, stored, received string) {
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
			t.Fatalf("%s frame %d: received (%s) differs from stored (%s)", filepath.Base(stored), i, fb.Photometric, fa.Photometric)
		}
	}
}
