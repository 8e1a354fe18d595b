package s3archive_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/s3archive"
	"github.com/espnode/espnode/store/s3archive/s3test"
	"github.com/espnode/espnode/store/sqlite"
)

const ctImage = "1.2.840.10008.5.1.4.1.1.2"

// instance returns a minimal CT data set (explicit VR little endian) with pixelBytes of pixel
// data that differ from byte to byte.
func instance(t testing.TB, study, series, sop string, pixelBytes int) []byte {
	t.Helper()
	ds := &dcm.DataSet{}
	for tag, v := range map[dcm.Tag]string{
		dcm.SOPClassUID: ctImage, dcm.SOPInstanceUID: sop, dcm.StudyInstanceUID: study,
		dcm.SeriesInstanceUID: series, dcm.PatientID: "PID1", dcm.PatientName: "Doe^Jane", dcm.Modality: "CT",
	} {
		ds.Set(dcm.StrElement(tag, v))
	}
	ds.Set(dcm.NewUS(dcm.Rows, 8))
	ds.Set(dcm.NewUS(dcm.Columns, 8))
	px := make([]byte, pixelBytes)
	for i := range px {
		px[i] = byte(i * 7 / 5)
	}
	ds.Set(dcm.NewBytes(dcm.PixelData, "OW", px))
	b, err := dcm.Encode(ds, dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func request(sop string, data []byte) store.PutRequest {
	return store.PutRequest{
		SOPClassUID: ctImage, SOPInstanceUID: sop, TransferSyntaxUID: dcm.ExplicitVRLittleEndian,
		CallingAE: "SENDER", CalledAE: "ESPNODE", Data: bytes.NewReader(data),
	}
}

// openStore opens a Store on the server's bucket under prefix and a SQLite index.
func openStore(t testing.TB, srv *s3test.Server, prefix string, partSize int64) *store.Store {
	t.Helper()
	ctx := context.Background()
	a, err := s3archive.Open(ctx, s3archive.Config{Bucket: srv.Bucket, Prefix: prefix, Endpoint: srv.Endpoint,
		Region: srv.Region, AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey, PathStyle: true, PartSize: partSize}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	s, err := store.New(store.Options{Archive: a, Index: idx, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStore: the Store over the S3 archive puts a small and a multipart instance, reads them
// back whole and from inside their data sets, moves an instance to another series (the old
// object goes), and removes; the bucket holds exactly the objects the index points at.
func TestStore(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	s := openStore(t, srv, "node", s3archive.MinPartSize)
	want := map[string]int64{}
	sent := map[string][]byte{}
	for i, px := range []int{4 << 10, 12 << 20} {
		sop := fmt.Sprintf("1.2.3.4.%d", i+1)
		data := instance(t, "1.2.3", "1.2.3.4", sop, px)
		inst, err := s.Put(ctx, request(sop, data))
		if err != nil {
			t.Fatal(err)
		}
		want["node/"+inst.Path] = inst.Size
		sent[sop] = data
	}
	for sop, data := range sent {
		rc, inst, err := s.Open(ctx, sop)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(rc)
		if _, err := dcm.ReadFileMeta(br); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(br)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: the data set read back differs (%d of %d bytes, %v)", sop, len(got), len(data), err)
		}
		rc, _, err = s.OpenDataSetAt(ctx, sop, int64(len(data)-100))
		if err != nil {
			t.Fatal(err)
		}
		tail, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(tail, data[len(data)-100:]) {
			t.Errorf("%s: the last 100 bytes read from their offset differ", sop)
		}
		if inst.Size <= int64(len(data)) {
			t.Errorf("%s: size %d, no room for the meta", sop, inst.Size)
		}
	}
	keys, err := srv.Keys(ctx, "node/")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(keys, want) {
		t.Errorf("bucket holds %v, want %v", keys, want)
	}
	// The Store named the key before the pixel data: the large object is the multipart upload
	// itself (its ETag counts the parts), not a copy of a staging object.
	for key, size := range keys {
		head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		if multipart := strings.Contains(aws.ToString(head.ETag), "-"); multipart != (size > s3archive.MinPartSize) {
			t.Errorf("%s (%d bytes): ETag %s", key, size, aws.ToString(head.ETag))
		}
	}

	// The instance moves to another series: its old object goes.
	inst, err := s.Put(ctx, request("1.2.3.4.2", instance(t, "1.2.3", "1.2.3.5", "1.2.3.4.2", 6<<20)))
	if err != nil {
		t.Fatal(err)
	}
	delete(want, "node/archive/1.2.3/1.2.3.4/1.2.3.4.2.dcm")
	want["node/"+inst.Path] = inst.Size
	if keys, _ := srv.Keys(ctx, "node/"); !maps.Equal(keys, want) {
		t.Errorf("after the move the bucket holds %v, want %v", keys, want)
	}
	for _, sop := range []string{"1.2.3.4.1", "1.2.3.4.2"} {
		if err := s.Remove(ctx, sop); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Open(ctx, sop); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after Remove: %v", sop, err)
		}
	}
	if keys, _ := srv.Keys(ctx, "node/"); len(keys) != 0 {
		t.Errorf("after removing everything the bucket holds %v", keys)
	}
}

// TestStoreArchiveDown: with the object store down, Put fails with ErrOutOfResources and indexes
// nothing.
func TestStoreArchiveDown(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	s := openStore(t, srv, "", 0)
	srv.Stop(t)
	_, err := s.Put(ctx, request("1.2.3.4.1", instance(t, "1.2.3", "1.2.3.4", "1.2.3.4.1", 1024)))
	if !errors.Is(err, store.ErrOutOfResources) {
		t.Fatalf("Put with the object store down: %v, want ErrOutOfResources", err)
	}
	if _, err := s.Get(ctx, "1.2.3.4.1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("indexed although the object was not stored: %v", err)
	}
}
