package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dcm/dcmtest"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/pixel"
)

// routedModalities are the modalities the default routing sends to a channel (the Modality
// column of INVENTORY.csv).
var routedModalities = map[string]bool{"CR": true, "DX": true, "US": true, "ES": true, "OP": true, "XC": true, "GM": true, "SM": true}

// everyModalityRouting routes every image of a routed modality, whatever its anatomy: the
// default table segments only chest radiographs and breast ultrasound, and most shared CR, DX
// and US files are of other parts (or say nothing), while this test is about decoding them.
const everyModalityRouting = `pipeline:
  routing:
    - {channel: dermoscopy, modality: [DMS, XC]}
    - {channel: xray, modality: [CR, DX]}
    - {channel: ultrasound, modality: [US]}
    - {channel: fundus, modality: [OP]}
    - {channel: microscopy, modality: [SM, GM]}
    - {channel: colonoscopy, modality: [ES]}
`

// routeEveryRadiograph puts every CR and DX on the xray channel, ahead of the default table's
// anatomy rules (withPipeline already routes every US), for the same reason.
func routeEveryRadiograph(c *config.Config) {
	c.Pipeline.Routing = append([]config.Route{{Channel: "xray", Modality: []string{"CR", "DX"}}}, c.Pipeline.Routing...)
}

// referenceDecodes holds the syntaxes DCMTK (dcmdjpeg, dcmdjpls, dcmdrle) or GDCM (gdcmconv
// --raw) decodes, besides the native ones: HTJ2K and JPEG XL are in neither (DCMTK 3.6.7,
// GDCM 3.0.21).
var referenceDecodes = map[string]bool{
	dcm.RLELossless: true, dcm.JPEGBaseline8Bit: true, dcm.JPEGExtended12Bit: true, dcm.JPEGLossless: true,
	dcm.JPEGLosslessSV1: true, dcm.JPEGLSLossless: true, dcm.JPEGLSNearLossless: true, dcm.JPEG2000Lossless: true, dcm.JPEG2000: true,
}

// routedShared lists the shared files of routed modalities that DCMTK or GDCM decodes, and
// those this build decodes beyond them (JPEG XL), from INVENTORY.csv.
func routedShared(t *testing.T) (files []string, beyond []string) {
	t.Helper()
	f, err := os.Open(testutil.SharedData(t, "dicom", "INVENTORY.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows[1:] {
		path, modality, ts := r[0], r[1], r[3]
		if !routedModalities[modality] {
			continue
		}
		s, _ := dcm.LookupTransferSyntax(ts)
		p := testutil.SharedData(t, "dicom", path)
		if _, ok := tryMeta(p); !ok {
			// `espnode segment` and the node read Part-10 files only; an ACR-NEMA file
			// without meta is not one.
			continue
		}
		switch {
		case ts == "" || !s.Encapsulated || referenceDecodes[ts]:
			files = append(files, p)
		case pixel.Decodable(ts):
			beyond = append(beyond, p)
		}
	}
	return files, beyond
}

// TestSegmentSameImageSameMask: one image stored in several transfer syntaxes gives the same
// mask, byte for byte, through `espnode segment`.
func TestSegmentSameImageSameMask(t *testing.T) {
	model := segmentTestEnv(t)
	// A leg radiograph and an ultrasound of no stated part: routed by channel, since the
	// default table segments neither.
	for _, group := range []struct {
		channel string
		files   []string
	}{
		{"ultrasound", []string{"US/wg04_US1_UNC.dcm", "US/wg04_US1_J2KR.dcm", "US/wg04_US1_RLE.dcm"}},
		{"xray", []string{"CR/wg04_RG3_UNC_mono1.dcm", "CR/wg04_RG3_JPLL_mono1.dcm"}},
	} {
		group, channel := group.files, group.channel
		t.Run(filepath.Base(group[0]), func(t *testing.T) {
			out := t.TempDir()
			args := []string{"--model", model, "--threads", "1", "--provider", "cpu", "--channel", channel, "--no-seg", "-q", "-o", out}
			for _, f := range group {
				args = append(args, testutil.SharedData(t, "dicom", f))
			}
			var stdout, stderr bytes.Buffer
			if err := runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, args); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			mask := func(f string) []byte {
				b, err := os.ReadFile(filepath.Join(out, strings.TrimSuffix(filepath.Base(f), ".dcm")+"_mask.png"))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if !strings.Contains(stdout.String(), "foreground pixels") || strings.Contains(stdout.String(), " 0 foreground pixels") {
				t.Fatalf("a mask with no foreground cannot tell decoders apart:\n%s", stdout.String())
			}
			ref := mask(group[0])
			for _, f := range group[1:] {
				if !bytes.Equal(mask(f), ref) {
					t.Errorf("%s gives another mask than %s", f, group[0])
				}
			}
		})
	}
}

// TestEveryRoutedFileSegmented: every shared file of a routed modality that DCMTK or GDCM can
// decode, whatever its transfer syntax (and the JPEG XL ones, which only this node decodes), is
// segmented by `espnode segment`, and through `espnode serve` reaches the destination as a
// dciodvfy-clean SEG that references it.
func TestEveryRoutedFileSegmented(t *testing.T) {
	files, beyond := routedShared(t)
	all := append(append([]string{}, files...), beyond...)
	if len(files) < 55 {
		t.Fatalf("%d routed files DCMTK or GDCM decode in INVENTORY.csv, want at least 55", len(files))
	}
	syntaxes := map[string]bool{}
	for _, f := range all {
		syntaxes[metaSyntax(f)] = true
	}
	for _, ts := range []string{dcm.JPEGLosslessSV1, dcm.JPEGExtended12Bit, dcm.JPEGLSLossless, dcm.JPEGLSNearLossless, dcm.JPEG2000Lossless, dcm.JPEG2000} {
		if !syntaxes[ts] {
			t.Errorf("no routed file in %s", ts)
		}
	}

	t.Run("espnode segment", func(t *testing.T) {
		model := segmentTestEnv(t)
		out := t.TempDir()
		cfg := filepath.Join(t.TempDir(), "every.yaml")
		if err := os.WriteFile(cfg, []byte(everyModalityRouting), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		args := append([]string{"--model", model, "--threads", "1", "--provider", "cpu", "--config", cfg, "-q", "-o", out}, all...)
		if err := runSegment(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, args); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		for _, f := range all {
			base := strings.TrimSuffix(filepath.Base(f), ".dcm")
			data, err := os.ReadFile(filepath.Join(out, base+"_seg.dcm"))
			if err != nil {
				t.Errorf("%s: no SEG: %v", f, err)
				continue
			}
			if _, err := dicomseg.Decode(data); err != nil {
				t.Errorf("%s: SEG: %v", f, err)
			}
		}
	})

	t.Run("espnode serve", func(t *testing.T) {
		pipelineORT(t)
		destDir := t.TempDir()
		destPort := startStorescp(t, destDir)
		pipe := withPipeline(config.Peer{AETitle: "STORESCP", Host: "127.0.0.1", Port: destPort})
		n := startNode(t, func(c *config.Config) { pipe(c); routeEveryRadiograph(c) })
		want := map[string]string{} // source SOP Instance UID -> file
		for _, f := range all {
			uid := readAttrs(t, f, dcm.SOPInstanceUID).String(dcm.SOPInstanceUID)
			if err := dcm.CheckUID(uid); err != nil {
				// The node refuses UIDs that break PS3.5 9.1 (docs/DESIGN.md, rule 4).
				t.Logf("%s not sent: %v", filepath.Base(f), err)
				continue
			}
			want[uid] = f
			var out bytes.Buffer
			if code := run(context.Background(), &cliEnv{stdout: &out, stderr: &out}, []string{"store", "--called-ae", "ESPNODE", n.addr, f}); code != 0 {
				if !strings.Contains(out.String(), "odd length") {
					t.Fatalf("espnode store %s: exit %d\n%s", f, code, out.String())
				}
				// `espnode store` refuses to send a malformed file that storescu sends.
				storescu(t, n.port, []string{f})
			}
		}
		var got map[string][]string
		waitFor(t, "a SEG per routed source at storescp", 10*time.Minute, func() bool {
			got = receivedSEGs(t, destDir)
			jobs := jobCounts(t, n.dataDir)
			if jobs["segment/cancelled"]+jobs["segment/discarded"] > 0 {
				return true // reported below
			}
			for uid := range want {
				if len(got[uid]) == 0 {
					return false
				}
			}
			return true
		})
		for uid, f := range want {
			if len(got[uid]) == 0 {
				t.Errorf("%s: no SEG at the destination", f)
			}
		}
		if jobs := jobCounts(t, n.dataDir); jobs["segment/cancelled"]+jobs["segment/discarded"] > 0 {
			t.Errorf("segmentation jobs failed: %v", jobs)
		}
		// Faults of a few sources that their SEGs carry over, whatever decodes them: UIDs
		// under the made-up root 999.999 (the SEG shares the source's study), and frames in a
		// single-frame SOP class (US Image Storage with two), which makes dciodvfy refuse the
		// SEG's Referenced Frame Number.
		sourceFaults := map[string]string{
			"barre_US_PAL_8_10x_echo_rle.dcm":        "Illegal root for UID",
			"dcm4che_US_palette_10fr_jpegls.dcm":     "Illegal root for UID",
			"pydicom_OBXXXX1A_2fr_evrle_palette.dcm": "Referenced SOP Class that is not multi-frame",
			"pydicom_OBXXXX1A_2fr_evrbe_palette.dcm": "Referenced SOP Class that is not multi-frame",
		}
		checked := map[string]bool{}
		for uid, f := range want {
			for _, p := range got[uid] {
				if checked[p] {
					continue
				}
				checked[p] = true
				var errs []string
				for _, e := range dciodvfyErrors(t, p) {
					if fault := sourceFaults[filepath.Base(f)]; fault == "" || !strings.Contains(e, fault) {
						errs = append(errs, e)
					}
				}
				if len(errs) > 0 {
					t.Errorf("dciodvfy %s (SEG of %s):\n%s", filepath.Base(p), filepath.Base(f), strings.Join(errs, "\n"))
				}
			}
		}
	})
}

func metaSyntax(path string) string {
	m, _ := tryMeta(path)
	return m.TransferSyntaxUID
}

// tryMeta reads a file's meta; false for a bare data set (ACR-NEMA), which no peer sends.
func tryMeta(path string) (dcm.FileMeta, bool) {
	f, err := os.Open(path)
	if err != nil {
		return dcm.FileMeta{}, false
	}
	defer f.Close()
	m, err := dcm.ReadFileMeta(bufio.NewReader(f))
	return m, err == nil
}

// truncatedCodestream is src with its first frame's codestream cut short (dcmtest).
func truncatedCodestream(t *testing.T, src string) string {
	return dcmtest.TruncatedCodestream(t, src)
}
