package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/dicomseg"
)

// TestServeSTOW: instances sent with STOW-RS to `espnode serve` go the way of a C-STORE: stored,
// routed, segmented and the SEG delivered; the response lists each part with its status, QIDO-RS
// then finds the source and its SEG, and WADO-RS renders a slide microscopy (SM) tile with that
// SEG over it (overlay=seg): what OHIF cannot show, OHIF 3.13 opening SM only in its microscopy
// mode, which reads no SEG.
func TestServeSTOW(t *testing.T) {
	pipelineORT(t)
	destDir := t.TempDir()
	destPort := startStorescp(t, destDir)
	dicomPort, httpPort := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan int, 1)
	t.Setenv("ESPNODE_HTTP_ADDR", "127.0.0.1:"+strconv.Itoa(httpPort))
	t.Setenv("ESPNODE_MODEL_PROVIDER", "cpu")
	go func() {
		done <- run(ctx, &cliEnv{stdout: &logs, stderr: &logs}, []string{"serve", "--data-dir", t.TempDir(),
			"--port", strconv.Itoa(dicomPort), "--destination", "STORESCP@127.0.0.1:" + strconv.Itoa(destPort)})
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	waitFor(t, "/readyz", time.Minute, func() bool {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		default:
		}
		rsp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		rsp.Body.Close()
		return rsp.StatusCode == http.StatusOK
	})

	src := testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD008.dcm")
	unrouted := testutil.SharedData(t, "dicom", "MR", "pydicom_MR_small_ivrle.dcm")
	tile := testutil.SharedData(t, "dicom", "SM", "cmu1_pyramid", "level-3-frames-0-1.dcm")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range []string{src, unrouted, tile, ""} {
		raw := []byte("not DICOM")
		if p != "" {
			var err error
			if raw, err = os.ReadFile(p); err != nil {
				t.Fatal(err)
			}
		}
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/dicom-web/studies", &body)
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	// Three stored, one part that is not DICOM: 202 Accepted (PS3.18 §10.5.3).
	if rsp.StatusCode != http.StatusAccepted {
		t.Fatalf("STOW-RS: %s\n%s", rsp.Status, b)
	}
	var answer map[string]struct {
		Value []map[string]struct {
			Value []any
		}
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		t.Fatalf("STOW-RS response: %v\n%s", err, b)
	}
	if n := len(answer["00081199"].Value); n != 3 {
		t.Errorf("Referenced SOP Sequence of %d items, want 3:\n%s", n, b)
	}
	failed := answer["00081198"].Value
	if len(failed) != 1 || fmt.Sprint(failed[0]["00081197"].Value) != "[49152]" {
		t.Errorf("Failed SOP Sequence %v, want one item with FailureReason C000 (49152)", failed)
	}

	uid := readMeta(t, src).MediaStorageSOPInstanceUID
	waitFor(t, "the SEG of the STOW-RS instance at storescp", 2*time.Minute, func() bool { return len(receivedSEGs(t, destDir)[uid]) == 1 })
	f, err := dcm.ReadFile(src, dcm.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	study := f.DataSet.String(dcm.StudyInstanceUID)
	code, series := httpGet(t, base+"/dicom-web/studies/"+study+"/series?includefield=0008103E")
	if code != http.StatusOK || !strings.Contains(series, `"SEG"`) || !strings.Contains(series, `"XC"`) {
		t.Errorf("QIDO-RS series of the study: %d\n%s", code, series)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{`espnode_instances_received_total{channel="dermoscopy"} 1`, `espnode_instances_received_total{channel="none"} 1`,
		`espnode_instances_received_total{channel="microscopy"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	tileMeta := readMeta(t, tile)
	waitFor(t, "the SEG of the SM tile at storescp", 2*time.Minute, func() bool { return len(receivedSEGs(t, destDir)[tileMeta.MediaStorageSOPInstanceUID]) == 1 })
	tf, err := dcm.ReadFile(tile, dcm.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rendered := base + "/dicom-web/studies/" + tf.DataSet.String(dcm.StudyInstanceUID) + "/series/" + tf.DataSet.String(dcm.SeriesInstanceUID) +
		"/instances/" + tileMeta.MediaStorageSOPInstanceUID + "/frames/1/rendered"
	plain, over := getPNG(t, rendered), getPNG(t, rendered+"?overlay=seg")
	raw, err := os.ReadFile(receivedSEGs(t, destDir)[tileMeta.MediaStorageSOPInstanceUID][0])
	if err != nil {
		t.Fatal(err)
	}
	seg, err := dicomseg.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	w, h := plain.Bounds().Dx(), plain.Bounds().Dy()
	if w != seg.Columns || h != seg.Rows {
		t.Fatalf("rendered %dx%d, SEG %dx%d", w, h, seg.Columns, seg.Rows)
	}
	mask := make([]byte, w*h)
	for _, sg := range seg.Segments {
		if m := seg.Mask(sg.Number, tileMeta.MediaStorageSOPInstanceUID, 0); m != nil {
			for i, v := range m {
				mask[i] |= v
			}
		}
	}
	in, out, fg := 0, 0, 0
	for y := range h {
		for x := range w {
			if mask[y*w+x] != 0 {
				fg++
			}
			if plain.At(x, y) == over.At(x, y) {
				continue
			}
			if mask[y*w+x] != 0 {
				in++
			} else {
				out++
			}
		}
	}
	t.Logf("SM tile: mask %d of %d px, overlay changed %d in it and %d outside", fg, w*h, in, out)
	if fg == 0 {
		t.Fatal("the SEG of the SM tile is empty: the overlay check cannot tell anything")
	}
	if in == 0 || out != 0 {
		t.Errorf("overlay=seg changed %d pixels inside the SEG's mask (%d px) and %d outside", in, fg, out)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, logs.String())
	}
}

// getPNG GETs a rendered frame as PNG.
func getPNG(t *testing.T, url string) image.Image {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "image/png")
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	img, err := png.Decode(bytes.NewReader(b))
	if rsp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET %s: %s %v\n%.300s", url, rsp.Status, err, b)
	}
	return img
}
