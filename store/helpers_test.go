package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// The data directory's layout (datadir, fsarchive).
const (
	tmpName     = "tmp"
	archiveName = store.ObjectsDir
	indexName   = datadir.IndexFile
)

// logBuffer is a concurrency-safe log sink tests can read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openStore(t testing.TB, dir, duplicates string) (*store.Store, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	s, err := datadir.Open(context.Background(), datadir.Options{
		Dir:                       dir,
		Duplicates:                duplicates,
		Logger:                    zerolog.New(logs),
		ImplementationClassUID:    "1.2.826.0.1.3680043.10.1",
		ImplementationVersionName: "ESPNODE_TEST",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// sharedInstance returns a shared file's meta and data set bytes.
func sharedInstance(t testing.TB, path string) (dcm.FileMeta, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	m, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return m, data
}

func sharedFiles(t testing.TB) []string {
	t.Helper()
	root := testutil.SharedData(t, "dicom")
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".dcm") && !strings.Contains(p, "nometa") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("only %d shared DICOM files", len(files))
	}
	return files
}

func request(m dcm.FileMeta, data io.Reader) store.PutRequest {
	return store.PutRequest{
		SOPClassUID:       m.MediaStorageSOPClassUID,
		SOPInstanceUID:    m.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: m.TransferSyntaxUID,
		CallingAE:         "SENDER",
		CalledAE:          "ESPNODE",
		RemoteAddr:        "127.0.0.1:40000",
		Data:              data,
	}
}

// dataset builds an explicit VR little endian data set from string values (VRs from dcm's
// dictionary) plus pixel data of pixelBytes bytes.
func dataset(attrs map[dcm.Tag]string, pixelBytes int) []byte {
	ds := &dcm.DataSet{}
	for t, v := range attrs {
		ds.Set(dcm.StrElement(t, v))
	}
	ds.Set(dcm.NewUS(dcm.Rows, 8))
	ds.Set(dcm.NewUS(dcm.Columns, 8))
	if pixelBytes > 0 {
		ds.Set(dcm.NewBytes(dcm.PixelData, "OW", make([]byte, pixelBytes)))
	}
	b, err := dcm.Encode(ds, dcm.ExplicitVRLittleEndian)
	if err != nil {
		panic(err) // the attributes the tests give always encode
	}
	return b
}

const ctImage = "1.2.840.10008.5.1.4.1.1.2"

// instanceAttrs returns the attributes of a minimal instance.
func instanceAttrs(study, series, sop string) map[dcm.Tag]string {
	return map[dcm.Tag]string{
		dcm.SOPClassUID: ctImage, dcm.SOPInstanceUID: sop, dcm.StudyInstanceUID: study,
		dcm.SeriesInstanceUID: series, dcm.PatientID: "PID1", dcm.PatientName: "Doe^Jane", dcm.Modality: "CT",
	}
}

func handRequest(attrs map[dcm.Tag]string, pixelBytes int) store.PutRequest {
	return store.PutRequest{
		SOPClassUID:       attrs[dcm.SOPClassUID],
		SOPInstanceUID:    attrs[dcm.SOPInstanceUID],
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian,
		CallingAE:         "SENDER",
		CalledAE:          "ESPNODE",
		Data:              bytes.NewReader(dataset(attrs, pixelBytes)),
	}
}

// filesUnder lists the regular files below dir, relative to it.
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// assertNoFiles checks that neither tmp nor archive holds a file.
func assertNoFiles(t testing.TB, dir string) {
	t.Helper()
	for _, sub := range []string{tmpName, archiveName} {
		if f := filesUnder(t, filepath.Join(dir, sub)); len(f) > 0 {
			t.Errorf("%s holds %v", sub, f)
		}
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}
