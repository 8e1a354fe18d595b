package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/espnode/espnode/store"
)

// TestGroupCommit: Puts that wait while a commit is under way go into one transaction; one whose
// hook fails is rolled back alone, the others of its batch are committed.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	x := openEngine(t, t.TempDir())
	entered, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		// Holds the committer inside its transaction while the others queue up.
		_, err := x.Put(ctx, instance("1.1", "1.1.1", "1.1.1.0"), func(store.Tx) error {
			close(entered)
			<-release
			return nil
		})
		first <- err
	}()
	<-entered
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var hook func(store.Tx) error
			if i%3 == 1 {
				hook = func(store.Tx) error { return errors.New("refused by the hook") }
			}
			_, errs[i] = x.Put(ctx, instance("1.1", "1.1.1", fmt.Sprintf("1.1.1.%d", i+1)), hook)
		}()
	}
	time.Sleep(200 * time.Millisecond) // the eight are blocked handing over their Puts
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		_, gerr := x.Get(ctx, fmt.Sprintf("1.1.1.%d", i+1))
		if i%3 == 1 {
			if err == nil || !errors.Is(gerr, store.ErrNotFound) {
				t.Errorf("put %d: hook failed, Put %v, row %v", i, err, gerr)
			}
			continue
		}
		if err != nil || gerr != nil {
			t.Errorf("put %d: %v, row %v", i, err, gerr)
		}
	}
	if b, p := x.batches.Load(), x.batchedPuts.Load(); p != n+1 || b >= p-1 {
		t.Errorf("%d Puts in %d transactions: the waiting ones were not committed together", p, b)
	}
	if c, err := x.Counts(ctx); err != nil || c.Instances != n+1-3 {
		t.Errorf("counts %+v (%v)", c, err)
	}
}

// TestRowCache: the rows the engine remembers follow what is stored: an attribute a later
// instance brings is written, one it lacks kept; a series removed and sent again is made again;
// an instance moved to another series empties the first.
func TestRowCache(t *testing.T) {
	ctx := context.Background()
	x := openEngine(t, t.TempDir())
	put := func(in store.Instance) {
		t.Helper()
		if _, err := x.Put(ctx, in, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := instance("1.1", "1.1.1", "1.1.1.1")
	a.StudyDescription, a.Modality, a.PatientName = "HEAD", "CT", "DOE^J"
	put(a)
	b := instance("1.1", "1.1.1", "1.1.1.2") // no description: keeps HEAD
	put(b)
	c := instance("1.1", "1.1.1", "1.1.1.3")
	c.StudyDescription, c.PatientName = "HEAD AND NECK", "DOE^JOHN"
	put(c)
	got, err := x.Get(ctx, "1.1.1.2")
	if err != nil || got.StudyDescription != "HEAD AND NECK" || got.Modality != "CT" || got.PatientName != "DOE^JOHN" {
		t.Fatalf("study after three Puts: %+v (%v)", got, err)
	}
	for _, uid := range []string{"1.1.1.1", "1.1.1.2", "1.1.1.3"} {
		if err := x.Remove(ctx, uid); err != nil {
			t.Fatal(err)
		}
	}
	put(instance("1.1", "1.1.1", "1.1.1.4")) // its series and study were deleted: made again
	if c, err := x.Counts(ctx); err != nil || c != (store.Counts{Patients: 1, Studies: 1, Series: 1, Instances: 1}) {
		t.Fatalf("after the series came back: %+v (%v)", c, err)
	}
	put(instance("1.1", "1.1.2", "1.1.1.4")) // moved: series 1.1.1 is left empty
	put(instance("1.1", "1.1.1", "1.1.1.5")) // and made again
	if c, err := x.Counts(ctx); err != nil || c != (store.Counts{Patients: 1, Studies: 1, Series: 2, Instances: 2}) {
		t.Fatalf("after the move: %+v (%v)", c, err)
	}
	if got, err := x.Get(ctx, "1.1.1.5"); err != nil || got.SeriesInstanceUID != "1.1.1" {
		t.Errorf("instance in the series made again: %+v (%v)", got, err)
	}
}
