// Command send is the ingest benchmark's latency probe: it sends the DICOM files of a folder
// with C-STORE over one or more associations (files dealt round-robin) and prints, as one JSON
// line, how many it sent, how long it took, and the C-STORE response latency: from the first
// byte of the request to the response, per object, p50, p99 and the maximum. DCMTK's storescu
// measures throughput in bench/ingest/run.sh; it cannot report latencies, which is why this
// exists. With -window N it proposes an asynchronous operations window (PS3.7 D.3.3.3) and keeps
// as many requests outstanding as the receiver grants, which storescu cannot do; a receiver that
// grants none gets one request at a time, as from storescu.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:11112", "receiver `host:port`")
	dir := flag.String("dir", "", "folder of DICOM files (searched recursively, symbolic links followed)")
	assocs := flag.Int("assocs", 1, "parallel associations")
	calledAE := flag.String("aec", "ANY", "called AE title")
	window := flag.Int("window", 1, "requests outstanding at once on an association, when the receiver grants them")
	flag.Parse()
	if *dir == "" || *assocs < 1 || *window < 1 || *window > math.MaxUint16 {
		fmt.Fprintln(os.Stderr, "send: -dir is required, -assocs must be at least 1 and -window 1..65535")
		os.Exit(2)
	}
	if err := run(*addr, *dir, *assocs, *window, *calledAE); err != nil {
		fmt.Fprintln(os.Stderr, "send:", err)
		os.Exit(1)
	}
}

type object struct {
	path string
	meta dcm.FileMeta
}

func run(addr, dir string, assocs, window int, calledAE string) error {
	// The folder may be a symbolic link (run.sh links the ct set), which WalkDir does not follow.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	var objs []object
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		m, err := readMeta(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		objs = append(objs, object{p, m})
		return nil
	})
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return errors.New("no files")
	}
	var pcs []dimse.PresentationContextRQ
	seen := map[[2]string]bool{}
	for _, o := range objs {
		k := [2]string{o.meta.MediaStorageSOPClassUID, o.meta.TransferSyntaxUID}
		if !seen[k] {
			seen[k] = true
			pcs = append(pcs, dimse.PresentationContextRQ{AbstractSyntax: k[0], TransferSyntaxes: []string{k[1]}})
		}
	}
	ctx := context.Background()
	lat := make([][]time.Duration, assocs)
	errs := make([]error, assocs)
	granted := make([]int, assocs)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range assocs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i], granted[i], errs[i] = sendShare(ctx, addr, calledAE, pcs, objs, i, assocs, window)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	all := slices.Concat(lat...)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"files": len(all), "seconds": took.Seconds(), "assocs": assocs, "window": slices.Min(granted),
		"p50_ms": ms(pct(all, 50)), "p99_ms": ms(pct(all, 99)), "max_ms": ms(all[len(all)-1]),
	})
}

// sendShare sends every n-th object, from the i-th, over one association, and says how many
// requests the receiver let it have outstanding.
func sendShare(ctx context.Context, addr, calledAE string, pcs []dimse.PresentationContextRQ, objs []object, i, n, window int) ([]time.Duration, int, error) {
	cfg := dimse.ClientConfig{CallingAE: "BENCH", CalledAE: calledAE, Contexts: pcs}
	if window > 1 {
		cfg.AsyncOps = &dimse.AsyncOpsWindow{MaxInvoked: uint16(window), MaxPerformed: 1}
	}
	c, err := dimse.Dial(ctx, addr, cfg)
	if err != nil {
		return nil, 0, err
	}
	var reqs []dimse.StoreRequest
	for j := i; j < len(objs); j += n {
		reqs = append(reqs, storeRequest(objs[j]))
	}
	var lat []time.Duration
	var failed error
	err = c.StoreMany(ctx, reqs, func(r dimse.StoreResult) {
		if r.Status.Code != dimse.StatusSuccess && failed == nil {
			failed = fmt.Errorf("%s: status %s", reqs[r.Index].SOPInstanceUID, r.Status)
		}
		lat = append(lat, r.Latency)
	})
	granted := c.Association().Window()
	if err = errors.Join(err, failed); err != nil {
		_ = c.Abort()
		return nil, granted, err
	}
	return lat, granted, c.Release(ctx)
}

// storeRequest opens o's data set past its file meta information when it is sent.
func storeRequest(o object) dimse.StoreRequest {
	return dimse.StoreRequest{SOPClassUID: o.meta.MediaStorageSOPClassUID, SOPInstanceUID: o.meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: o.meta.TransferSyntaxUID, Open: func() (io.ReadCloser, error) {
			f, err := os.Open(o.path)
			if err != nil {
				return nil, err
			}
			br := bufio.NewReaderSize(f, 64<<10)
			if _, err := dcm.ReadFileMeta(br); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", o.path, err)
			}
			return struct {
				io.Reader
				io.Closer
			}{br, f}, nil
		}}
}

func readMeta(path string) (dcm.FileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return dcm.FileMeta{}, err
	}
	defer f.Close()
	return dcm.ReadFileMeta(bufio.NewReader(f))
}

// pct is the nearest-rank percentile of sorted durations.
func pct(d []time.Duration, p int) time.Duration {
	i := (p*len(d) + 99) / 100
	return d[max(i-1, 0)]
}
