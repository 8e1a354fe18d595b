package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
)

// TestPutInTx: what InTx writes commits with the instance's row, and its
// failure undoes the whole Put, file included, so no Success can be sent for
// an instance whose job was not created.
func TestPutInTx(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := openStore(t, dir, DuplicatesOverwrite)
	if _, err := s.DB().ExecContext(ctx, `CREATE TABLE job (uid TEXT NOT NULL, modality TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	jobs := func() int {
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM job`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insertJob := func(ctx context.Context, tx *sql.Tx, inst Instance) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO job (uid, modality) VALUES (?, ?)`, inst.SOPInstanceUID, inst.Modality)
		return err
	}

	req := handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 64)
	req.InTx = insertJob
	if _, err := s.Put(ctx, req); err != nil {
		t.Fatal(err)
	}
	var uid, modality string
	if err := s.DB().QueryRowContext(ctx, `SELECT uid, modality FROM job`).Scan(&uid, &modality); err != nil {
		t.Fatal(err)
	}
	if uid != "1.2.3.4.5" || modality != "CT" {
		t.Errorf("job row (%s, %s), want the instance's UID and modality", uid, modality)
	}

	boom := errors.New("queue unavailable")
	req = handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.6"), 64)
	req.InTx = func(ctx context.Context, tx *sql.Tx, inst Instance) error {
		if err := insertJob(ctx, tx, inst); err != nil {
			return err
		}
		return boom
	}
	_, err := s.Put(ctx, req)
	if !errors.Is(err, ErrOutOfResources) || !errors.Is(err, boom) {
		t.Fatalf("Put with a failing InTx: %v, want ErrOutOfResources wrapping the cause", err)
	}
	if _, err := s.Get(ctx, "1.2.3.4.6"); !errors.Is(err, ErrNotFound) {
		t.Errorf("instance indexed although its transaction failed: %v", err)
	}
	if n := jobs(); n != 1 {
		t.Errorf("%d job rows, want 1: the failed transaction's row must be rolled back", n)
	}
	if f := filesUnder(t, dir+"/archive"); len(f) != 1 {
		t.Errorf("archive holds %v, want only the first instance", f)
	}
}

// TestPutOverwriteOverridesPolicy: a Put with Overwrite replaces a stored
// instance even under the keep and reject policies, and runs InTx.
func TestPutOverwriteOverridesPolicy(t *testing.T) {
	for _, policy := range []string{DuplicatesKeep, DuplicatesReject} {
		t.Run(policy, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openStore(t, t.TempDir(), policy)
			attrs := instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5")
			if _, err := s.Put(ctx, handRequest(attrs, 64)); err != nil {
				t.Fatal(err)
			}
			req := handRequest(attrs, 128)
			ran := false
			req.InTx = func(context.Context, *sql.Tx, Instance) error { ran = true; return nil }
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
			if policy == DuplicatesReject && !errors.Is(err, ErrDuplicate) {
				t.Errorf("reject policy without Overwrite: %v", err)
			}
		})
	}
}

// TestOpenIndexDB: another process (espnode jobs) can open the index while
// the store holds the data directory.
func TestOpenIndexDB(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := OpenIndexDB(ctx, dir); err == nil {
		t.Fatal("OpenIndexDB succeeded on a directory without an index")
	}
	s, _ := openStore(t, dir, DuplicatesOverwrite)
	if _, err := s.Put(ctx, handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), 64)); err != nil {
		t.Fatal(err)
	}
	db, err := OpenIndexDB(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM instance`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("instances seen by a second pool: %d (%v), want 1", n, err)
	}
}
