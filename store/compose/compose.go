// Package compose opens the store a node's configuration names: the archive (files under the
// data directory, or an S3-compatible object store) and the index with its job queue (SQLite in
// the data directory, or a PostgreSQL database that several nodes share). store/datadir is the
// one-machine case; this package picks each engine and composes them with store.New.
package compose

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
	"github.com/espnode/espnode/store/fsarchive"
	"github.com/espnode/espnode/store/postgres"
	"github.com/espnode/espnode/store/s3archive"
	"github.com/espnode/espnode/store/sqlite"
)

// Engine names, as the configuration's index and archive keys give them.
const (
	IndexSQLite = "sqlite"
	ArchiveFile = "file"
)

// Options name the engines and configure the store.
type Options struct {
	// Dir is the data directory: what is local to the node. It is locked while the store is
	// open, whichever engines are chosen.
	Dir string
	// Index is IndexSQLite (or "") or a postgres:// (postgresql://) URL.
	Index string
	// Archive is ArchiveFile (or "") or s3://BUCKET/PREFIX.
	Archive string
	// S3 configures an s3:// archive: endpoint, region, keys, addressing and part size (empty
	// values from the AWS variables); its Bucket and Prefix come from Archive.
	S3 s3archive.Config
	// Duplicates is the duplicate policy (store.Duplicates*); "" means overwrite.
	Duplicates string
	Logger     zerolog.Logger
	// ImplementationClassUID and ImplementationVersionName go into the file meta of every
	// object stored (PS3.10 §7.1).
	ImplementationClassUID    string
	ImplementationVersionName string
}

func isPostgres(index string) bool {
	return strings.HasPrefix(index, "postgres://") || strings.HasPrefix(index, "postgresql://")
}

// Open opens the store. On SQLite the data directory's lock, taken first, is what makes the
// queue's start-up recovery right (store.Queue.RecoverJobs); on PostgreSQL the lock only keeps
// two nodes from sharing one data directory.
func Open(ctx context.Context, opts Options) (*store.Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: no data directory")
	}
	if err := store.CheckDuplicates(opts.Duplicates); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	archive, err := openArchive(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("store: archive: %w", err)
	}
	index, err := openIndex(ctx, opts)
	if err != nil {
		archive.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return datadir.Assemble(archive, index, datadir.Options{Duplicates: opts.Duplicates, Logger: opts.Logger,
		ImplementationClassUID: opts.ImplementationClassUID, ImplementationVersionName: opts.ImplementationVersionName})
}

func openArchive(ctx context.Context, opts Options) (store.Archive, error) {
	switch {
	case opts.Archive == "" || opts.Archive == ArchiveFile:
		return fsarchive.Open(opts.Dir, fsarchive.Options{Logger: opts.Logger})
	case strings.HasPrefix(opts.Archive, "s3://"):
		cfg := opts.S3
		var err error
		if cfg.Bucket, cfg.Prefix, err = s3archive.ParseURL(opts.Archive); err != nil {
			return nil, err
		}
		// The objects are elsewhere, but the data directory is still this node's alone.
		unlock, err := fsarchive.Lock(opts.Dir)
		if err != nil {
			return nil, err
		}
		a, err := s3archive.Open(ctx, cfg, opts.Logger)
		if err != nil {
			unlock()
			return nil, err
		}
		return &lockedArchive{Archive: a, unlock: unlock}, nil
	}
	return nil, fmt.Errorf("archive %q: want %q or s3://BUCKET/PREFIX", opts.Archive, ArchiveFile)
}

// lockedArchive releases the data directory's lock when the archive closes (the Store closes
// it last).
type lockedArchive struct {
	store.Archive
	unlock func() error
}

func (a *lockedArchive) Close() error { return errors.Join(a.Archive.Close(), a.unlock()) }

func openIndex(ctx context.Context, opts Options) (store.Index, error) {
	switch {
	case opts.Index == "" || opts.Index == IndexSQLite:
		return sqlite.Open(ctx, filepath.Join(opts.Dir, datadir.IndexFile))
	case isPostgres(opts.Index):
		return postgres.Open(ctx, opts.Index, opts.Logger, postgres.Options{})
	}
	return nil, fmt.Errorf("index: want %q or a postgres:// URL", IndexSQLite)
}

// Queue is a job queue opened alone, which its caller closes.
type Queue interface {
	store.Queue
	Close() error
}

// OpenQueue opens the job queue of the configured index for another process than a node
// (`espnode jobs`), beside the nodes working it: the data directory's SQLite database (which
// must exist; its lock is not taken), or the shared PostgreSQL database (which a node must have
// migrated).
func OpenQueue(ctx context.Context, opts Options) (Queue, error) {
	if isPostgres(opts.Index) {
		return postgres.Open(ctx, opts.Index, opts.Logger, postgres.Options{NoMigrate: true})
	}
	if opts.Index != "" && opts.Index != IndexSQLite {
		return nil, fmt.Errorf("index: want %q or a postgres:// URL", IndexSQLite)
	}
	q, err := datadir.OpenQueue(ctx, opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", opts.Dir, err)
	}
	return q, nil
}
