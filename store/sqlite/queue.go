package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/espnode/espnode/store"
)

// Queue is River's job queue on an SQLite database, with riversqlite as its driver. An Engine
// holds one on its writer; OpenQueue opens one alone for another process.
type Queue struct {
	db    *sql.DB
	owned bool // Close closes db (OpenQueue's)

	mu     sync.Mutex
	client *river.Client[*sql.Tx]
}

var _ store.Queue = (*Queue)(nil)

// migrateQueue creates or updates River's tables.
func migrateQueue(ctx context.Context, db *sql.DB) error {
	m, err := rivermigrate.New(riversqlite.New(db), nil)
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job queue: migrate: %w", err)
	}
	return nil
}

// NewClient implements store.Queue. The first client made is the one the index's transactions
// insert through.
func (q *Queue) NewClient(config *river.Config) (store.JobClient, error) {
	c, err := river.NewClient(riversqlite.New(q.db), config)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client == nil {
		q.client = c
	}
	return c, nil
}

func (q *Queue) inserter() (*river.Client[*sql.Tx], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client == nil {
		return nil, errors.New("job queue: no client to insert with (Queue.NewClient)")
	}
	return q.client, nil
}

// Close closes the database of a queue OpenQueue opened; an Engine's queue closes with it.
func (q *Queue) Close() error {
	if !q.owned {
		return nil
	}
	return q.db.Close()
}

// queueTx is the store.Tx of one index transaction.
type queueTx struct {
	tx *sql.Tx
	q  *Queue
}

func (t *queueTx) Enqueue(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error {
	c, err := t.q.inserter()
	if err != nil {
		return err
	}
	_, err = c.InsertTx(ctx, t.tx, args, opts)
	return err
}

// anyArgs stands for a job's arguments where only its row matters.
type anyArgs struct{}

func (anyArgs) Kind() string { return "" }

func (t *queueTx) Complete(ctx context.Context, job *rivertype.JobRow) error {
	_, err := river.JobCompleteTx[*riversqlite.Driver](ctx, t.tx, &river.Job[anyArgs]{JobRow: job})
	return err
}

func (t *queueTx) RecordSeriesInstance(ctx context.Context, series, sop string, number int, received time.Time) error {
	_, err := t.tx.ExecContext(ctx, `
INSERT INTO pipeline_series_instance (series_uid, sop_instance_uid, instance_number, received_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (series_uid, sop_instance_uid) DO UPDATE SET
	instance_number = excluded.instance_number, received_at = excluded.received_at`,
		series, sop, number, received.UnixNano())
	if err != nil {
		return fmt.Errorf("series %s: %w", series, err)
	}
	return nil
}

// SeriesInstances implements store.Queue.
func (q *Queue) SeriesInstances(ctx context.Context, series string) ([]string, time.Time, error) {
	rows, err := q.db.QueryContext(ctx, `
SELECT sop_instance_uid, received_at FROM pipeline_series_instance
WHERE series_uid = ? ORDER BY instance_number, sop_instance_uid`, series)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("series %s: %w", series, err)
	}
	defer rows.Close()
	var (
		uids []string
		last int64
	)
	for rows.Next() {
		var uid string
		var at int64
		if err := rows.Scan(&uid, &at); err != nil {
			return nil, time.Time{}, fmt.Errorf("series %s: %w", series, err)
		}
		uids = append(uids, uid)
		last = max(last, at)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("series %s: %w", series, err)
	}
	return uids, time.Unix(0, last), nil
}

// RecoverJobs implements store.Queue. It is right only when this process is the only one
// working the queue, which the data directory's lock guarantees for the embedded engine.
func (q *Queue) RecoverJobs(ctx context.Context) (int64, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("job queue: recover: %w", err)
	}
	defer tx.Rollback()
	// A job whose attempts are used up is a dead letter rather than run
	// again: it may be what killed the process.
	res, err := tx.ExecContext(ctx, `
UPDATE river_job SET
	state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'available' END,
	finalized_at = CASE WHEN attempt >= max_attempts THEN datetime('now', 'subsec') ELSE NULL END
WHERE state = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("job queue: recover: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("job queue: recover: %w", err)
	}
	// The dead leader's row would make this process wait out its lease before scheduling
	// retries that come due.
	if _, err := tx.ExecContext(ctx, `DELETE FROM river_leader`); err != nil {
		return 0, fmt.Errorf("job queue: recover: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("job queue: recover: %w", err)
	}
	return n, nil
}

// JobCounts implements store.Queue.
func (q *Queue) JobCounts(ctx context.Context) (map[store.JobKey]int, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT kind, state, COUNT(*) FROM river_job GROUP BY kind, state`)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	defer rows.Close()
	out := map[store.JobKey]int{}
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
		out[store.JobKey{Kind: kind, State: rivertype.JobState(state)}] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	return out, nil
}
