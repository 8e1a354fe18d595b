package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/riverqueue/river"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// testJob is a job the tests enqueue in an instance's transaction.
type testJob struct {
	UID      string `json:"uid"`
	Modality string `json:"modality"`
}

func (testJob) Kind() string { return "test.job" }

// queueOf returns the store's queue with a client made, so that transactions can enqueue.
func queueOf(t *testing.T, s *store.Store) (store.Queue, store.JobClient) {
	t.Helper()
	q, ok := s.Queue()
	if !ok {
		t.Fatal("the data directory's store has no queue")
	}
	c, err := q.NewClient(&river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return q, c
}

// TestPutInTx: what InTx enqueues commits with the instance's row, and its
// failure undoes the whole Put, file included, so no Success can be sent for
// an instance whose job was not created.
func TestPutInTx(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := openStore(t, dir, store.DuplicatesOverwrite)
	q, client := queueOf(t, s)
	jobs := func() int {
		c, err := q.JobCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for k, v := range c {
			if k.Kind == (testJob{}).Kind() {
				n += v
			}
		}
		return n
	}
	insertJob := func(ctx context.Context, tx store.Tx, inst store.Instance) error {
		return tx.Enqueue(ctx, testJob{UID: inst.SOPInstanceUID, Modality: inst.Modality}, nil)
	}

	req := handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 64)
	req.InTx = insertJob
	if _, err := s.Put(ctx, req); err != nil {
		t.Fatal(err)
	}
	res, err := client.JobList(ctx, river.NewJobListParams().Kinds(testJob{}.Kind()))
	if err != nil || len(res.Jobs) != 1 {
		t.Fatalf("jobs %v (%v), want one", res, err)
	}
	var got testJob
	if err := json.Unmarshal(res.Jobs[0].EncodedArgs, &got); err != nil {
		t.Fatal(err)
	}
	if got.UID != "1.2.3.4.5" || got.Modality != "CT" {
		t.Errorf("job (%s, %s), want the instance's UID and modality", got.UID, got.Modality)
	}

	boom := errors.New("queue unavailable")
	req = handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.6"), 64)
	req.InTx = func(ctx context.Context, tx store.Tx, inst store.Instance) error {
		if err := insertJob(ctx, tx, inst); err != nil {
			return err
		}
		return boom
	}
	_, err = s.Put(ctx, req)
	if !errors.Is(err, store.ErrOutOfResources) || !errors.Is(err, boom) {
		t.Fatalf("Put with a failing InTx: %v, want ErrOutOfResources wrapping the cause", err)
	}
	if _, err := s.Get(ctx, "1.2.3.4.6"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("instance indexed although its transaction failed: %v", err)
	}
	if n := jobs(); n != 1 {
		t.Errorf("%d jobs, want 1: the failed transaction's job must be rolled back", n)
	}
	if f := filesUnder(t, dir+"/archive"); len(f) != 1 {
		t.Errorf("archive holds %v, want only the first instance", f)
	}
}

// TestPutOverwriteOverridesPolicy: a Put with Overwrite replaces a stored
// instance even under the keep and reject policies, and runs InTx.
func TestPutOverwriteOverridesPolicy(t *testing.T) {
	for _, policy := range []string{store.DuplicatesKeep, store.DuplicatesReject} {
		t.Run(policy, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openStore(t, t.TempDir(), policy)
			attrs := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
			if _, err := s.Put(ctx, handRequest(attrs, 64)); err != nil {
				t.Fatal(err)
			}
			req := handRequest(attrs, 128)
			ran := false
			req.InTx = func(context.Context, store.Tx, store.Instance) error { ran = true; return nil }
			req.Overwrite = true
			inst, err := s.Put(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if inst.Duplicate || !ran {
				t.Errorf("Overwrite under %s: duplicate %v, InTx ran %v; want a replacement", policy, inst.Duplicate, ran)
			}
			got, err := s.Get(ctx, "1.2.3.4.5")
			if err != nil || got.Size != inst.Size {
				t.Errorf("stored size %d (%v), want the replacement's %d", got.Size, err, inst.Size)
			}
			// Without Overwrite the policy still holds.
			_, err = s.Put(ctx, handRequest(attrs, 64))
			if policy == store.DuplicatesReject && !errors.Is(err, store.ErrDuplicate) {
				t.Errorf("reject policy without Overwrite: %v", err)
			}
		})
	}
}

// TestOpenQueue: another process (espnode jobs) can open the queue while the
// store holds the data directory, and sees its jobs.
func TestOpenQueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := datadir.OpenQueue(ctx, dir); err == nil {
		t.Fatal("OpenQueue succeeded on a directory without an index")
	}
	s, _ := openStore(t, dir, store.DuplicatesOverwrite)
	queueOf(t, s)
	req := handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 64)
	req.InTx = func(ctx context.Context, tx store.Tx, inst store.Instance) error {
		return tx.Enqueue(ctx, testJob{UID: inst.SOPInstanceUID}, nil)
	}
	if _, err := s.Put(ctx, req); err != nil {
		t.Fatal(err)
	}
	q, err := datadir.OpenQueue(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c, err := q.JobCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := c[store.JobKey{Kind: testJob{}.Kind(), State: "available"}]; n != 1 {
		t.Fatalf("jobs seen by a second process: %v, want one available", c)
	}
}
