package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// openEngine opens an index in dir, closed at the end of the test.
func openEngine(t testing.TB, dir string) *Engine {
	t.Helper()
	x, err := Open(context.Background(), filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// indexInstances writes index rows directly (no files): queries only read the index.
func indexInstances(t testing.TB, x *Engine, instances []store.Instance) {
	t.Helper()
	// Durability is not under test here; one commit per row would make 100,000 rows take minutes.
	if _, err := x.w.Exec("PRAGMA synchronous=OFF"); err != nil {
		t.Fatal(err)
	}
	defer x.w.Exec("PRAGMA synchronous=FULL")
	for _, in := range instances {
		in.Path, in.ReceivedAt, in.TransferSyntaxUID = "x", time.Now(), dcm.ExplicitVRLittleEndian
		if _, err := x.Put(context.Background(), in, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkFindStudy measures a study-level query (patient name wildcard and a date range, with
// the related counts and modalities) over an index of 100,000 instances: 1,000 patients, each
// with one study of two series of 50 instances.
func BenchmarkFindStudy(b *testing.B) {
	s := openEngine(b, b.TempDir())
	var all []store.Instance
	for p := 0; p < 1000; p++ {
		for se := 0; se < 2; se++ {
			for i := 0; i < 50; i++ {
				all = append(all, store.Instance{PatientID: fmt.Sprintf("P%04d", p), PatientName: fmt.Sprintf("NAME%04d^TEST", p),
					StudyInstanceUID: fmt.Sprintf("1.%d", p), StudyDate: fmt.Sprintf("2020%02d%02d", 1+p%12, 1+p%28),
					SeriesInstanceUID: fmt.Sprintf("1.%d.%d", p, se), Modality: []string{"CT", "SEG"}[se],
					SOPInstanceUID: fmt.Sprintf("1.%d.%d.%d", p, se, i), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: i + 1})
			}
		}
	}
	indexInstances(b, s, all)
	q := store.Query{Level: store.StudyLevel, Matches: []store.Match{
		{Tag: dcm.PatientName, Pattern: "NAME01*"},
		{Tag: dcm.StudyDate, Range: true, Lo: "20200301", Hi: "20200630"},
	}}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n = 0
		if err := s.Find(context.Background(), q, func(r store.Record) error {
			if r.RelatedInstances != 100 || len(r.ModalitiesInStudy) != 2 {
				return fmt.Errorf("record %+v", r)
			}
			n++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "matches")
}
