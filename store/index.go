package store

import (
	"context"
	"database/sql"
)

// index is what the store needs of its database. It is deliberately narrow so
// that another engine (PostgreSQL, for several nodes sharing one archive) can
// replace the embedded SQLite one. All SQL lives in sqlite.go and sqlite_query.go.
type index interface {
	// get returns the instance with the SOP Instance UID, or ErrNotFound.
	get(ctx context.Context, sopInstanceUID string) (Instance, error)
	// put inserts the instance, or replaces the row with its SOP Instance
	// UID, and creates or updates its patient, study and series, in one
	// transaction that is durable when put returns. inTx, when not nil, runs
	// in that transaction after the rows are written; its error rolls it back.
	put(ctx context.Context, inst Instance, inTx func(*sql.Tx) error) error
	counts(ctx context.Context) (counts, error)
	// find streams the records matching a query to fn (SQL in sqlite_query.go).
	find(ctx context.Context, q Query, fn func(Record) error) error
	close() error
}

type counts struct{ patients, studies, series, instances int }
