package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/espnode/espnode/store"
)

// Group commit. SQLite has one writer, and with synchronous=FULL every commit waits for the WAL
// to reach the disk: one sync per transaction. Puts from concurrent associations therefore go to
// one committer goroutine, which writes every Put that is waiting when it starts a transaction in
// that one transaction, each in a savepoint of its own, and commits once: one WAL sync for the
// lot. A Put still returns only after the commit that holds its rows is durable, and a Put whose
// rows or hook fail is rolled back to its savepoint without touching the others. Nothing waits to
// fill a batch: a Put that finds the committer idle is committed at once, alone, so a single
// sender pays no latency for it; Puts that arrive while a commit syncs make up the next batch.

// maxBatch bounds the Puts of one transaction, so that one commit's latency stays bounded.
const maxBatch = 64

// putRequest is one Put waiting for the committer.
type putRequest struct {
	ctx  context.Context
	inst store.Instance
	inTx func(store.Tx) error
	// prev is what the Put replaced, valid once done has said nil.
	prev store.Replaced
	done chan error
}

// committer runs the batches until quit is closed; then it fails what is still waiting.
func (x *Engine) committer() {
	defer close(x.committerDone)
	batch := make([]*putRequest, 0, maxBatch)
	for {
		select {
		case r := <-x.puts:
			batch = append(batch[:0], r)
		case <-x.quit:
			for {
				select {
				case r := <-x.puts:
					r.done <- errors.New("index: closed")
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-x.puts:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		x.commitBatch(batch)
		x.batches.Add(1)
		x.batchedPuts.Add(int64(len(batch)))
		clear(batch)
	}
}

// commitBatch writes the Puts of batch in one transaction and tells each how it ended.
func (x *Engine) commitBatch(batch []*putRequest) {
	errs := make([]error, len(batch))
	fail := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	// The transaction belongs to no one Put: the requests' contexts, which Store.Put keeps from
	// being cancelled anyway, go to their own statements.
	tx, err := x.w.BeginTx(context.Background(), nil)
	if err != nil {
		fail(fmt.Errorf("index: %w", err))
		return
	}
	defer tx.Rollback()
	view := x.rows.view()
	single := len(batch) == 1
	committed := 0
	for i, r := range batch {
		if single {
			errs[i] = x.putOne(r, tx, view)
			if errs[i] != nil {
				fail(errs[i])
				return
			}
			view.keep()
			committed++
			continue
		}
		if _, err := tx.ExecContext(r.ctx, "SAVEPOINT put"); err != nil {
			fail(fmt.Errorf("index: %w", err))
			return
		}
		if errs[i] = x.putOne(r, tx, view); errs[i] != nil {
			view.drop()
			if _, err := tx.ExecContext(r.ctx, "ROLLBACK TO put"); err != nil {
				fail(fmt.Errorf("index: rolling back one put of a batch: %w (after %w)", err, errs[i]))
				return
			}
		} else {
			view.keep()
			committed++
		}
		if _, err := tx.ExecContext(r.ctx, "RELEASE put"); err != nil {
			fail(fmt.Errorf("index: %w", err))
			return
		}
	}
	if committed > 0 {
		if err = tx.Commit(); err == nil {
			view.commit()
		}
	}
	for i, r := range batch {
		switch {
		case errs[i] != nil:
			r.done <- errs[i]
		case err != nil:
			r.done <- fmt.Errorf("index: commit: %w", err)
		default:
			r.done <- nil
		}
	}
}

// putOne writes one Put's rows and runs its hook in tx.
func (x *Engine) putOne(r *putRequest, tx *sql.Tx, view *rowView) error {
	prev, err := x.putStmts.run(r.ctx, tx, view, r.inst)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	r.prev = prev
	if r.inTx != nil {
		if err := r.inTx(&queueTx{tx: tx, q: x.Queue}); err != nil {
			return fmt.Errorf("index: in the instance's transaction: %w", err)
		}
	}
	return nil
}
