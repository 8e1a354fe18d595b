// Command e2e measures espnode's end-to-end latency per channel: from the
// C-STORE-RSP of an instance to its SEG written by DCMTK storescp, the
// destination. It starts `espnode serve` (the given binary) and storescp,
// waits for /readyz (model loaded), sends fresh copies (new SOP Instance
// UIDs, DCMTK dcmodify) of files of every channel from the shared data, one
// at a time with a pause (unloaded latency) or back to back (-burst), and
// prints p50 and p95 per channel. In a burst it also prints how fast the
// queue drained (frames segmented and delivered per second, from the first
// C-STORE-RSP to the last SEG at the destination) against the inference-only
// rate of the same model file with the same threads, measured in the same
// run before the burst while the node is idle, each image through its
// channel's input mode as the node runs it (tiles included). The node routes
// by modality with the plausibility guard off, so that every instance comes
// back as a SEG. bench/e2e/run.sh runs it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/seg/segment"
)

// sources are the files per channel under the shared data's dicom folder.
var sources = map[string][]string{
	"colonoscopy": {"wrapped/ES_polypgen_C3_EndoCV2021_00428.dcm", "wrapped/ES_kvasir-seg-sample_cju0rx1idathl0835detmsp84.dcm", "wrapped/ES_polypgen_130OLCV1_100H0002.dcm"},
	"fundus":      {"wrapped/OP_drishti-gs1_drishtiGS_012.dcm", "wrapped/OP_drive_drive_05.dcm", "wrapped/OP_chasedb1_Image_03L.dcm"},
	"dermoscopy":  {"wrapped/XC_ph2_IMD092.dcm", "wrapped/XC_ph2_IMD008.dcm", "wrapped/XC_ham10000-sample_ISIC_0027800.dcm"},
	"microscopy":  {"wrapped/GM_gbm40_gbm40_25.dcm", "wrapped/GM_gbm40_gbm40_05.dcm"},
	"ultrasound":  {"US/wg04_US1_UNC.dcm", "US/cornerstone_US_ybr422_evrle_uncompressed.dcm", "US/dcm4che_US_ybrfull_rle.dcm"},
	"xray":        {"CR/wg04_RG3_UNC_mono1.dcm", "DX/highdicom_dx_image_mono1_evrle.dcm"},
}

// modalityRouting sends each of the sources' modalities to its channel, whatever the anatomy.
const modalityRouting = "[{channel: dermoscopy, modality: [XC]}, {channel: xray, modality: [CR, DX]}, " +
	"{channel: ultrasound, modality: [US]}, {channel: fundus, modality: [OP]}, " +
	"{channel: microscopy, modality: [GM]}, {channel: colonoscopy, modality: [ES]}]"

type sample struct {
	uid, channel, file string
	rsp                time.Time
}

func main() {
	bin := flag.String("espnode", "bin/espnode", "espnode binary")
	shared := flag.String("shared", "../shared", "shared test material (holds data/dicom)")
	out := flag.String("out", "bench/out/e2e", "work folder")
	n := flag.Int("n", 20, "instances per channel")
	pause := flag.Duration("pause", 300*time.Millisecond, "pause after each C-STORE-RSP (0 with -burst)")
	burst := flag.Bool("burst", false, "send everything back to back")
	provider := flag.String("provider", "cpu", "model.provider")
	workers := flag.Int("workers", 0, "pipeline.workers (0: fitted)")
	logLevel := flag.String("log-level", "warn", "the node's log.level (its log is OUT/espnode.log)")
	threads := flag.Int("threads", 0, "model.threads, for the node and the inference-only reference (0: ONNX Runtime's choice)")
	flag.Parse()
	if err := run(*bin, *shared, *out, *n, *pause, *burst, *provider, *workers, *threads, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

func run(bin, shared, out string, n int, pause time.Duration, burst bool, provider string, workers, threads int, logLevel string) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	copies := filepath.Join(out, "copies")
	dest := filepath.Join(out, "dest")
	for _, d := range []string{copies, dest} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Fresh SOP Instance UIDs: a resent instance would get no second delivery.
	var samples []sample
	channels := slices.Sorted(func(yield func(string) bool) {
		for c := range sources {
			if !yield(c) {
				return
			}
		}
	})
	for i := range n {
		for _, ch := range channels {
			files := sources[ch]
			src := filepath.Join(shared, "data", "dicom", files[i%len(files)])
			dst := filepath.Join(copies, fmt.Sprintf("%s-%03d.dcm", ch, i))
			data, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				return err
			}
			samples = append(samples, sample{channel: ch, file: dst})
		}
	}
	args := []string{"-nb", "-gin"}
	for _, s := range samples {
		args = append(args, s.file)
	}
	if b, err := exec.Command("dcmodify", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("dcmodify: %v\n%s", err, b)
	}

	destPort, dicomPort, httpPort := freePort(), freePort(), freePort()
	scp := exec.Command("storescp", "-aet", "STORESCP", "+xa", "-od", dest, strconv.Itoa(destPort))
	scp.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := scp.Start(); err != nil {
		return fmt.Errorf("storescp: %w", err)
	}
	defer func() { scp.Process.Kill(); scp.Wait() }()

	// The harness times every instance to its SEG, so nothing may be withheld: the
	// plausibility guard is off (2.2.0's bounds withhold the PH2 photograph's SEG) and routing
	// goes by modality alone (the default's anatomy rules skip the shared CR of an extremity and
	// the ultrasounds that do not say breast). Both have their own tests.
	cfg := fmt.Sprintf("data_dir: %s\ndicom: {host: 127.0.0.1, port: %d}\nhttp: {addr: \"127.0.0.1:%d\"}\n"+
		"model: {provider: %s, threads: %d, reject_implausible: false}\n"+
		"pipeline: {workers: %d, poll_interval: 100ms, routing: %s}\nlog: {level: %s}\n",
		filepath.Join(out, "data"), dicomPort, httpPort, provider, threads, workers, modalityRouting, logLevel)
	cfgFile := filepath.Join(out, "espnode.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(out, "espnode.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	node := exec.Command(bin, "serve", "--config", cfgFile, "--destination", fmt.Sprintf("STORESCP@127.0.0.1:%d", destPort))
	node.Stdout, node.Stderr = logf, logf
	if err := node.Start(); err != nil {
		return err
	}
	defer func() { node.Process.Signal(os.Interrupt); node.Wait() }()
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort), time.Minute); err != nil {
		return err
	}

	ctx := context.Background()
	var ref inferenceRate
	if burst {
		// The reference, while the node waits with its model loaded: the same file, provider
		// and threads, one image after another, nothing else.
		if ref, err = inferenceOnly(filepath.Join(out, "data", "models"), provider, threads, samples); err != nil {
			return fmt.Errorf("inference-only reference: %w", err)
		}
	}
	var pcs []dimse.PresentationContextRQ
	seen := map[[2]string]bool{}
	for _, s := range samples {
		m, err := meta(s.file)
		if err != nil {
			return err
		}
		k := [2]string{m.MediaStorageSOPClassUID, m.TransferSyntaxUID}
		if !seen[k] {
			seen[k] = true
			pcs = append(pcs, dimse.PresentationContextRQ{AbstractSyntax: k[0], TransferSyntaxes: []string{k[1]}})
		}
	}
	c, err := dimse.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", dicomPort), dimse.ClientConfig{CallingAE: "BENCH", CalledAE: "ESPNODE", Contexts: pcs})
	if err != nil {
		return err
	}
	for i := range samples {
		s := &samples[i]
		uid, err := send(ctx, c, s.file)
		if err != nil {
			return fmt.Errorf("%s: %w", s.file, err)
		}
		s.uid, s.rsp = uid, time.Now()
		if !burst {
			time.Sleep(pause)
		}
	}
	_ = c.Release(ctx)

	// Wait for every SEG, then read when storescp finished writing each.
	received := map[string]time.Time{}
	deadline := time.Now().Add(10 * time.Minute)
	for len(received) < len(samples) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d SEGs received after 10 minutes (see %s)", len(received), len(samples), logf.Name())
		}
		time.Sleep(200 * time.Millisecond)
		entries, err := os.ReadDir(dest)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(dest, e.Name())
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			seg, err := dicomseg.Decode(data)
			if err != nil || len(seg.Frames) == 0 || len(seg.Frames[0].Sources) == 0 {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			received[seg.Frames[0].Sources[0].SOPInstanceUID] = info.ModTime()
		}
	}

	lat := map[string][]time.Duration{}
	var first, last time.Time
	for _, s := range samples {
		lat[s.channel] = append(lat[s.channel], received[s.uid].Sub(s.rsp))
		if first.IsZero() || s.rsp.Before(first) {
			first = s.rsp
		}
		if received[s.uid].After(last) {
			last = received[s.uid]
		}
	}
	mode := fmt.Sprintf("paced (%s pause)", pause)
	if burst {
		mode = "burst"
	}
	// Where the time went, from the node's own histograms (means per SEG).
	inferMean, segMean, err := means(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort))
	if err != nil {
		return err
	}
	fmt.Printf("| channel | instances | p50 ms | p95 ms | max ms | mean inference ms | mean segmentation ms |\n|---|---|---|---|---|---|---|\n")
	enc := json.NewEncoder(os.Stderr)
	for _, ch := range channels {
		d := lat[ch]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		p50, p95 := pct(d, 50), pct(d, 95)
		fmt.Printf("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n", ch, len(d), ms(p50), ms(p95), ms(d[len(d)-1]), inferMean[ch]*1000, segMean[ch]*1000)
		_ = enc.Encode(map[string]any{"mode": mode, "channel": ch, "n": len(d), "p50_ms": ms(p50), "p95_ms": ms(p95), "provider": provider})
	}
	if burst {
		// The first C-STORE-RSP is where the queue starts filling; storescp's file times have
		// a resolution the run's seconds make irrelevant.
		drain := last.Sub(first)
		rate := float64(ref.frames) / drain.Seconds()
		fmt.Printf("\ndrain: %d instances, %d frames in %.2f s: %.1f frames/s; inference only (same model file, provider %s, threads %d, each channel's input mode): %.1f ms per frame (%.1f ms of it in the model), %.1f frames/s; drain / inference-only: %.2f\n",
			len(samples), ref.frames, drain.Seconds(), rate, provider, threads, ms(ref.perFrame), ms(ref.model), 1/ref.perFrame.Seconds(), rate*ref.perFrame.Seconds())
		_ = enc.Encode(map[string]any{"mode": "drain", "instances": len(samples), "frames": ref.frames, "drain_s": drain.Seconds(),
			"drain_frames_per_s": rate, "infer_ms_per_frame": ms(ref.perFrame), "model_ms_per_frame": ms(ref.model), "ratio": rate * ref.perFrame.Seconds(), "provider": provider})
	}
	return nil
}

// inferenceRate is the inference-only reference: frames run, the mean wall time of one through
// its channel's input mode (onnx.Route.Predict: letterbox or tiles, flips, blending, then the
// mask at the source's size, Prediction.Mask), and the part of that spent waiting for the model
// alone.
type inferenceRate struct {
	frames          int
	perFrame, model time.Duration
}

// inferenceOnly decodes and renders every frame of the samples (untimed), then runs each through
// the node's own input path for its channel, one after another, nothing else, and returns the
// mean time per frame. A plain letterbox for every channel would undercount the tiled channels
// (fundus, microscopy), which take several model inputs per image.
func inferenceOnly(modelDir, provider string, threads int, samples []sample) (inferenceRate, error) {
	models, err := filepath.Glob(filepath.Join(modelDir, "*.onnx"))
	if err != nil || len(models) != 1 {
		return inferenceRate{}, fmt.Errorf("want the node's one model file in %s, found %v (%v)", modelDir, models, err)
	}
	engine, err := onnx.OpenUniversal(models[0], onnx.Options{Provider: provider, Threads: threads})
	if err != nil {
		return inferenceRate{}, err
	}
	defer engine.Close()
	type input struct {
		rgb   *pixel.RGB
		route onnx.Route
	}
	var inputs []input
	for _, s := range samples {
		route, err := engine.Route(s.channel)
		if err != nil {
			return inferenceRate{}, err
		}
		src, err := segment.ReadFile(s.file)
		if err != nil {
			return inferenceRate{}, err
		}
		for i := range src.Image.NumFrames() {
			fr, err := src.Image.Frame(i)
			if err != nil {
				return inferenceRate{}, err
			}
			rgb, err := src.Image.Render(fr)
			if err != nil {
				return inferenceRate{}, err
			}
			inputs = append(inputs, input{rgb, route})
		}
	}
	ctx := context.Background()
	// One untimed run: the first pays for ONNX Runtime's lazy initialisation.
	if _, err := inputs[0].route.Predict(ctx, inputs[0].rgb); err != nil {
		return inferenceRate{}, err
	}
	var model time.Duration
	start := time.Now()
	for _, in := range inputs {
		p, err := in.route.Predict(ctx, in.rgb)
		if err != nil {
			return inferenceRate{}, err
		}
		// The mask at the source's size is the model's output as the node takes it.
		if _, err := p.Mask(in.route.Model.Metadata().Threshold, false); err != nil {
			return inferenceRate{}, err
		}
		model += p.Infer
	}
	n := time.Duration(len(inputs))
	return inferenceRate{frames: len(inputs), perFrame: time.Since(start) / n, model: model / n}, nil
}

// means reads the mean of the inference and segmentation histograms per
// channel from Prometheus text.
func means(url string) (infer, seg map[string]float64, err error) {
	rsp, err := http.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer rsp.Body.Close()
	sums := map[string]float64{}
	sc := bufio.NewScanner(rsp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), "{")
		if !ok || !strings.HasPrefix(name, "espnode_") {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		ch := ""
		for _, l := range strings.Split(labels, ",") {
			if v, ok := strings.CutPrefix(l, `channel="`); ok {
				ch = strings.TrimSuffix(v, `"`)
			}
		}
		v, err := strconv.ParseFloat(value, 64)
		if err == nil && ch != "" {
			sums[name+"/"+ch] += v
		}
	}
	infer, seg = map[string]float64{}, map[string]float64{}
	for ch := range sources {
		if n := sums["espnode_inference_seconds_count/"+ch]; n > 0 {
			infer[ch] = sums["espnode_inference_seconds_sum/"+ch] / n
		}
		if n := sums["espnode_segmentation_seconds_count/"+ch]; n > 0 {
			seg[ch] = sums["espnode_segmentation_seconds_sum/"+ch] / n
		}
	}
	return infer, seg, sc.Err()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the nearest-rank percentile of sorted durations.
func pct(d []time.Duration, p int) time.Duration {
	i := (p*len(d) + 99) / 100
	return d[max(i-1, 0)]
}

func meta(path string) (dcm.FileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return dcm.FileMeta{}, err
	}
	defer f.Close()
	return dcm.ReadFileMeta(bufio.NewReader(f))
}

func send(ctx context.Context, c *dimse.Client, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	m, err := dcm.ReadFileMeta(br)
	if err != nil {
		return "", err
	}
	st, err := c.Store(ctx, m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID, m.TransferSyntaxUID, br)
	if err != nil {
		return "", err
	}
	if st.Code != dimse.StatusSuccess {
		return "", fmt.Errorf("status %s", st)
	}
	return m.MediaStorageSOPInstanceUID, nil
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitReady(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if rsp, err := http.Get(url); err == nil {
			io.Copy(io.Discard, rsp.Body)
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", url, d)
}
