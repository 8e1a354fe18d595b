package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
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

func sampleIndex() []store.Instance {
	mk := func(pid, name, study, date, series, modality, sop string, number int) store.Instance {
		return store.Instance{PatientID: pid, PatientName: name, StudyInstanceUID: study, StudyDate: date, SeriesInstanceUID: series,
			Modality: modality, SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", InstanceNumber: number}
	}
	return []store.Instance{
		mk("P1", "Doe^John", "1.1", "20200115", "1.1.1", "CT", "1.1.1.1", 1),
		mk("P1", "Doe^John", "1.1", "20200115", "1.1.1", "CT", "1.1.1.2", 2),
		mk("P1", "Doe^John", "1.1", "20200115", "1.1.2", "SEG", "1.1.2.1", 1),
		mk("P1", "Doe^John", "1.2", "20210301", "1.2.1", "MR", "1.2.1.1", 1),
		mk("P2", "[Bracket]^Anne", "2.1", "", "2.1.1", "US", "2.1.1.1", 1),
		mk("P3", "DOE^JANE", "3.1", "20191231", "3.1.1", "CT", "3.1.1.1", 7),
	}
}

func TestFind(t *testing.T) {
	s := openEngine(t, t.TempDir())
	indexInstances(t, s, sampleIndex())
	tests := []struct {
		name    string
		q       store.Query
		want    []string // the level's UIDs (patient IDs at PATIENT level), in result order
		related []int    // optional: RelatedInstances (or RelatedStudies at PATIENT level)
	}{
		{"all studies, by date", store.Query{Level: store.StudyLevel}, []string{"2.1", "3.1", "1.1", "1.2"}, []int{1, 1, 3, 1}},
		{"PN wildcard, case-insensitive", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.PatientName, Pattern: "doe^*"}}}, []string{"3.1", "1.1", "1.2"}, []int{1, 3, 1}},
		{"PN single value, case-insensitive", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientName, Values: []string{"doe^jane"}}}}, []string{"P3"}, []int{1}},
		{"? matches one character", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientID, Pattern: "P?"}}}, []string{"P1", "P2", "P3"}, []int{2, 1, 1}},
		{"[ is literal", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientName, Pattern: "[B*"}}}, []string{"P2"}, nil},
		{"date range closed", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.StudyDate, Range: true, Lo: "20200101", Hi: "20201231"}}}, []string{"1.1"}, nil},
		{"date range open below, empty dates excluded", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.StudyDate, Range: true, Hi: "20200115"}}}, []string{"3.1", "1.1"}, nil},
		{"UID list", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{"1.2", "2.1", "9.9"}}}}, []string{"2.1", "1.2"}, nil},
		{"ModalitiesInStudy", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.ModalitiesInStudy, Values: []string{"SEG"}}}}, []string{"1.1"}, nil},
		{"series of a study", store.Query{Level: store.SeriesLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{"1.1"}}}}, []string{"1.1.1", "1.1.2"}, []int{2, 1}},
		{"images by number", store.Query{Level: store.ImageLevel, Matches: []store.Match{{Tag: dcm.InstanceNumber, Values: []string{"7"}}}}, []string{"3.1.1.1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var related []int
			err := s.Find(context.Background(), tt.q, func(r store.Record) error {
				switch tt.q.Level {
				case store.PatientLevel:
					got, related = append(got, r.PatientID), append(related, r.RelatedStudies)
				case store.StudyLevel:
					got, related = append(got, r.StudyInstanceUID), append(related, r.RelatedInstances)
				case store.SeriesLevel:
					got, related = append(got, r.SeriesInstanceUID), append(related, r.RelatedInstances)
				default:
					got = append(got, r.SOPInstanceUID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if tt.related != nil && !slices.Equal(related, tt.related) {
				t.Fatalf("related counts %v, want %v", related, tt.related)
			}
		})
	}
	// Keys below the query level cannot match.
	err := s.Find(context.Background(), store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.Modality, Values: []string{"CT"}}}}, func(store.Record) error { return nil })
	if err == nil {
		t.Fatal("a series key matched at study level")
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
