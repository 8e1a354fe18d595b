package scp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/store"
)

// slowIndex yields many matches slowly, so a C-CANCEL reliably arrives mid-stream: the cancel's
// timing is the thing under test, not the index.
type slowIndex struct {
	n     int
	delay time.Duration
}

func (x slowIndex) Put(context.Context, store.PutRequest) (store.Instance, error) {
	return store.Instance{}, errors.New("read-only")
}

func (x slowIndex) Find(ctx context.Context, q store.Query, fn func(store.Record) error) error {
	for i := 1; i <= x.n; i++ {
		time.Sleep(x.delay)
		r := store.Record{}
		r.StudyInstanceUID = fmt.Sprintf("1.2.3.%d", i)
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (x slowIndex) Instances(context.Context, []string, []string, []string) ([]store.Instance, error) {
	return nil, nil
}

func (x slowIndex) OpenDataSet(context.Context, string) (io.ReadCloser, store.Instance, error) {
	return nil, store.Instance{}, os.ErrNotExist
}

func serveSlow(t *testing.T, n int) string {
	t.Helper()
	s := New(Options{AETitle: "ESPNODE", TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}, slowIndex{n: n, delay: 20 * time.Millisecond}, slowIndex{n: n, delay: 20 * time.Millisecond})
	srv := &dimse.Server{Policy: s.Policy(), Handler: s.Handler(), Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func TestFindCancel(t *testing.T) {
	const total = 100
	addr := serveSlow(t, total)
	ctx := context.Background()
	c, err := dimse.Dial(ctx, addr, dimse.ClientConfig{CallingAE: "T", CalledAE: "ESPNODE",
		Contexts: []dimse.PresentationContextRQ{{AbstractSyntax: StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(ctx)
	ident, err := dcm.Encode(dcm.NewDataSet(dcm.StrElement(dcm.QueryRetrieveLevel, "STUDY"), dcm.StrElement(dcm.StudyInstanceUID)), dimse.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	matches := 0
	st, err := c.Find(ctx, StudyRootFind, ident, func([]byte) error { matches++; return dimse.ErrCancel })
	if err != nil || st.Code != dimse.StatusCancel || matches >= 5 {
		t.Fatalf("status %v, err %v, %d matches of %d; want 0xFE00 within a few matches", st, err, matches, total)
	}
	// The association is still usable after a cancel.
	matches = 0
	st, err = c.Find(ctx, StudyRootFind, ident, func([]byte) error {
		matches++
		if matches == 3 {
			return dimse.ErrCancel
		}
		return nil
	})
	if err != nil || st.Code != dimse.StatusCancel || matches < 3 || matches >= 8 {
		t.Fatalf("second find: status %v, err %v, %d matches", st, err, matches)
	}

	// DCMTK's findscu --cancel.
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(addr)
	out, _ := exec.Command(testutil.Tool(t, "findscu", "dcmtk"), "-v", "-S", "--cancel", "2", "-X", "-od", dir,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", host, port).CombinedOutput()
	files, _ := filepath.Glob(filepath.Join(dir, "rsp*.dcm"))
	if !strings.Contains(string(out), "Final Find Response (Cancel") || len(files) >= 8 {
		t.Fatalf("findscu --cancel 2: %d responses; output:\n%s", len(files), out)
	}
}
