package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/espnode/espnode/store"
)

// Queue is River's job queue on the PostgreSQL database, with riverpgxv5 as its driver. Every
// node's client works the same river_job table: River's leader election, its row locks on fetch
// and its rescuer of stuck jobs make that safe.
type Queue struct {
	pool *pgxpool.Pool

	mu     sync.Mutex
	client *river.Client[pgx.Tx]
}

var _ store.Queue = (*Queue)(nil)

// NewClient implements store.Queue. The first client made is the one the index's transactions
// insert through.
func (q *Queue) NewClient(config *river.Config) (store.JobClient, error) {
	c, err := river.NewClient(riverpgxv5.New(q.pool), config)
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

func (q *Queue) inserter() (*river.Client[pgx.Tx], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client == nil {
		return nil, errors.New("job queue: no client to insert with (Queue.NewClient)")
	}
	return q.client, nil
}

// queueTx is the store.Tx of one index transaction.
type queueTx struct {
	tx pgx.Tx
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
	_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, t.tx, &river.Job[anyArgs]{JobRow: job})
	return err
}

func (t *queueTx) RecordSeriesInstance(ctx context.Context, series, sop string, number int, received time.Time) error {
	_, err := t.tx.Exec(ctx, `
INSERT INTO pipeline_series_instance (series_uid, sop_instance_uid, instance_number, received_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (series_uid, sop_instance_uid) DO UPDATE SET
	instance_number = excluded.instance_number, received_at = excluded.received_at`,
		series, sop, number, received.UnixNano())
	if err != nil {
		return fmt.Errorf("series %s: %w", series, err)
	}
	return nil
}

// SeriesInstances implements store.Queue: the instances of the series whichever node received
// them.
func (q *Queue) SeriesInstances(ctx context.Context, series string) ([]string, time.Time, error) {
	rows, err := q.pool.Query(ctx, `
SELECT sop_instance_uid, received_at FROM pipeline_series_instance
WHERE series_uid = $1 ORDER BY instance_number, sop_instance_uid`, series)
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

// RecoverJobs implements store.Queue: it does nothing. Other nodes may be working the jobs that
// are running; River's rescuer makes those of a dead node available again once they have run
// longer than the client's RescueStuckJobsAfter.
func (q *Queue) RecoverJobs(context.Context) (int64, error) { return 0, nil }

// JobCounts implements store.Queue: the jobs of every node.
func (q *Queue) JobCounts(ctx context.Context) (map[store.JobKey]int, error) {
	rows, err := q.pool.Query(ctx, `SELECT kind, state::text, COUNT(*) FROM river_job GROUP BY kind, state`)
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
