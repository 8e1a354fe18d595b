package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// dcmdump runs DCMTK's dcmdump on path and returns its stderr (warnings and
// errors) and the top-level values of the given tags.
func dcmdump(t *testing.T, path string) (stderr string, stdout string) {
	t.Helper()
	tool := testutil.Tool(t, "dcmdump", "dcmtk")
	cmd := exec.Command(tool, "-M", "-Un", "+L", path)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", path, err, e.String())
	}
	return e.String(), o.String()
}

// dumpValue finds a top-level element's value in dcmdump output.
func dumpValue(dump string, tag dcm.Tag) string {
	prefix := strings.ToLower(tag.String()) + " "
	for _, line := range strings.Split(dump, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		v := strings.TrimSpace(line[len(prefix)+3:])
		if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		if strings.HasPrefix(v, "[") {
			v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		}
		if v == "(no value available)" {
			v = ""
		}
		return strings.TrimSpace(v)
	}
	return ""
}

func TestPutSharedFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, "")
	ctx := context.Background()
	last := make(map[string]string) // SOP instance UID -> last file put
	var stored []store.Instance
	for _, path := range sharedFiles(t) {
		name, _ := filepath.Rel(testutil.SharedData(t, "dicom"), path)
		t.Run(name, func(t *testing.T) {
			m, data := sharedInstance(t, path)
			srcErr, srcDump := dcmdump(t, path)
			// Like storescu, take the command's UIDs from the data set;
			// a few files' meta disagrees with their data set.
			req := request(m, bytes.NewReader(data))
			req.SOPClassUID = dumpValue(srcDump, dcm.SOPClassUID)
			req.SOPInstanceUID = dumpValue(srcDump, dcm.SOPInstanceUID)
			if req.SOPInstanceUID != m.MediaStorageSOPInstanceUID {
				_, err := s.Put(ctx, request(m, bytes.NewReader(data)))
				if !errors.Is(err, store.ErrMismatch) {
					t.Errorf("Put with the meta's UID, not the data set's: %v, want store.ErrMismatch", err)
				}
			}
			m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID = req.SOPClassUID, req.SOPInstanceUID
			inst, err := s.Put(ctx, req)
			if dcm.CheckUID(req.SOPInstanceUID) != nil {
				// Real files carry invalid UIDs too ("999.999.01.23.45.6789"):
				// never a file name.
				if !errors.Is(err, store.ErrInvalidUID) {
					t.Errorf("Put of SOP instance %q: %v, want store.ErrInvalidUID", req.SOPInstanceUID, err)
				}
				return
			}
			if dumpValue(srcDump, dcm.StudyInstanceUID) == "" || dumpValue(srcDump, dcm.SeriesInstanceUID) == "" {
				// Study and Series store.Instance UID are type 1 and name the
				// file's folders: without them the archive refuses.
				if !errors.Is(err, store.ErrCannotUnderstand) {
					t.Errorf("Put of an instance without study or series UID: %v, want store.ErrCannotUnderstand", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			last[m.MediaStorageSOPInstanceUID] = path
			stored = append(stored, inst)

			// The file: our meta, then the data set byte for byte.
			file := filepath.Join(dir, filepath.FromSlash(inst.Path))
			want := filepath.Join(archiveName, inst.StudyInstanceUID, inst.SeriesInstanceUID, m.MediaStorageSOPInstanceUID+".dcm")
			if filepath.FromSlash(inst.Path) != want {
				t.Errorf("path %s, want %s", inst.Path, want)
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(raw)) != inst.Size {
				t.Errorf("size %d, file has %d bytes", inst.Size, len(raw))
			}
			br := bufio.NewReader(bytes.NewReader(raw))
			got, err := dcm.ReadFileMeta(br)
			if err != nil {
				t.Fatal(err)
			}
			wantMeta := dcm.FileMeta{
				MediaStorageSOPClassUID:      m.MediaStorageSOPClassUID,
				MediaStorageSOPInstanceUID:   m.MediaStorageSOPInstanceUID,
				TransferSyntaxUID:            m.TransferSyntaxUID,
				ImplementationClassUID:       "1.2.826.0.1.3680043.10.1",
				ImplementationVersionName:    "ESPNODE_TEST",
				SourceApplicationEntityTitle: "SENDER",
			}
			if got != wantMeta {
				t.Errorf("meta %+v, want %+v", got, wantMeta)
			}
			rest, _ := io.ReadAll(br)
			if !bytes.Equal(rest, data) {
				t.Errorf("stored data set differs from the one sent (%d vs %d bytes)", len(rest), len(data))
			}
			// OpenDataSet starts where the meta ends, from the index row alone.
			rc, row, err := s.OpenDataSet(ctx, m.MediaStorageSOPInstanceUID)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(ds, data) || row.DataSetOffset != int64(len(raw)-len(data)) {
				t.Errorf("OpenDataSet: %d bytes (%v), offset %d; want the %d bytes sent at %d", len(ds), err, row.DataSetOffset, len(data), len(raw)-len(data))
			}

			// DCMTK reads it with no more complaints than the original.
			ourErr, ourDump := dcmdump(t, file)
			if ourErr != "" && ourErr != srcErr {
				t.Errorf("dcmdump warns about the stored file:\n%s\n(original: %q)", ourErr, srcErr)
			}
			if v := dumpValue(ourDump, dcm.SourceApplicationEntityTitle); v != "SENDER" {
				t.Errorf("dcmdump source AE %q", v)
			}

			// The index row matches what dcmdump sees in the original.
			row, err = s.Get(ctx, m.MediaStorageSOPInstanceUID)
			if err != nil {
				t.Fatal(err)
			}
			if row.ReceivedAt.IsZero() || !row.ReceivedAt.Equal(inst.ReceivedAt) {
				t.Errorf("received %v, Put said %v", row.ReceivedAt, inst.ReceivedAt)
			}
			for _, c := range []struct {
				tag dcm.Tag
				got string
			}{
				{dcm.SOPClassUID, row.SOPClassUID},
				{dcm.StudyInstanceUID, row.StudyInstanceUID},
				{dcm.SeriesInstanceUID, row.SeriesInstanceUID},
				{dcm.PatientID, row.PatientID},
				{dcm.Modality, row.Modality},
				{dcm.StudyDate, row.StudyDate},
				{dcm.AccessionNumber, row.AccessionNumber},
				{dcm.Rows, fmt.Sprint(row.Rows)},
				{dcm.Columns, fmt.Sprint(row.Columns)},
			} {
				if w := dumpValue(srcDump, c.tag); w != c.got {
					t.Errorf("index %s = %q, dcmdump %q", c.tag, c.got, w)
				}
			}
			if w := dumpValue(srcDump, dcm.NumberOfFrames); w != "" && fmt.Sprint(row.NumberOfFrames) != w {
				t.Errorf("index frames %d, dcmdump %q", row.NumberOfFrames, w)
			}
			if row.TransferSyntaxUID != m.TransferSyntaxUID || row.CallingAE != "SENDER" || row.CalledAE != "ESPNODE" ||
				row.RemoteAddr != "127.0.0.1:40000" || row.Path != inst.Path || row.Size != inst.Size {
				t.Errorf("index row %+v", row)
			}
		})
	}

	// Some shared files are the same instance in several transfer
	// syntaxes: the archive holds each SOP instance once, as last put.
	_, _, _, n, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(last) {
		t.Errorf("%d instances indexed, %d distinct SOP store.Instance UIDs put", n, len(last))
	}
	if f := filesUnder(t, filepath.Join(dir, archiveName)); len(f) != len(last) {
		t.Errorf("%d files in the archive, want %d", len(f), len(last))
	}
	patients, studies, series := map[[2]string]bool{}, map[string]bool{}, map[string]bool{}
	for _, in := range stored {
		if last[in.SOPInstanceUID] == "" {
			continue
		}
		patients[[2]string{in.PatientID, in.IssuerOfPatientID}] = true
		studies[in.StudyInstanceUID] = true
		series[in.SeriesInstanceUID] = true
	}
	p, st, se, _, _ := s.Counts(ctx)
	if p != len(patients) || st != len(studies) || se != len(series) {
		t.Errorf("counts %d patients, %d studies, %d series; want %d, %d, %d", p, st, se, len(patients), len(studies), len(series))
	}
	if f := filesUnder(t, filepath.Join(dir, tmpName)); len(f) > 0 {
		t.Errorf("tmp holds %v", f)
	}
}

func TestPutInvalidUIDs(t *testing.T) {
	long := "1." + strings.Repeat("2", 63)
	tests := []struct {
		name  string
		apply func(r *store.PutRequest, a map[dcm.Tag]string)
	}{
		{"path traversal instance", func(r *store.PutRequest, a map[dcm.Tag]string) { r.SOPInstanceUID = "../../etc" }},
		{"leading zero", func(r *store.PutRequest, a map[dcm.Tag]string) { r.SOPInstanceUID = "1.2.03" }},
		{"65 characters", func(r *store.PutRequest, a map[dcm.Tag]string) { r.SOPInstanceUID = long }},
		{"empty instance", func(r *store.PutRequest, a map[dcm.Tag]string) { r.SOPInstanceUID = "" }},
		{"slash", func(r *store.PutRequest, a map[dcm.Tag]string) { r.SOPInstanceUID = "1.2/3" }},
		{"bad class", func(r *store.PutRequest, a map[dcm.Tag]string) { r.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2 " }},
		{"bad transfer syntax", func(r *store.PutRequest, a map[dcm.Tag]string) { r.TransferSyntaxUID = "1.2.840.10008.1.2.01" }},
		{"study path traversal", func(r *store.PutRequest, a map[dcm.Tag]string) { a[dcm.StudyInstanceUID] = "../../etc" }},
		{"series leading zero", func(r *store.PutRequest, a map[dcm.Tag]string) { a[dcm.SeriesInstanceUID] = "1.2.03" }},
		{"series 65 characters", func(r *store.PutRequest, a map[dcm.Tag]string) { a[dcm.SeriesInstanceUID] = long }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openStore(t, dir, "")
			a := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
			req := handRequest(a, 64)
			tt.apply(&req, a)
			req.Data = bytes.NewReader(dataset(a, 64))
			_, err := s.Put(context.Background(), req)
			if !errors.Is(err, store.ErrInvalidUID) {
				t.Fatalf("err = %v, want store.ErrInvalidUID", err)
			}
			assertNoFiles(t, dir)
			if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
				t.Errorf("something was created beside the data directory: %v", entries)
			}
		})
	}
	s, _ := openStore(t, t.TempDir(), "")
	if _, err := s.Get(context.Background(), "../../etc"); !errors.Is(err, store.ErrInvalidUID) {
		t.Errorf("Get: err = %v, want store.ErrInvalidUID", err)
	}
}

func TestPutRejectsBadData(t *testing.T) {
	good := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
	without := func(tag dcm.Tag) map[dcm.Tag]string {
		a := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
		delete(a, tag)
		return a
	}
	with := func(tag dcm.Tag, v string) map[dcm.Tag]string {
		a := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
		a[tag] = v
		return a
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"other instance", dataset(with(dcm.SOPInstanceUID, "1.2.3.4.6"), 64), store.ErrMismatch},
		{"other class", dataset(with(dcm.SOPClassUID, "1.2.840.10008.5.1.4.1.1.7"), 64), store.ErrMismatch},
		{"no SOP instance", dataset(without(dcm.SOPInstanceUID), 64), store.ErrCannotUnderstand},
		{"no study", dataset(without(dcm.StudyInstanceUID), 64), store.ErrCannotUnderstand},
		{"no series", dataset(without(dcm.SeriesInstanceUID), 64), store.ErrCannotUnderstand},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 100), store.ErrCannotUnderstand},
		{"truncated", dataset(good, 64)[:200], store.ErrCannotUnderstand},
		{"empty", nil, store.ErrCannotUnderstand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openStore(t, dir, "")
			req := handRequest(good, 0)
			req.Data = bytes.NewReader(tt.data)
			_, err := s.Put(context.Background(), req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			assertNoFiles(t, dir)
			if _, _, _, n, _ := s.Counts(context.Background()); n != 0 {
				t.Errorf("%d instances indexed", n)
			}
		})
	}
}

var errAborted = errors.New("peer aborted the association")

func TestPutAbortedTransfer(t *testing.T) {
	m, data := sharedInstance(t, testutil.SharedData(t, "dicom", "CT", "cornerstone_CT_evrle.dcm"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context
		data io.Reader
		want error
	}{
		{"reader fails halfway", context.Background(), &failingReader{data[:len(data)/2], errAborted}, errAborted},
		{"context cancelled halfway", ctx, &cancellingReader{r: bytes.NewReader(data), after: len(data) / 2, cancel: cancel}, context.Canceled},
		{"reader ends early", context.Background(), bytes.NewReader(data[:len(data)/2]), store.ErrCannotUnderstand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openStore(t, dir, "")
			_, err := s.Put(tt.ctx, request(m, tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if errors.Is(err, store.ErrOutOfResources) {
				t.Errorf("a peer's failure reported as ours: %v", err)
			}
			assertNoFiles(t, dir)
			if _, err := s.Get(context.Background(), m.MediaStorageSOPInstanceUID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get after a failed Put: %v", err)
			}
		})
	}
}

// cancellingReader cancels a context once after bytes have been read.
type cancellingReader struct {
	r      io.Reader
	after  int
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	p = p[:min(len(p), 4096)]
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestDuplicates(t *testing.T) {
	first := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
	first[dcm.PatientName] = "FIRST^ONE"
	second := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
	second[dcm.PatientName] = "SECOND^TWO"
	tests := []struct {
		policy   string
		wantErr  error
		wantDup  bool
		wantName string
		wantLog  string
	}{
		{"", nil, false, "SECOND^TWO", "duplicate SOP instance overwritten"},
		{store.DuplicatesOverwrite, nil, false, "SECOND^TWO", "duplicate SOP instance overwritten"},
		{store.DuplicatesKeep, nil, true, "FIRST^ONE", "kept the stored one"},
		{store.DuplicatesReject, store.ErrDuplicate, false, "FIRST^ONE", ""},
	}
	for _, tt := range tests {
		t.Run("policy "+tt.policy, func(t *testing.T) {
			dir := t.TempDir()
			s, logs := openStore(t, dir, tt.policy)
			ctx := context.Background()
			if _, err := s.Put(ctx, handRequest(first, 64)); err != nil {
				t.Fatal(err)
			}
			inst, err := s.Put(ctx, handRequest(second, 128))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("second Put: %v, want %v", err, tt.wantErr)
			}
			if inst.Duplicate != tt.wantDup {
				t.Errorf("Duplicate = %v", inst.Duplicate)
			}
			if tt.wantDup && inst.PatientName != "FIRST^ONE" {
				t.Errorf("keep returned %q, want the stored instance", inst.PatientName)
			}
			got, err := s.Get(ctx, "1.2.3.4.5")
			if err != nil {
				t.Fatal(err)
			}
			if got.PatientName != tt.wantName {
				t.Errorf("stored patient name %q, want %q", got.PatientName, tt.wantName)
			}
			// The file agrees with the index.
			rc, _, err := s.Open(ctx, "1.2.3.4.5")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Contains(raw, []byte(tt.wantName)) || int64(len(raw)) != got.Size {
				t.Errorf("file (%d bytes) does not hold %s (index says %d bytes)", len(raw), tt.wantName, got.Size)
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs.String())
			}
			if _, _, _, n, _ := s.Counts(ctx); n != 1 {
				t.Errorf("%d instances", n)
			}
			if f := filesUnder(t, filepath.Join(dir, archiveName)); len(f) != 1 {
				t.Errorf("archive holds %v", f)
			}
			assertEmpty(t, filepath.Join(dir, tmpName))
		})
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if f := filesUnder(t, dir); len(f) > 0 {
		t.Errorf("%s holds %v", dir, f)
	}
}

// TestOverwriteMovesInstance: an instance sent again under another study
// and series moves there; the old file and the emptied rows go.
func TestOverwriteMovesInstance(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, store.DuplicatesOverwrite)
	ctx := context.Background()
	a := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
	if _, err := s.Put(ctx, handRequest(a, 64)); err != nil {
		t.Fatal(err)
	}
	b := instanceAttrs("1.2.9", "1.2.9.4", "1.2.3.4.5")
	b[dcm.PatientID] = "PID2"
	inst, err := s.Put(ctx, handRequest(b, 64))
	if err != nil {
		t.Fatal(err)
	}
	files := filesUnder(t, filepath.Join(dir, archiveName))
	if want := filepath.Join("1.2.9", "1.2.9.4", "1.2.3.4.5.dcm"); len(files) != 1 || files[0] != want {
		t.Errorf("archive holds %v, want [%s]", files, want)
	}
	if inst.Path != "archive/1.2.9/1.2.9.4/1.2.3.4.5.dcm" {
		t.Errorf("path %s", inst.Path)
	}
	p, st, se, n, err := s.Counts(ctx)
	if err != nil || p != 1 || st != 1 || se != 1 || n != 1 {
		t.Errorf("counts %d %d %d %d %v, want 1 of each", p, st, se, n, err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, store.DuplicatesOverwrite)
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			// Five studies of two series each, ten instances per series.
			a := instanceAttrs(fmt.Sprintf("1.2.%d", i%5), fmt.Sprintf("1.2.%d.%d", i%5, i%2), fmt.Sprintf("1.2.3.%d", i+1))
			a[dcm.PatientID] = fmt.Sprintf("P%d", i%5)
			if _, err := s.Put(ctx, handRequest(a, 1000+i)); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			// Everyone also sends the same instance at once.
			a := instanceAttrs("1.2.99", "1.2.99.1", "1.2.99.1.1")
			a[dcm.PatientName] = fmt.Sprintf("N%d", i)
			if _, err := s.Put(ctx, handRequest(a, 64)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	p, st, se, inst, err := s.Counts(ctx)
	if err != nil || p != 6 || st != 6 || se != 11 || inst != n+1 {
		t.Errorf("counts %d patients %d studies %d series %d instances (%v), want 6 6 11 %d", p, st, se, inst, err, n+1)
	}
	if f := filesUnder(t, filepath.Join(dir, archiveName)); len(f) != n+1 {
		t.Errorf("%d files in the archive, want %d", len(f), n+1)
	}
	assertEmpty(t, filepath.Join(dir, tmpName))
	got, err := s.Get(ctx, "1.2.99.1.1")
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(ctx, "1.2.99.1.1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Contains(raw, []byte(got.PatientName)) {
		t.Errorf("the file of the concurrently overwritten instance is not the indexed one (%s)", got.PatientName)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, _ := openStore(t, dir, "")
	a := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
	put, err := s.Put(ctx, handRequest(a, 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := datadir.Open(ctx, datadir.Options{Dir: dir}); err == nil {
		t.Fatal("a second Open of the same directory succeeded while the first is open")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := openStore(t, dir, "")
	got, err := s2.Get(ctx, "1.2.3.4.5")
	if err != nil {
		t.Fatal(err)
	}
	if got != put {
		t.Errorf("after reopen %+v\nwant %+v", got, put)
	}
	if p, st, se, n, err := s2.Counts(ctx); p != 1 || st != 1 || se != 1 || n != 1 || err != nil {
		t.Errorf("counts %d %d %d %d %v", p, st, se, n, err)
	}
	rc, _, err := s2.Open(ctx, "1.2.3.4.5")
	if err != nil {
		t.Fatal(err)
	}
	m, err := dcm.ReadFileMeta(bufio.NewReader(rc))
	rc.Close()
	if err != nil || m.MediaStorageSOPInstanceUID != "1.2.3.4.5" {
		t.Errorf("reopened file meta %+v, %v", m, err)
	}
	if _, err := s2.Get(ctx, "1.2.3.4.6"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of an unknown instance: %v", err)
	}
}

// TestOddDirectoryName: characters that mean something in a URI do not
// confuse where the index goes.
func TestOddDirectoryName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%20d e")
	s, _ := openStore(t, dir, "")
	if _, err := s.Put(context.Background(), handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 64)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, indexName)); err != nil {
		t.Errorf("index not in the data directory: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("files created beside the data directory: %v", entries)
	}
}

func TestOpenCleansTmp(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, "")
	s.Close()
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, tmpName, fmt.Sprintf("put-%d.part", i)), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, logs := openStore(t, dir, "")
	assertEmpty(t, filepath.Join(dir, tmpName))
	if !strings.Contains(logs.String(), `"files":3`) {
		t.Errorf("log does not say 3 files were removed:\n%s", logs.String())
	}
}

func TestOpenOptions(t *testing.T) {
	ctx := context.Background()
	for name, opts := range map[string]datadir.Options{
		"no dir":        {},
		"bad policy":    {Dir: t.TempDir(), Duplicates: "merge"},
		"bad impl UID":  {Dir: t.TempDir(), ImplementationClassUID: "1.02"},
		"long version":  {Dir: t.TempDir(), ImplementationVersionName: strings.Repeat("V", 17)},
		"bad version":   {Dir: t.TempDir(), ImplementationVersionName: "V\n1"},
		"dir is a file": {Dir: filepath.Join(testutil.RepoRoot(t), "go.mod")},
	} {
		if s, err := datadir.Open(ctx, opts); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

// BenchmarkPut stores small instances (a 4 KiB data set) one after another,
// a hundred per series.
func BenchmarkPut(b *testing.B) {
	s, _ := openStore(b, b.TempDir(), "")
	ctx := context.Background()
	b.SetBytes(int64(len(dataset(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 4096))))
	for i := 0; b.Loop(); i++ {
		a := instanceAttrs("1.2.3", fmt.Sprintf("1.2.3.%d", i/100+1), fmt.Sprintf("1.2.3.4.%d", i+1))
		if _, err := s.Put(ctx, handRequest(a, 4096)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPutStreamsLargeData stores a 64 MiB data set and checks that Put's
// allocations stay far below its size: the data set is streamed, never held.
func TestPutStreamsLargeData(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, "")
	const pixels = 64 << 20
	head := dataset(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 0)
	// Pixel data of zeros, produced on the fly.
	pr, pw := io.Pipe()
	go func() {
		w, err := dcm.NewWriter(pw, dcm.ExplicitVRLittleEndian)
		if err == nil {
			err = w.WriteValueFrom(dcm.PixelData, "OW", pixels, io.LimitReader(zeros{}, pixels))
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	data := io.MultiReader(bytes.NewReader(head), pr)
	req := handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 0)
	req.Data = data

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	inst, err := s.Put(context.Background(), req)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Put allocated %d bytes for a %d-byte data set", alloc, pixels)
	}
	fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(inst.Path)))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != inst.Size || inst.Size < pixels {
		t.Errorf("file %d bytes, index says %d", fi.Size(), inst.Size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkPutParallel stores small instances from several goroutines at
// once, as concurrent associations do.
func BenchmarkPutParallel(b *testing.B) {
	s, _ := openStore(b, b.TempDir(), "")
	ctx := context.Background()
	b.SetBytes(int64(len(dataset(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 4096))))
	var next atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			a := instanceAttrs("1.2.3", fmt.Sprintf("1.2.3.%d", i/100+1), fmt.Sprintf("1.2.3.4.%d", i))
			if _, err := s.Put(ctx, handRequest(a, 4096)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestRemove: a removed instance leaves neither its row nor its file; removing it again, or an
// instance never stored, is ErrNotFound.
func TestRemove(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := openStore(t, dir, "")
	inst, err := s.Put(ctx, handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.6"), 64)); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, inst.SOPInstanceUID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(inst.Path))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file of the removed instance: %v", err)
	}
	if _, err := s.Get(ctx, inst.SOPInstanceUID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("row of the removed instance: %v", err)
	}
	// What a segmentation of it reads tells "not there" (no retry) by fs.ErrNotExist alone.
	if _, _, err := s.Open(ctx, inst.SOPInstanceUID); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of the removed instance: %v, want ErrNotFound, which is an fs.ErrNotExist", err)
	}
	if _, _, _, n, _ := s.Counts(ctx); n != 1 {
		t.Errorf("%d instances left, want 1", n)
	}
	for _, uid := range []string{inst.SOPInstanceUID, "1.2.3.9"} {
		if err := s.Remove(ctx, uid); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Remove(%s): %v, want ErrNotFound", uid, err)
		}
	}
	if err := s.Remove(ctx, "../x"); !errors.Is(err, store.ErrInvalidUID) {
		t.Errorf("Remove of an invalid UID: %v", err)
	}
}

// TestDescribe: Describe reads the attributes Put indexes, so that routing outside the node
// sees what the node sees.
func TestDescribe(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, t.TempDir(), "")
	path := testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD092.dcm")
	m, data := sharedInstance(t, path)
	got, err := store.Describe(bytes.NewReader(data), m.TransferSyntaxUID)
	if err != nil {
		t.Fatal(err)
	}
	put, err := s.Put(ctx, request(m, bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	put.Path, put.Size, put.DataSetOffset, put.ReceivedAt, put.CallingAE, put.CalledAE, put.RemoteAddr = "", 0, 0, time.Time{}, "", "", ""
	if got != put {
		t.Errorf("Describe %+v\nPut     %+v", got, put)
	}
	if _, err := store.Describe(bytes.NewReader([]byte{1, 2, 3}), m.TransferSyntaxUID); !errors.Is(err, store.ErrCannotUnderstand) {
		t.Errorf("Describe of garbage: %v", err)
	}
}
