// Package fsarchive is the archive engine of one machine: each object is a file under a root
// directory, named by its key, written to root/tmp first, renamed into place and made durable by
// an fdatasync and an fsync of each directory whose entries changed (in an order that depends on
// whether the key is new: see Commit). It implements store.Archive.
package fsarchive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
)

// Layout under the root.
const (
	// TmpDir holds objects being written; it is emptied when the archive opens.
	TmpDir = "tmp"
	// LockFile is flock(2)ed while a process has the archive open.
	LockFile = "LOCK"
)

// maxSyncedDirs bounds the synced-directory memo; forgetting costs only a redundant fsync.
const maxSyncedDirs = 100_000

// Options configure an Archive.
type Options struct {
	// Logger receives what Open cleans up.
	Logger zerolog.Logger
}

// Archive is a store.Archive of files under a root directory. Its methods are safe for
// concurrent use; one process at a time has a root open.
type Archive struct {
	root, tmp string
	log       zerolog.Logger
	unlock    func() error

	// synced holds directories whose entry in their parent this process has fsynced; a
	// directory made by a concurrent Commit is not durable until its parent is synced, so
	// presence on disk alone is not enough.
	syncMu sync.Mutex
	synced map[string]struct{}
	dirs   *dirHandles
	rings  *ringPool
}

var _ store.Archive = (*Archive)(nil)

// Open opens (creating if needed) the archive rooted at dir: it takes dir/LOCK, so that two
// processes never share a root (each would delete the other's unfinished objects), and removes
// what a crashed writer left in dir/tmp.
func Open(dir string, opts Options) (*Archive, error) {
	if dir == "" {
		return nil, errors.New("archive: no directory")
	}
	a := &Archive{root: dir, tmp: filepath.Join(dir, TmpDir), log: opts.Logger, synced: map[string]struct{}{}, dirs: newDirHandles(), rings: newRingPool()}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, LockFile))
	if err != nil {
		return nil, fmt.Errorf("archive: %s: %w", dir, err)
	}
	a.unlock = unlock
	fail := func(err error) (*Archive, error) {
		a.dirs.close()
		unlock()
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := os.Mkdir(a.tmp, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return fail(err)
	}
	if err := a.dirs.sync(dir); err != nil {
		return fail(err)
	}
	a.markSynced(dir)
	if err := a.cleanTmp(); err != nil {
		return fail(err)
	}
	return a, nil
}

// cleanTmp removes leftovers of writes that did not finish: the lock makes sure no other
// process is writing there.
func (a *Archive) cleanTmp() error {
	entries, err := os.ReadDir(a.tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(a.tmp, e.Name())); err != nil {
			return err
		}
	}
	if len(entries) > 0 {
		a.log.Warn().Int("files", len(entries)).Str("dir", a.tmp).
			Msg("removed temporary files of unfinished stores (a crash or kill during a transfer)")
	}
	return nil
}

// Close releases the root.
func (a *Archive) Close() error {
	a.rings.close()
	a.dirs.close()
	return a.unlock()
}

// file returns the path of key's file, refusing a key that would leave the root or name the
// archive's own files.
func (a *Archive) file(key string) (string, error) {
	rel := filepath.FromSlash(key)
	first, _, _ := strings.Cut(key, "/")
	if key == "" || key == "." || !filepath.IsLocal(rel) || filepath.ToSlash(filepath.Clean(rel)) != key || first == TmpDir || first == LockFile {
		return "", fmt.Errorf("archive: %q is not an object key", key)
	}
	return filepath.Join(a.root, rel), nil
}

// Create starts an object in root/tmp.
func (a *Archive) Create(ctx context.Context) (store.ObjectWriter, error) {
	f, err := os.CreateTemp(a.tmp, "put-*.part")
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &writer{a: a, f: f}, nil
}

// Open opens key's file at offset.
func (a *Archive) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	name, err := a.file(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("archive: %w", err)
		}
	}
	return f, nil
}

// Remove deletes key's file.
func (a *Archive) Remove(ctx context.Context, key string) error {
	name, err := a.file(key)
	if err != nil {
		return err
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// writer is one object being written to a temporary file.
type writer struct {
	a    *Archive
	f    *os.File
	done bool
	// written is the object's size so far; kicked how much of it writeback was started for.
	written, kicked int64
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if writebackChunk > 0 && w.written-w.kicked >= writebackChunk {
		startWriteback(w.f, w.kicked, w.written-w.kicked)
		w.kicked = w.written
	}
	return n, err
}

// Commit makes the object durable under key. A new key and a replaced one take different orders,
// because only a replacement has a name that must never point at data not on the disk yet:
//
//   - new key: create the missing directories, rename the file into place, then run every sync
//     at once (the file's fdatasync, its directory's fsync, and the parent of each directory this
//     process has not made durable yet). A journalling file system commits concurrent syncs
//     together, so the object costs one commit, not one per step. A crash before they finish
//     can leave a name with torn data, but nothing points at it: the index row is written only
//     after Commit returns (store.Put), the sender got no Success and sends again, and that
//     Put finds the name and takes the replacement order below.
//   - replacement: fdatasync first (at the same time as any directory work), then the rename,
//     then the directory's fsync, so the old object's name points at complete data at every
//     moment.
//
// Commits of one key are serialised by the caller (store.Put's per-UID lock).
func (w *writer) Commit(ctx context.Context, key string) error {
	if w.done {
		return errors.New("archive: object already committed or aborted")
	}
	final, err := w.a.file(key)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(final); errors.Is(err, fs.ErrNotExist) {
		return w.commitNew(final)
	}
	return w.commitReplacement(final)
}

func (w *writer) commitNew(final string) error {
	dir := filepath.Dir(final)
	unsynced, err := w.a.mkdirs(dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := os.Rename(w.f.Name(), final); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	w.done = true
	// the file's directory always; for each directory made or not yet known durable, its parent
	err = w.a.syncTogether(w.f, append([]string{dir}, parents(unsynced)...))
	err = errors.Join(err, w.f.Close())
	if err != nil {
		// Withdraw the name: it may not survive a crash, and no row points at it yet.
		os.Remove(final)
		return fmt.Errorf("archive: %w", err)
	}
	for _, d := range unsynced {
		w.a.markSynced(d)
	}
	return nil
}

// syncTogether runs f's fdatasync and each directory's fsync at once and returns when all are
// done: as one io_uring submission where the kernel allows it (syncRing), from goroutines
// otherwise. f's pages are dropped once its fdatasync has succeeded, as syncData does.
func (a *Archive) syncTogether(f *os.File, dirs []string) error {
	r, err := a.rings.get(1 + len(dirs))
	switch {
	case r != nil:
		syncErr, ringErr := a.syncByRing(r, f, dirs)
		if ringErr == nil {
			a.rings.put(r)
			return syncErr
		}
		r.close()
		a.log.Warn().Err(ringErr).Msg("io_uring failed; this object's syncs run again without it")
	case err != nil:
		a.log.Info().Err(err).Msg("no io_uring: each sync of an object blocks a thread of its own")
	}
	errs := make(chan error, len(dirs))
	for _, d := range dirs {
		go func() { errs <- a.dirs.sync(d) }()
	}
	err = syncData(f)
	for range dirs {
		err = errors.Join(err, <-errs)
	}
	return err
}

func (w *writer) commitReplacement(final string) error {
	dir := filepath.Dir(final)
	var mkdirErr error
	var made chan struct{}
	if !w.a.isSynced(dir) {
		made = make(chan struct{})
		go func() {
			defer close(made)
			mkdirErr = w.a.mkdirDurable(dir)
		}()
	}
	err := syncData(w.f)
	if made != nil {
		<-made
	}
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if mkdirErr != nil {
		return fmt.Errorf("archive: %w", mkdirErr)
	}
	if err := os.Rename(w.f.Name(), final); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	w.done = true
	// A replaced object stays replaced even if this fails: removing it would lose the old one too.
	if err := w.a.dirs.sync(dir); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// mkdirs creates dir and its missing parents below the root without syncing any, and returns
// those of them whose entry in their parent is not known durable, outermost first.
func (a *Archive) mkdirs(dir string) ([]string, error) {
	var unsynced []string
	for d := dir; !a.isSynced(d); d = filepath.Dir(d) {
		unsynced = append(unsynced, d)
	}
	slices.Reverse(unsynced)
	for _, d := range unsynced {
		if err := os.Mkdir(d, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	return unsynced, nil
}

// parents returns the parent of each directory in dirs.
func parents(dirs []string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = filepath.Dir(d)
	}
	return out
}

// Abort removes the temporary file of an object not committed.
func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// mkdirDurable creates dir and any missing parent below the root, making sure each one's entry
// in its parent has been fsynced by this process.
func (a *Archive) mkdirDurable(dir string) error {
	if a.isSynced(dir) {
		return nil
	}
	if err := a.mkdirDurable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := a.dirs.sync(filepath.Dir(dir)); err != nil {
		return err
	}
	a.markSynced(dir)
	return nil
}

// isSynced reports whether dir's entry in its parent is known durable (the root: made and
// synced by Open).
func (a *Archive) isSynced(dir string) bool {
	if dir == a.root {
		return true
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	_, ok := a.synced[dir]
	return ok
}

func (a *Archive) markSynced(dir string) {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	if len(a.synced) >= maxSyncedDirs {
		clear(a.synced)
	}
	a.synced[dir] = struct{}{}
}

// Lock takes dir's LOCK as Open does, for a process that keeps its objects elsewhere but still
// owns the data directory (its SQLite index, its temporary files). The function it returns
// releases it.
func Lock(dir string) (unlock func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return lockDir(filepath.Join(dir, LockFile))
}
