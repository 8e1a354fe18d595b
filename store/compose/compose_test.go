package compose

import (
	"bytes"
	"context"
	"strings"
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
