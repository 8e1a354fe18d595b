// Package datadir opens the store of one machine: a data directory holding the file archive
// (store/fsarchive) and the SQLite index and job queue (store/sqlite):
//
//	data_dir/
//	  LOCK                 flock(2)ed while a process has the directory open
//	  index.db (-wal, -shm) the SQLite index and job queue
//	  tmp/                 objects being received; emptied at every start
//	  archive/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
//
// It is the default wiring of the node's seams; other engines are composed with store.New the
// same way.
package datadir

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/fsarchive"
	"github.com/espnode/espnode/store/sqlite"
)

// IndexFile is the SQLite database's name in the data directory.
const IndexFile = "index.db"

// Options configure the store of a data directory.
type Options struct {
	// Dir is the data directory; created if missing.
	Dir string
	// Duplicates is the duplicate policy (store.Duplicates*); "" means overwrite.
	Duplicates string
	Logger     zerolog.Logger
	// ImplementationClassUID and ImplementationVersionName go into the file meta of every
	// object stored (PS3.10 §7.1).
	ImplementationClassUID    string
	ImplementationVersionName string
}

// Open opens (creating if needed) the store in opts.Dir. The archive takes the directory's lock
// first: the queue's start-up recovery (store.Queue.RecoverJobs) relies on this process being
// the only one working it. Closing the store releases the directory.
func Open(ctx context.Context, opts Options) (*store.Store, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("store: no data directory")
	}
	if err := store.CheckDuplicates(opts.Duplicates); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	archive, err := fsarchive.Open(opts.Dir, fsarchive.Options{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	index, err := sqlite.Open(ctx, filepath.Join(opts.Dir, IndexFile))
	if err != nil {
		archive.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return Assemble(archive, index, opts)
}

// Assemble makes the Store over an archive and an index already open, configured as opts
// says (Dir is not used), and closes both when it cannot: store/compose builds its engine pairs
// with it too.
func Assemble(archive store.Archive, index store.Index, opts Options) (*store.Store, error) {
	st, err := store.New(store.Options{
		Archive:                   archive,
		Index:                     index,
		Duplicates:                opts.Duplicates,
		Logger:                    opts.Logger,
		ImplementationClassUID:    opts.ImplementationClassUID,
		ImplementationVersionName: opts.ImplementationVersionName,
	})
	if err != nil {
		index.Close()
		archive.Close()
		return nil, err
	}
	return st, nil
}

// OpenQueue opens the job queue of the data directory dir for another process than the one
// serving it (`espnode jobs`), without taking the directory's lock. The queue must exist. The
// caller closes it.
func OpenQueue(ctx context.Context, dir string) (*sqlite.Queue, error) {
	return sqlite.OpenQueue(ctx, filepath.Join(dir, IndexFile))
}
