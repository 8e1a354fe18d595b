package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/postgres/pgtest"
	"github.com/espnode/espnode/store/s3archive"
	"github.com/espnode/espnode/store/s3archive/s3test"
)

// dataset is a small CT instance without file meta, in Explicit VR Little Endian.
func dataset(t *testing.T, sop string) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := dcm.NewWriter(&b, dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		tag dcm.Tag
		vr  string
		v   string
	}{
		{dcm.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.2"},
		{dcm.SOPInstanceUID, "UI", sop},
		{dcm.Modality, "CS", "CT"},
		{dcm.PatientID, "LO", "P1"},
		{dcm.StudyInstanceUID, "UI", "1.2.3"},
		{dcm.SeriesInstanceUID, "UI", "1.2.3.4"},
	} {
		v := []byte(e.v)
		if len(v)%2 == 1 {
			v = append(v, map[bool]byte{true: 0, false: ' '}[e.vr == "UI"])
		}
		if err := w.WriteElement(&dcm.Element{Tag: e.tag, VR: e.vr, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestOpenEngines: each pair of engines opens under a locked data directory and stores through
// the Store; an unknown engine is refused, and the errors never repeat a URL's password.
func TestOpenEngines(t *testing.T) {
	pg := pgtest.Start(t)
	s3 := s3test.Start(t)
	s3cfg := s3archive.Config{Endpoint: s3.Endpoint, Region: s3.Region, AccessKeyID: s3.AccessKeyID,
		SecretAccessKey: s3.SecretAccessKey, PathStyle: true}
	ctx := context.Background()
	for _, tt := range []struct{ name, index, archive string }{
		{"default", "", ""},
		{"sqlite+file", IndexSQLite, ArchiveFile},
		{"postgres+file", pg.NewDatabase(t), ArchiveFile},
		{"sqlite+s3", IndexSQLite, "s3://" + s3.Bucket + "/one"},
		{"postgres+s3", pg.NewDatabase(t), "s3://" + s3.Bucket + "/two"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Dir: t.TempDir(), Index: tt.index, Archive: tt.archive, S3: s3cfg, Logger: zerolog.Nop()}
			st, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := Open(ctx, opts); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Errorf("a second store on the same data directory: %v, want it refused", err)
			}
			sop := "1.2.3.4.5"
			_, err = st.Put(ctx, store.PutRequest{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: sop,
				TransferSyntaxUID: dcm.ExplicitVRLittleEndian, Data: bytes.NewReader(dataset(t, sop))})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, sop); err != nil {
				t.Error(err)
			}
			if _, ok := st.Queue(); !ok {
				t.Error("no queue on the index")
			}
			if prefix, ok := strings.CutPrefix(tt.archive, "s3://"+s3.Bucket+"/"); ok {
				keys, err := s3.Keys(ctx, prefix+"/")
				if err != nil || len(keys) != 1 || keys[prefix+"/archive/1.2.3/1.2.3.4/"+sop+".dcm"] == 0 {
					t.Errorf("objects in the bucket: %v (%v)", keys, err)
				}
			}
		})
	}
	for _, tt := range []struct{ index, archive, want string }{
		{"mysql://u:pw-123@h/db", "", "index"},
		{"postgres://u:pw-123@127.0.0.1:1/db?connect_timeout=1", "", "index"},
		{"", "ftp://x", "archive"},
	} {
		_, err := Open(ctx, Options{Dir: t.TempDir(), Index: tt.index, Archive: tt.archive})
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "pw-123") {
			t.Errorf("index %q, archive %q: %v", tt.index, tt.archive, err)
		}
	}
}

// TestSameInstanceAtTwoNodes: two nodes (two stores on one PostgreSQL database and one bucket)
// receive two different copies of one SOP instance at the same moment, twenty times over. The
// copies go to the same object key, so the row left must be the row of the object left; under
// the keep policy, both nodes must answer with the one copy kept.
func TestSameInstanceAtTwoNodes(t *testing.T) {
	pg := pgtest.Start(t)
	s3 := s3test.Start(t)
	ctx := context.Background()
	s3cfg := s3archive.Config{Endpoint: s3.Endpoint, Region: s3.Region, AccessKeyID: s3.AccessKeyID,
		SecretAccessKey: s3.SecretAccessKey, PathStyle: true}
	for _, policy := range []string{store.DuplicatesOverwrite, store.DuplicatesKeep} {
		t.Run(policy, func(t *testing.T) {
			index := pg.NewDatabase(t)
			var nodes [2]*store.Store
			for i := range nodes {
				st, err := Open(ctx, Options{Dir: t.TempDir(), Index: index, Archive: "s3://" + s3.Bucket + "/" + policy,
					S3: s3cfg, Duplicates: policy, Logger: zerolog.Nop()})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				nodes[i] = st
			}
			for round := range 20 {
				sop := fmt.Sprintf("1.2.3.4.%d", round+1)
				// Two copies that differ in size: a row's size tells which copy it describes.
				copies := [2][]byte{dataset(t, sop), append(dataset(t, sop), privateTag(t)...)}
				var wg sync.WaitGroup
				var answers [2]store.Instance
				var errs [2]error
				for i, st := range nodes {
					wg.Go(func() {
						answers[i], errs[i] = st.Put(ctx, store.PutRequest{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: sop,
							TransferSyntaxUID: dcm.ExplicitVRLittleEndian, Data: bytes.NewReader(copies[i])})
					})
				}
				wg.Wait()
				if err := errors.Join(errs[:]...); err != nil {
					t.Fatal(err)
				}
				if policy == store.DuplicatesKeep && answers[0].Size != answers[1].Size {
					t.Fatalf("round %d: the nodes answered with copies of %d and %d bytes: both kept their own", round, answers[0].Size, answers[1].Size)
				}
				for i, st := range nodes {
					rc, row, err := st.Open(ctx, sop)
					if err != nil {
						t.Fatal(err)
					}
					n, err := io.Copy(io.Discard, rc)
					rc.Close()
					if err != nil {
						t.Fatal(err)
					}
					if n != row.Size {
						t.Fatalf("round %d, node %d: the row says %d bytes, its object has %d: the row of one copy beside the object of the other", round, i+1, row.Size, n)
					}
				}
			}
		})
	}
}

// privateTag is one private element, to make a copy of dataset's instance longer.
func privateTag(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := dcm.NewWriter(&b, dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*dcm.Element{
		{Tag: dcm.NewTag(0x0099, 0x0010), VR: "LO", Value: []byte("ESPNODE TEST")},
		{Tag: dcm.NewTag(0x0099, 0x1000), VR: "OB", Value: make([]byte, 4096)},
	} {
		if err := w.WriteElement(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
