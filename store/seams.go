package store

import (
	"context"
	"io"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// The three seams below are what the Store and the pipeline need of the engines that hold the
// node's state. The engines are store/fsarchive (files under the data directory) or
// store/s3archive (an S3-compatible object store) for the Archive, and store/sqlite (one
// embedded SQLite database) or store/postgres (a PostgreSQL database several nodes share) for
// the Index and the Queue.
// docs/DESIGN.md ("Seams") states what each engine must promise.

// Archive keeps objects (Part-10 files) by key. A key is a relative path of slash-separated UIDs
// that the Store has validated; the engine chooses where it lives.
type Archive interface {
	// Create starts a new object. What is written to it is visible under no key until Commit.
	Create(ctx context.Context) (ObjectWriter, error)
	// Open returns the object stored under key, read from byte offset on.
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)
	// Remove deletes the object under key. A key that holds nothing is not an error.
	Remove(ctx context.Context, key string) error
	Close() error
}

// ObjectWriter receives one new object.
type ObjectWriter interface {
	io.Writer
	// Commit makes what was written the object under key, replacing any object there, and
	// returns only once it is durable: on local disk, fsynced with its directory entries; on an
	// object store, acknowledged by it.
	Commit(ctx context.Context, key string) error
	// Abort discards an object that was not committed; after Commit it does nothing.
	Abort() error
}

// ObjectNamer is what an ObjectWriter may also implement: told while the object is still being
// written which key Commit will be given, an object store uploads a large object to that key
// directly instead of to a staging name copied at Commit. The Store names the key as soon as its
// scan has passed the UIDs that make it (before pixel data) and then commits under that key.
type ObjectNamer interface {
	Name(key string) error
}

// Index holds the instance rows (with their patient, study and series) that Query/Retrieve reads
// and Put writes.
type Index interface {
	// Get returns the instance with the SOP Instance UID, or an error wrapping ErrNotFound.
	Get(ctx context.Context, sopInstanceUID string) (Instance, error)
	// Put inserts the instance, or replaces the row with its SOP Instance UID, and creates or
	// updates its patient, study and series, in one transaction that is durable when Put
	// returns. inTx, when not nil, runs in that transaction after the rows are written, and its
	// error rolls the transaction back. It returns what the replaced row said (Found false for
	// a new instance), read in the same transaction, so that the Store learns which object an
	// earlier copy lives in without a read of its own before every Put.
	Put(ctx context.Context, inst Instance, inTx func(Tx) error) (Replaced, error)
	// Find streams the records matching q to fn, in a stable order, never holding the result
	// whole; fn's error stops it with that error.
	Find(ctx context.Context, q Query, fn func(Record) error) error
	// Counts returns how many patients, studies, series and instances are indexed.
	Counts(ctx context.Context) (Counts, error)
	// Remove deletes the instance's row, and its series, study and patient when they are left
	// empty; an instance not indexed is ErrNotFound.
	Remove(ctx context.Context, sopInstanceUID string) error
	Close() error
}

// InstanceLocker is implemented by an index that several nodes share. The Store holds a SOP
// Instance UID's lock from the duplicates decision through its object's commit to its row's
// write, so that two copies of one instance arriving at two nodes at once cannot leave the row of
// one beside the object of the other (both go to the same key), and keep or reject sees the
// other node's copy. A node's own index needs none: the Store's locks serialise its Puts.
type InstanceLocker interface {
	// LockInstance waits for the UID's lock and returns the function that releases it. The lock
	// must not depend on the connections Put and Get use, which run while it is held.
	LockInstance(ctx context.Context, sopInstanceUID string) (unlock func(), err error)
}

// Replaced is the earlier row of a SOP Instance UID that Index.Put overwrote.
type Replaced struct {
	Found bool
	// Path is the key of the object the row pointed at; ReceivedAt when it was received.
	Path       string
	ReceivedAt time.Time
}

// Counts are the sizes of the index.
type Counts struct{ Patients, Studies, Series, Instances int }

// Tx is the index transaction of one Put as its InTx hook sees it: what is written through it
// commits with the instance's rows or not at all. The index engine implements it on its own
// database transaction (a *sql.Tx for SQLite, a pgx.Tx for PostgreSQL), which never leaves the
// engine.
type Tx interface {
	// Enqueue inserts a job into the queue (River's InsertTx on the Queue's client).
	Enqueue(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error
	// Complete marks a running job completed (River's JobCompleteTx); ctx must be the job's
	// work context.
	Complete(ctx context.Context, job *rivertype.JobRow) error
	// RecordSeriesInstance notes that an instance of a series arrived at received (series mode:
	// which instances a series job segments, and when the series went idle).
	RecordSeriesInstance(ctx context.Context, seriesUID, sopInstanceUID string, instanceNumber int, received time.Time) error
}

// Queue is the job queue that lives on the index's database, so that a job commits with the
// row it is about (Tx). Jobs are River's; the engine chooses River's driver.
type Queue interface {
	// NewClient makes the queue's River client with config (workers, queues, retry policy).
	// An engine has one client: Tx.Enqueue inserts through it, which lets its workers hear of
	// the new job at once.
	NewClient(config *river.Config) (JobClient, error)
	// JobCounts returns how many jobs there are of each kind in each state.
	JobCounts(ctx context.Context) (map[JobKey]int, error)
	// RecoverJobs makes the jobs a dead process left running available again (dead letters
	// when that was their last attempt) and frees the queue leadership it held. It returns how
	// many jobs it changed. An engine whose queue several nodes share does nothing here and
	// leaves it to River's rescuer.
	RecoverJobs(ctx context.Context) (int64, error)
	// SeriesInstances returns the SOP Instance UIDs recorded for a series, in Instance Number
	// order, and when the last of them arrived.
	SeriesInstances(ctx context.Context, seriesUID string) ([]string, time.Time, error)
}

// JobKey is a job kind and state, as JobCounts counts them.
type JobKey struct {
	Kind  string
	State rivertype.JobState
}

// JobClient is the part of River's client that does not depend on the driver's transaction
// type; *river.Client[*sql.Tx] and *river.Client[pgx.Tx] both implement it.
type JobClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Queues() *river.QueueBundle
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobDeleteMany(ctx context.Context, params *river.JobDeleteManyParams) (*river.JobDeleteManyResult, error)
}
