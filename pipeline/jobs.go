package pipeline

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/seg/segment"
)

// queueDriver is River's driver for the index database. A PostgreSQL index
// takes riverdatabasesql here (its transactions are *sql.Tx as well); the
// package's own SQL (recoverJobs, series.go, NewAdmin's table check) is
// written for SQLite and would follow (placeholders, datetime, catalog).
type queueDriver = riversqlite.Driver

func newDriver(db *sql.DB) *queueDriver { return riversqlite.New(db) }

// Queues and job kinds. Kinds are stored with every job: never rename one.
const (
	QueueSegment = "segment"
	QueueDeliver = "deliver"

	KindSegment       = "espnode.segment"
	KindSegmentSeries = "espnode.segment_series"
	KindDeliver       = "espnode.deliver"
)

// SegmentArgs is a job that segments one instance.
type SegmentArgs struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	Channel        string `json:"channel"`
	// CallingAE sent the instance: the reply-to-sender destination.
	CallingAE string `json:"calling_ae,omitempty"`
}

// Kind implements river.JobArgs.
func (SegmentArgs) Kind() string { return KindSegment }

// SeriesArgs is a job that segments the instances of a series received so
// far, once none has arrived for the idle window.
type SeriesArgs struct {
	SeriesInstanceUID string `json:"series_instance_uid" river:"unique"`
	Channel           string `json:"channel" river:"unique"`
	CallingAE         string `json:"calling_ae,omitempty"`
}

// Kind implements river.JobArgs.
func (SeriesArgs) Kind() string { return KindSegmentSeries }

// DeliverArgs is a job that sends one SEG to one destination.
type DeliverArgs struct {
	SEGInstanceUID string `json:"seg_instance_uid" river:"unique"`
	// Source is the source SOP Instance UID (instance mode) or Series
	// Instance UID (series mode), for people reading the job list.
	Source   string `json:"source"`
	Channel  string `json:"channel"`
	AETitle  string `json:"ae_title" river:"unique"`
	Host     string `json:"host" river:"unique"`
	Port     int    `json:"port" river:"unique"`
	Revision string `json:"revision" river:"unique"`
	// ReceivedAt is when the last source instance was stored (Unix
	// nanoseconds), the start of the end-to-end latency.
	ReceivedAt int64 `json:"received_at"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return KindDeliver }

// Destination returns the destination as AET@HOST:PORT.
func (a DeliverArgs) Destination() string {
	return config.Peer{AETitle: a.AETitle, Host: a.Host, Port: a.Port}.String()
}

// SEGInstanceUID is the SOP Instance UID of the SEG that the model (name
// and version) makes on a channel from a source (a SOP Instance UID, or a
// Series Instance UID in series mode). Being a function of these alone, a
// rerun of a job replaces its SEG instead of adding another, and a
// destination that gets it twice holds it once.
func SEGInstanceUID(source, channel, model, version string) string {
	return segment.DerivedUID("espnode-seg", source, channel, model, version)
}

// SEGSeriesUID is the Series Instance UID of the SEGs the model makes for the
// instances of one source series, so that they form one series.
func SEGSeriesUID(sourceSeries, channel, model, version string) string {
	return segment.DerivedUID("espnode-seg-series", sourceSeries, channel, model, version)
}

// revision names what a SEG was made from: a rerun over the same sources
// makes the same revision, which its delivery is unique by; a series SEG
// remade with a late instance is a new revision and is delivered again.
func revision(sources []string) string {
	s := slices.Clone(sources)
	slices.Sort(s)
	h := sha256.Sum256([]byte(strings.Join(s, "\x00")))
	return hex.EncodeToString(h[:8])
}

// Backoff is an exponential backoff with full jitter over its upper half:
// the wait before attempt n+1 is d/2 + rand(d/2) with d = Initial * 2^(n-1)
// capped at Max. The jitter spreads the retries of many jobs whose
// destination came back.
type Backoff struct {
	Initial, Max time.Duration
}

// Delay returns the wait after the attempt-th failure (1-based).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryPolicy applies a Backoff per job kind (river.ClientRetryPolicy).
type retryPolicy struct {
	segment, deliver Backoff
}

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	b := p.deliver
	if job.Kind != KindDeliver {
		b = p.segment
	}
	return time.Now().Add(b.Delay(max(job.Attempt, 1)))
}

// migrate creates or updates River's tables in the index database.
func migrate(ctx context.Context, db *sql.DB) error {
	m, err := rivermigrate.New(newDriver(db), nil)
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job queue: migrate: %w", err)
	}
	if err := migrateSeries(ctx, db); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	return nil
}

// recoverJobs makes the jobs a crashed process left running available again
// (or dead letters, when that was their last attempt) and frees the queue's leadership it held, so that maintenance (retries
// coming due) starts at once instead of after the dead leader's lease.
// Only correct when this process is the only one working the queue, which
// the archive's lock on the data directory guarantees for the embedded
// queue; a queue shared by several nodes relies on River's rescuer instead.
func recoverJobs(ctx context.Context, db *sql.DB) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
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
	if _, err := tx.ExecContext(ctx, `DELETE FROM river_leader`); err != nil {
		return 0, fmt.Errorf("job queue: recover: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("job queue: recover: %w", err)
	}
	return n, nil
}

// JobStates are River's job states in the order `espnode jobs list` shows
// them. discarded is the dead-letter state: attempts exhausted.
var jobStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
	rivertype.JobStateCancelled, rivertype.JobStatePending,
}

// JobStates returns the job states.
func JobStates() []rivertype.JobState { return slices.Clone(jobStates) }

// countJobs returns how many jobs there are per kind and state.
func countJobs(ctx context.Context, db *sql.DB) (map[[2]string]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT kind, state, COUNT(*) FROM river_job GROUP BY kind, state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[[2]string]int{}
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return nil, err
		}
		out[[2]string{kind, state}] = n
	}
	return out, rows.Err()
}
