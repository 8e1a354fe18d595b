package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/espnode/espnode/store"
)

// Admin lists and acts on the jobs of a queue, typically from another process
// than the one serving it (`espnode jobs`): the running node's workers pick
// up what Admin makes available at their next poll.
type Admin struct {
	client store.JobClient
}

// NewAdmin opens a client on q that does not work the queue.
func NewAdmin(q store.Queue) (*Admin, error) {
	c, err := q.NewClient(&river.Config{})
	if err != nil {
		return nil, err
	}
	return &Admin{client: c}, nil
}

// Job is one job as `espnode jobs list` shows it.
type Job struct {
	ID          int64
	Kind        string
	State       rivertype.JobState
	Attempt     int
	MaxAttempts int
	Args        string
	CreatedAt   time.Time
	ScheduledAt time.Time
	// LastError is the error of the last failed attempt, if any.
	LastError string
}

// List returns up to limit jobs, newest first, in the given states (all when
// none) and of the given kinds (all when none).
func (a *Admin) List(ctx context.Context, states []rivertype.JobState, kinds []string, limit int) ([]Job, error) {
	params := river.NewJobListParams().First(max(min(limit, 10000), 1)).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if len(states) > 0 {
		params = params.States(states...)
	}
	if len(kinds) > 0 {
		params = params.Kinds(kinds...)
	}
	res, err := a.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("job queue: list: %w", err)
	}
	out := make([]Job, 0, len(res.Jobs))
	for _, j := range res.Jobs {
		job := Job{ID: j.ID, Kind: j.Kind, State: j.State, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
			Args: string(j.EncodedArgs), CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt}
		if n := len(j.Errors); n > 0 {
			job.LastError = j.Errors[n-1].Error
		}
		out = append(out, job)
	}
	return out, nil
}

// Retry makes the jobs available again now, with attempts to spare: a dead
// letter gets one more attempt (and the usual backoff if that fails).
func (a *Admin) Retry(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		if _, err := a.client.JobRetry(ctx, id); err != nil {
			return fmt.Errorf("job queue: retry job %d: %w", id, err)
		}
	}
	return nil
}

// Purge deletes the jobs in the given states, which must be final ones
// (completed, discarded, cancelled), and returns how many it deleted.
func (a *Admin) Purge(ctx context.Context, states []rivertype.JobState) (int, error) {
	for _, s := range states {
		switch s {
		case rivertype.JobStateCompleted, rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
		default:
			return 0, fmt.Errorf("job queue: purge: %s is not a final state (completed, discarded, cancelled)", s)
		}
	}
	const batch = 10000
	n := 0
	for {
		res, err := a.client.JobDeleteMany(ctx, river.NewJobDeleteManyParams().States(states...).First(batch))
		if err != nil {
			return n, fmt.Errorf("job queue: purge: %w", err)
		}
		n += len(res.Jobs)
		if len(res.Jobs) < batch {
			return n, nil
		}
	}
}
