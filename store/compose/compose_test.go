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

// TestOpenEngines: each index engine opens under a locked data directory and stores through
// the Store; an unknown engine is refused, and the errors never repeat a URL's password.
func TestOpenEngines(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	for _, index := range []string{"", IndexSQLite, pg.NewDatabase(t)} {
		t.Run(strings.SplitN(index, ":", 2)[0], func(t *testing.T) {
			opts := Options{Dir: t.TempDir(), Index: index, Logger: zerolog.Nop()}
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
