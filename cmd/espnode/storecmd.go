package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
)

// sendFile is one file to send, as found by the first pass.
type sendFile struct {
	path                      string
	sopClass, sopInstance, ts string
	noMeta                    bool // ACR-NEMA style: the whole file is an implicit VR LE data set
	size                      int64
	dataLen                   int64 // bytes after the file meta
}

type syntaxPair struct{ sopClass, ts string }

func runStore(ctx context.Context, env *cliEnv, args []string) error {
	fset := env.newFlagSet("store", "usage: espnode store [--ae-title AET] [--called-ae AET] [--window N] HOST:PORT PATH...",
		"Sends DICOM files, and the files under folders (recursively), with C-STORE.")
	var cf clientFlags
	cf.register(fset)
	window := fset.Int("window", 1, "propose an asynchronous operations window: keep up to N C-STOREs outstanding when the peer grants it (1: one at a time, nothing proposed)")
	if err := parseArgs(fset, args, 2, -1); err != nil {
		return err
	}
	if *window < 1 || *window > math.MaxUint16 {
		fmt.Fprintf(env.stderr, "espnode store: --window must be 1..%d, got %d\n", math.MaxUint16, *window)
		return exitError{2}
	}
	addr := fset.Arg(0)
	paths, err := collectFiles(fset.Args()[1:])
	if err != nil {
		return err
	}
	var files []sendFile
	skipped := 0
	s := &storeRun{env: env, cf: cf, addr: addr, window: *window}
	for _, p := range paths {
		f, err := inspectFile(p)
		switch {
		case err == nil:
			files = append(files, f)
		case f.sopInstance == "":
			fmt.Fprintf(env.stderr, "skip %s: %v\n", p, err)
			skipped++
		default:
			s.fail(f, err)
		}
	}
	s.progress = newProgress(env.stderr, len(files), isTerminal(env.stderr) && len(files) > 1)
	s.sendAll(ctx, files)
	s.progress.done()
	granted := ""
	if s.window > 1 {
		// What the peer granted, on its least generous association: 1 from most peers.
		granted = fmt.Sprintf(" (window %d)", s.granted)
	}
	fmt.Fprintf(env.stdout, "sent %d, failed %d, skipped %d (not DICOM) of %d files; %.1f MB in %v%s\n",
		s.sent, s.failed, skipped, len(paths), float64(s.bytes)/1e6, s.elapsed.Round(time.Millisecond), granted)
	if s.failed > 0 {
		return exitError{1}
	}
	return nil
}

// collectFiles expands folders recursively, in lexical order.
func collectFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", a, err)
		}
	}
	sort.Strings(out)
	return out, nil
}

// inspectFile reads what the association needs: SOP class, SOP instance and transfer syntax.
// The UIDs come from the data set, not the file meta: receivers check the data set against the
// command (A900), and file meta is sometimes stale.
func inspectFile(path string) (sendFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return sendFile{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return sendFile{}, err
	}
	cr := &countingReader{r: f}
	br := bufio.NewReaderSize(cr, 64<<10)
	sf := sendFile{path: path, size: st.Size()}
	m, err := dcm.ReadFileMeta(br)
	switch {
	case errors.Is(err, dcm.ErrNoFileMeta):
		// A bare data set (ACR-NEMA era): implicit VR little endian.
		sf.ts, sf.noMeta = dcm.ImplicitVRLittleEndian, true
	case err != nil:
		return sendFile{}, err
	default:
		sf.ts = m.TransferSyntaxUID
	}
	sf.dataLen = sf.size - (cr.n - int64(br.Buffered()))
	attrs, err := dcm.ReadDataSet(br, sf.ts, dcm.ParseOptions{Keep: dcm.NewTagSet(dcm.SOPClassUID, dcm.SOPInstanceUID), StopAfter: dcm.SOPInstanceUID})
	if err != nil {
		if sf.noMeta {
			return sendFile{}, fmt.Errorf("not a DICOM file: %w", err)
		}
		return sendFile{}, fmt.Errorf("read data set: %w", err)
	}
	sf.sopClass, sf.sopInstance = attrs.String(dcm.SOPClassUID), attrs.String(dcm.SOPInstanceUID)
	if sf.sopClass == "" || sf.sopInstance == "" {
		if sf.noMeta {
			return sendFile{}, errors.New("not a DICOM file: no SOP class or instance UID")
		}
		return sendFile{}, errors.New("data set lacks SOP Class UID or SOP Instance UID")
	}
	// A deflated data set may end on an odd byte; it is padded when sent (PS3.5 A.5).
	if sf.dataLen%2 != 0 && sf.ts != dcm.DeflatedExplicitVRLittleEndian {
		return sf, fmt.Errorf("malformed: the data set has odd length %d, and DICOM values and fragments must be even", sf.dataLen)
	}
	return sf, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type storeRun struct {
	env    *cliEnv
	cf     clientFlags
	addr   string
	window int
	// granted is the smallest window a peer granted (0 before the first association).
	granted      int
	progress     *progress
	sent, failed int
	bytes        int64
	elapsed      time.Duration
}

// sendAll sends the files over as few associations as the 128-context limit allows, one context
// per (SOP class, transfer syntax) pair: files are sent as they are, never transcoded.
func (s *storeRun) sendAll(ctx context.Context, files []sendFile) {
	start := time.Now()
	defer func() { s.elapsed = time.Since(start) }()
	for len(files) > 0 {
		seen := map[syntaxPair]bool{}
		var contexts []dimse.PresentationContextRQ
		n := 0
		for _, f := range files {
			k := syntaxPair{f.sopClass, f.ts}
			if !seen[k] {
				if len(contexts) == 128 {
					break
				}
				seen[k] = true
				contexts = append(contexts, dimse.PresentationContextRQ{AbstractSyntax: f.sopClass, TransferSyntaxes: []string{f.ts}})
			}
			n++
		}
		batch := files[:n]
		files = files[n:]
		s.sendBatch(ctx, batch, contexts)
		if ctx.Err() != nil {
			s.failed += len(files)
			return
		}
	}
}

// sendBatch sends the batch over one association, and over a new one for what is left each time
// an association breaks: the first file not answered then is counted failed (with a window above
// 1 several were outstanding, and which of them broke it is not known), so every retry is
// shorter than the one before.
func (s *storeRun) sendBatch(ctx context.Context, batch []sendFile, contexts []dimse.PresentationContextRQ) {
	cfg := s.cf.config(contexts)
	if s.window > 1 {
		cfg.AsyncOps = &dimse.AsyncOpsWindow{MaxInvoked: uint16(s.window), MaxPerformed: 1}
	}
	for len(batch) > 0 {
		if ctx.Err() != nil {
			for _, f := range batch {
				s.fail(f, ctx.Err())
				s.progress.step()
			}
			return
		}
		c, err := dimse.Dial(ctx, s.addr, cfg)
		if err != nil {
			s.fail(batch[0], err)
			s.progress.step()
			batch = batch[1:]
			continue
		}
		if w := c.Association().Window(); s.granted == 0 || w < s.granted {
			s.granted = w
		}
		batch = s.sendOver(ctx, c, batch)
	}
}

// sendOver sends the files over c and releases it; when the association breaks it returns the
// files to send again.
func (s *storeRun) sendOver(ctx context.Context, c *dimse.Client, files []sendFile) []sendFile {
	var reqs []dimse.StoreRequest
	var sending []sendFile
	for _, f := range files {
		if _, ok := c.FindContext(f.sopClass, f.ts); !ok {
			s.fail(f, fmt.Errorf("the peer accepted no presentation context for %s in %s", f.sopClass, f.ts))
			s.progress.step()
			continue
		}
		reqs = append(reqs, dimse.StoreRequest{SOPClassUID: f.sopClass, SOPInstanceUID: f.sopInstance, TransferSyntaxUID: f.ts,
			Open: func() (io.ReadCloser, error) { return openDataSet(f) }})
		sending = append(sending, f)
	}
	answered := make([]bool, len(sending))
	err := c.StoreMany(ctx, reqs, func(r dimse.StoreResult) {
		answered[r.Index] = true
		f, st := sending[r.Index], r.Status
		switch {
		case st.Code == dimse.StatusSuccess || st.Code&0xF000 == 0xB000:
			s.sent++
			s.bytes += f.size
			if st.Code != dimse.StatusSuccess {
				fmt.Fprintf(s.env.stderr, "%s: stored with warning %v\n", f.path, st)
			}
		default:
			s.fail(f, fmt.Errorf("status %v", st))
		}
		s.progress.step()
	})
	if err == nil {
		_ = c.Release(ctx)
		return nil
	}
	var again []sendFile
	blamed := false
	for i, f := range sending {
		switch {
		case answered[i]:
		case !blamed:
			blamed = true
			s.fail(f, err)
			s.progress.step()
		default:
			again = append(again, f)
		}
	}
	return again
}

// openDataSet opens f's data set, past its file meta information, padded to even length.
func openDataSet(f sendFile) (io.ReadCloser, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(file, 256<<10)
	if !f.noMeta {
		if _, err := dcm.ReadFileMeta(br); err != nil {
			file.Close()
			return nil, err
		}
	}
	var data io.Reader = br
	if f.dataLen%2 != 0 {
		data = io.MultiReader(br, bytes.NewReader([]byte{0}))
	}
	return struct {
		io.Reader
		io.Closer
	}{data, file}, nil
}

func (s *storeRun) fail(f sendFile, err error) {
	s.failed++
	if s.progress != nil {
		s.progress.clear()
	}
	fmt.Fprintf(s.env.stderr, "failed %s: %v\n", f.path, err)
}
