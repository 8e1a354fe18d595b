// Package indextest is the contract of the index and queue seams (store.Index, store.Queue,
// store.Tx) as tests: every engine runs Run against itself (store/sqlite, store/postgres), so
// that what docs/DESIGN.md ("Seams") promises is checked on each, the same way.
package indextest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// Engine is an index with the job queue on its database.
type Engine interface {
	store.Index
	store.Queue
}

// Open makes a new, empty engine for one test; it is closed in t.Cleanup.
type Open func(t *testing.T) Engine

// Run runs every contract test on engines made by open.
func Run(t *testing.T, open Open) {
	for _, tt := range []struct {
		name string
		test func(*testing.T, Open)
	}{
		{"PutGetReplaced", testPutGetReplaced},
		{"KeepsAttributes", testKeepsAttributes},
		{"Remove", testRemove},
		{"MovedInstance", testMovedInstance},
		{"Find", testFind},
		{"UTF8", testUTF8},
		{"InTxEnqueue", testInTxEnqueue},
		{"InTxComplete", testInTxComplete},
		{"SeriesInstances", testSeriesInstances},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, open) })
	}
}

// Instance is a small instance row of a study, series and SOP instance.
func Instance(study, series, sop string) store.Instance {
	return store.Instance{PatientID: "P1", StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop,
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", TransferSyntaxUID: dcm.ExplicitVRLittleEndian, Path: "archive/" + sop + ".dcm",
		Size: 10, DataSetOffset: 4, ReceivedAt: time.Now().UTC().Truncate(time.Microsecond)}
}

func put(t *testing.T, x Engine, in store.Instance) store.Replaced {
	t.Helper()
	r, err := x.Put(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func counts(t *testing.T, x Engine) store.Counts {
	t.Helper()
	c, err := x.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testPutGetReplaced: Get returns what Put wrote; a second Put of the UID replaces the row and
// says what the first was.
func testPutGetReplaced(t *testing.T, open Open) {
	ctx := context.Background()
	x := open(t)
	in := Instance("1.1", "1.1.1", "1.1.1.1")
	in.PatientName, in.Modality, in.InstanceNumber, in.Rows, in.Columns, in.NumberOfFrames = "Doe^John", "CT", 3, 512, 256, 2
	in.SeriesNumber, in.CallingAE, in.CalledAE, in.RemoteAddr = 4, "SCU", "ESPNODE", "127.0.0.1:1234"
	if r := put(t, x, in); r.Found {
		t.Errorf("a new instance replaced %+v", r)
	}
	got, err := x.Get(ctx, in.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ReceivedAt.Equal(in.ReceivedAt) {
		t.Errorf("received %v, want %v", got.ReceivedAt, in.ReceivedAt)
	}
	got.ReceivedAt = in.ReceivedAt
	if got != in {
		t.Errorf("Get:\n got %+v\nwant %+v", got, in)
	}
	second := in
	second.Path, second.Size, second.ReceivedAt = "archive/other.dcm", 20, in.ReceivedAt.Add(time.Second)
	r := put(t, x, second)
	if !r.Found || r.Path != in.Path || !r.ReceivedAt.Equal(in.ReceivedAt) {
		t.Errorf("replaced %+v, want the first row (%s, %v)", r, in.Path, in.ReceivedAt)
	}
	if got, err := x.Get(ctx, in.SOPInstanceUID); err != nil || got.Path != second.Path || got.Size != 20 {
		t.Errorf("after the second Put: %+v (%v)", got, err)
	}
	if c := counts(t, x); c != (store.Counts{Patients: 1, Studies: 1, Series: 1, Instances: 1}) {
		t.Errorf("counts %+v, want one of each", c)
	}
	if _, err := x.Get(ctx, "9.9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown instance: %v, want ErrNotFound", err)
	}
}

// testKeepsAttributes: a later instance's empty value keeps the stored one; a value it brings
// replaces it.
func testKeepsAttributes(t *testing.T, open Open) {
	ctx := context.Background()
	x := open(t)
	a := Instance("1.1", "1.1.1", "1.1.1.1")
	a.PatientName, a.StudyDescription, a.SeriesDescription, a.SeriesNumber = "Doe^John", "Chest", "Axial", 2
	put(t, x, a)
	b := Instance("1.1", "1.1.1", "1.1.1.2")
	b.StudyDescription = "Chest CT"
	put(t, x, b)
	got, err := x.Get(ctx, "1.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if got.PatientName != "Doe^John" || got.StudyDescription != "Chest CT" || got.SeriesDescription != "Axial" || got.SeriesNumber != 2 {
		t.Errorf("after an instance with fewer attributes: name %q, study %q, series %q %d", got.PatientName, got.StudyDescription,
			got.SeriesDescription, got.SeriesNumber)
	}
}

// testRemove: removing an instance removes its row, and its series, study and patient once they
// are empty; an unknown instance is ErrNotFound.
func testRemove(t *testing.T, open Open) {
	ctx := context.Background()
	x := open(t)
	for _, in := range []store.Instance{Instance("1.1", "1.1.1", "1.1.1.1"), Instance("1.1", "1.1.1", "1.1.1.2"), Instance("1.1", "1.1.2", "1.1.2.1")} {
		put(t, x, in)
	}
	for _, tt := range []struct {
		uid  string
		want store.Counts
	}{
		{"1.1.1.1", store.Counts{Patients: 1, Studies: 1, Series: 2, Instances: 2}},
		{"1.1.1.2", store.Counts{Patients: 1, Studies: 1, Series: 1, Instances: 1}},
		{"1.1.2.1", store.Counts{}},
	} {
		if err := x.Remove(ctx, tt.uid); err != nil {
			t.Fatal(err)
		}
		if c := counts(t, x); c != tt.want {
			t.Errorf("after removing %s: %+v, want %+v", tt.uid, c, tt.want)
		}
		if _, err := x.Get(ctx, tt.uid); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still found: %v", tt.uid, err)
		}
	}
	if err := x.Remove(ctx, "1.1.1.1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removing an unknown instance: %v", err)
	}
}

// testMovedInstance: an instance sent again in another series and study of another patient
// leaves the emptied series, study and patient behind no more.
func testMovedInstance(t *testing.T, open Open) {
	x := open(t)
	put(t, x, Instance("1.1", "1.1.1", "1.1.1.1"))
	moved := Instance("2.1", "2.1.1", "1.1.1.1")
	moved.PatientID = "P2"
	if r := put(t, x, moved); !r.Found {
		t.Error("the moved instance's first row was not reported")
	}
	if c := counts(t, x); c != (store.Counts{Patients: 1, Studies: 1, Series: 1, Instances: 1}) {
		t.Errorf("counts %+v, want only the new patient, study and series", c)
	}
}

func sampleIndex() []store.Instance {
	mk := func(pid, name, study, date, series, modality, sop string, number int) store.Instance {
		in := Instance(study, series, sop)
		in.PatientID, in.PatientName, in.StudyDate, in.Modality, in.InstanceNumber = pid, name, date, modality, number
		return in
	}
	return []store.Instance{
		mk("P1", "Doe^John", "1.1", "20200115", "1.1.1", "CT", "1.1.1.1", 1),
		mk("P1", "Doe^John", "1.1", "20200115", "1.1.1", "CT", "1.1.1.2", 2),
		mk("P1", "Doe^John", "1.1", "20200115", "1.1.2", "SEG", "1.1.2.1", 1),
		mk("P1", "Doe^John", "1.2", "20210301", "1.2.1", "MR", "1.2.1.1", 1),
		mk("P2", "[Bracket]^Anne", "2.1", "", "2.1.1", "US", "2.1.1.1", 1),
		mk("P3", "DOE^JANE", "3.1", "20191231", "3.1.1", "CT", "3.1.1.1", 7),
		mk("P4", "100%_Sure", "4.1", "20220101", "4.1.1", "OT", "4.1.1.1", 1),
	}
}

// testFind: matching (wildcards, ranges, lists, person names without case), the order of the
// results and the related counts are the same on every engine.
func testFind(t *testing.T, open Open) {
	x := open(t)
	for _, in := range sampleIndex() {
		put(t, x, in)
	}
	tests := []struct {
		name    string
		q       store.Query
		want    []string // the level's UIDs (patient IDs at PATIENT level), in result order
		related []int    // optional: RelatedInstances (or RelatedStudies at PATIENT level)
	}{
		{"all studies, by date", store.Query{Level: store.StudyLevel}, []string{"2.1", "3.1", "1.1", "1.2", "4.1"}, []int{1, 1, 3, 1, 1}},
		{"PN wildcard, case-insensitive", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.PatientName, Pattern: "doe^*"}}}, []string{"3.1", "1.1", "1.2"}, []int{1, 3, 1}},
		{"PN single value, case-insensitive", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientName, Values: []string{"doe^jane"}}}}, []string{"P3"}, []int{1}},
		{"? matches one character", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientID, Pattern: "P?"}}}, []string{"P1", "P2", "P3", "P4"}, []int{2, 1, 1, 1}},
		{"[ is literal", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientName, Pattern: "[B*"}}}, []string{"P2"}, nil},
		{"% and _ are literal", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientName, Pattern: "1?0%_*"}}}, []string{"P4"}, nil},
		{"% does not match any string", store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientName, Pattern: "%*"}}}, nil, nil},
		{"date range closed", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.StudyDate, Range: true, Lo: "20200101", Hi: "20201231"}}}, []string{"1.1"}, nil},
		{"date range open below, empty dates excluded", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.StudyDate, Range: true, Hi: "20200115"}}}, []string{"3.1", "1.1"}, nil},
		{"UID list", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{"1.2", "2.1", "9.9"}}}}, []string{"2.1", "1.2"}, nil},
		{"ModalitiesInStudy", store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.ModalitiesInStudy, Values: []string{"SEG"}}}}, []string{"1.1"}, nil},
		{"series of a study", store.Query{Level: store.SeriesLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{"1.1"}}}}, []string{"1.1.1", "1.1.2"}, []int{2, 1}},
		{"images by number", store.Query{Level: store.ImageLevel, Matches: []store.Match{{Tag: dcm.InstanceNumber, Values: []string{"7"}}}}, []string{"3.1.1.1"}, nil},
		{"images of a series in number order", store.Query{Level: store.ImageLevel, Matches: []store.Match{{Tag: dcm.SeriesInstanceUID, Values: []string{"1.1.1"}}}}, []string{"1.1.1.1", "1.1.1.2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var related []int
			err := x.Find(context.Background(), tt.q, func(r store.Record) error {
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
	t.Run("study lists", func(t *testing.T) {
		var mods []string
		err := x.Find(context.Background(), store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{"1.1"}}}},
			func(r store.Record) error {
				mods = append(mods, r.ModalitiesInStudy...)
				if !slices.Equal(r.SOPClassesInStudy, []string{"1.2.840.10008.5.1.4.1.1.7"}) {
					t.Errorf("SOP classes %v", r.SOPClassesInStudy)
				}
				return nil
			})
		slices.Sort(mods)
		if err != nil || !slices.Equal(mods, []string{"CT", "SEG"}) {
			t.Errorf("modalities %v (%v), want CT and SEG", mods, err)
		}
	})
	t.Run("fn's error stops", func(t *testing.T) {
		stop := errors.New("enough")
		n := 0
		err := x.Find(context.Background(), store.Query{Level: store.ImageLevel}, func(store.Record) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("Find went on after fn's error: %d records, %v", n, err)
		}
	})
	// Keys below the query level cannot match.
	err := x.Find(context.Background(), store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.Modality, Values: []string{"CT"}}}}, func(store.Record) error { return nil })
	if err == nil {
		t.Error("a series key matched at study level")
	}
}

// testUTF8: text comes back as stored, beyond ASCII too, and a person name pattern matches
// without case for the ASCII letters beside other characters. (Case beyond ASCII is folded by
// neither engine: SQLite's upper() and PostgreSQL's in the C locale know ASCII only.)
func testUTF8(t *testing.T, open Open) {
	ctx := context.Background()
	x := open(t)
	in := Instance("1.1", "1.1.1", "1.1.1.1")
	in.PatientName, in.StudyDescription, in.SpecificCharacterSet = "Müller^Jürgen=山田^太郎", "Thorax – ap", `ISO_IR 100`
	put(t, x, in)
	got, err := x.Get(ctx, in.SOPInstanceUID)
	if err != nil || got.PatientName != in.PatientName || got.StudyDescription != in.StudyDescription {
		t.Fatalf("stored %q, %q (%v)", got.PatientName, got.StudyDescription, err)
	}
	m := 0
	err = x.Find(ctx, store.Query{Level: store.PatientLevel, Matches: []store.Match{{Tag: dcm.PatientName, Pattern: "m*山田*"}}}, func(store.Record) error { m++; return nil })
	if err != nil || m != 1 {
		t.Errorf("pattern with ideographs matched %d (%v), want 1", m, err)
	}
}

// testJob is a job the tests enqueue in an instance's transaction.
type testJob struct {
	UID string `json:"uid"`
}

func (testJob) Kind() string { return "indextest.job" }

func jobCount(t *testing.T, x Engine, state rivertype.JobState) int {
	t.Helper()
	c, err := x.JobCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c[store.JobKey{Kind: testJob{}.Kind(), State: state}]
}

// testInTxEnqueue: a job enqueued in a Put's transaction commits with the row; the hook's error
// rolls back both.
func testInTxEnqueue(t *testing.T, open Open) {
	ctx := context.Background()
	x := open(t)
	client, err := x.NewClient(&river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(in store.Instance) func(store.Tx) error {
		return func(tx store.Tx) error { return tx.Enqueue(ctx, testJob{UID: in.SOPInstanceUID}, nil) }
	}
	a := Instance("1.1", "1.1.1", "1.1.1.1")
	if _, err := x.Put(ctx, a, enqueue(a)); err != nil {
		t.Fatal(err)
	}
	res, err := client.JobList(ctx, river.NewJobListParams().Kinds(testJob{}.Kind()))
	if err != nil || len(res.Jobs) != 1 {
		t.Fatalf("jobs %v (%v), want one", res, err)
	}
	var got testJob
	if err := json.Unmarshal(res.Jobs[0].EncodedArgs, &got); err != nil || got.UID != a.SOPInstanceUID {
		t.Errorf("job %+v (%v), want the instance's", got, err)
	}
	boom := errors.New("refused")
	b := Instance("1.1", "1.1.1", "1.1.1.2")
	_, err = x.Put(ctx, b, func(tx store.Tx) error {
		if err := enqueue(b)(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Put with a failing hook: %v, want its error", err)
	}
	if _, err := x.Get(ctx, b.SOPInstanceUID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("row committed although its hook failed: %v", err)
	}
	if n := jobCount(t, x, rivertype.JobStateAvailable); n != 1 {
		t.Errorf("%d jobs available, want 1: the failed Put's job must be rolled back", n)
	}
}

// testInTxComplete: a worker's Put that completes its job in the row's transaction (the SEG and
// its segmentation job) leaves the job completed and the row stored, together.
func testInTxComplete(t *testing.T, open Open) {
	ctx := context.Background()
	x := open(t)
	done := make(chan error, 1)
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[testJob]) error {
		in := Instance("1.1", "1.1.9", job.Args.UID+".9")
		_, err := x.Put(ctx, in, func(tx store.Tx) error { return tx.Complete(ctx, job.JobRow) })
		done <- err
		return err
	}))
	client, err := x.NewClient(&river.Config{Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers: workers, FetchPollInterval: 50 * time.Millisecond, FetchCooldown: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := Instance("1.1", "1.1.1", "1.1.1.1")
	if _, err := x.Put(ctx, a, func(tx store.Tx) error { return tx.Enqueue(ctx, testJob{UID: a.SOPInstanceUID}, nil) }); err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer client.Stop(context.WithoutCancel(ctx))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not run in 30 s")
	}
	if _, err := x.Get(ctx, "1.1.1.1.9"); err != nil {
		t.Errorf("the worker's row: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for jobCount(t, x, rivertype.JobStateCompleted) != 1 {
		if time.Now().After(deadline) {
			c, _ := x.JobCounts(ctx)
			t.Fatalf("job not completed: %v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testSeriesInstances: the series table lists a series' instances in Instance Number order and
// says when the last arrived; recording one again updates it.
func testSeriesInstances(t *testing.T, open Open) {
	ctx := context.Background()
	x := open(t)
	if _, err := x.NewClient(&river.Config{}); err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1700000000, 0)
	for i, n := range []int{3, 1, 2} {
		in := Instance("1.1", "1.1.1", fmt.Sprintf("1.1.1.%d", n))
		_, err := x.Put(ctx, in, func(tx store.Tx) error {
			return tx.RecordSeriesInstance(ctx, in.SeriesInstanceUID, in.SOPInstanceUID, n, base.Add(time.Duration(i)*time.Second))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	uids, last, err := x.SeriesInstances(ctx, "1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids, []string{"1.1.1.1", "1.1.1.2", "1.1.1.3"}) || !last.Equal(base.Add(2*time.Second)) {
		t.Errorf("series: %v, last %v", uids, last)
	}
	if uids, _, err := x.SeriesInstances(ctx, "9.9"); err != nil || len(uids) != 0 {
		t.Errorf("unknown series: %v (%v)", uids, err)
	}
}
