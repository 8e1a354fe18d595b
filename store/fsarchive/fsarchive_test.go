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
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/archivetest"
)

// TestContract runs the archive contract every engine meets.
func TestContract(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) store.Archive { return openArchive(t, t.TempDir()) })
}

func openArchive(t *testing.T, dir string) *Archive {
	t.Helper()
	a, err := Open(dir, Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func put(t *testing.T, a *Archive, key, content string) {
	t.Helper()
	ctx := context.Background()
	w, err := a.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, key); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, a *Archive, key string, offset int64) string {
	t.Helper()
	rc, err := a.Open(context.Background(), key, offset)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestObjects: an object is invisible until committed, then readable from any offset, replaced
// by a commit under the same key, and gone after Remove (twice is fine).
func TestObjects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openArchive(t, dir)
	w, err := a.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "0123456789")
	if _, err := a.Open(ctx, "archive/1.2/3.4/5.6.dcm", 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("uncommitted object readable: %v", err)
	}
	if err := w.Commit(ctx, "archive/1.2/3.4/5.6.dcm"); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if got := read(t, a, "archive/1.2/3.4/5.6.dcm", 4); got != "456789" {
		t.Errorf("read from offset 4: %q", got)
	}
	put(t, a, "archive/1.2/3.4/5.6.dcm", "new")
	if got := read(t, a, "archive/1.2/3.4/5.6.dcm", 0); got != "new" {
		t.Errorf("replaced object reads %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "archive", "1.2", "3.4", "5.6.dcm")); err != nil {
		t.Errorf("object not at its key's path: %v", err)
	}
	for range 2 {
		if err := a.Remove(ctx, "archive/1.2/3.4/5.6.dcm"); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, TmpDir)); len(entries) != 0 {
		t.Errorf("tmp holds %v", entries)
	}
}

func TestAbortRemovesTheTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	a := openArchive(t, dir)
	w, err := a.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "half")
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, TmpDir)); len(entries) != 0 {
		t.Errorf("tmp holds %v after Abort", entries)
	}
	if err := w.Commit(context.Background(), "a/b"); err == nil {
		t.Error("Commit after Abort succeeded")
	}
}

// TestKeysStayInTheRoot: no key names a file outside the root or the archive's own files.
func TestKeysStayInTheRoot(t *testing.T) {
	ctx := context.Background()
	a := openArchive(t, t.TempDir())
	for _, key := range []string{"", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "tmp/x", "LOCK"} {
		w, err := a.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, key); err == nil || !strings.Contains(err.Error(), "not an object key") {
			t.Errorf("Commit(%q): %v, want a refusal", key, err)
		}
		w.Abort()
		if _, err := a.Open(ctx, key, 0); err == nil {
			t.Errorf("Open(%q) succeeded", key)
		}
	}
}

// TestOneProcessPerRoot: a second Open of a root in use fails; the first one's leftovers in
// tmp are removed, and counted in the log, by the next Open.
func TestOneProcessPerRoot(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := Open(dir, Options{}); err == nil {
		b.Close()
		t.Fatal("a second Open of the same root succeeded")
	}
	w, _ := a.Create(context.Background())
	io.WriteString(w, "left over by a crash")
	a.Close()
	var log strings.Builder
	b, err := Open(dir, Options{Logger: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if entries, _ := os.ReadDir(filepath.Join(dir, TmpDir)); len(entries) != 0 {
		t.Errorf("tmp holds %v after reopening", entries)
	}
	if !strings.Contains(log.String(), `"files":1`) {
		t.Errorf("log does not count the removed file: %s", log.String())
	}
	if _, err := Open(filepath.Join(dir, LockFile), Options{}); err == nil {
		t.Error("a file opened as a root")
	}
}

// TestManyDirectories: objects in more directories than the archive keeps open, written from
// several goroutines at once, all land under their keys; the handles kept are at most the bound
// and closed with the archive.
func TestManyDirectories(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openArchive(t, dir)
	const n = 3 * maxOpenDirs
	errs := make(chan error, n)
	for i := range n {
		go func() {
			w, err := a.Create(ctx)
			if err == nil {
				_, err = fmt.Fprintf(w, "object %d", i)
			}
			if err == nil {
				err = w.Commit(ctx, fmt.Sprintf("archive/1.%d/1.%d.%d/1.%d.%d.1.dcm", i%7, i%7, i, i%7, i))
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if got := read(t, a, fmt.Sprintf("archive/1.%d/1.%d.%d/1.%d.%d.1.dcm", i%7, i%7, i, i%7, i), 0); got != fmt.Sprintf("object %d", i) {
			t.Errorf("object %d reads %q", i, got)
		}
	}
	a.dirs.mu.Lock()
	open, order := len(a.dirs.open), len(a.dirs.order)
	a.dirs.mu.Unlock()
	if open > maxOpenDirs || open != order {
		t.Errorf("%d directory handles kept (%d in order), bound %d", open, order, maxOpenDirs)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if len(a.dirs.open) != 0 {
		t.Errorf("%d directory handles left open after Close", len(a.dirs.open))
	}
}

// TestCommitSyncs checks which directories a Commit syncs, and that a new key whose syncs fail
// leaves no name behind (no row points at it yet, and it might not survive a crash).
func TestCommitSyncs(t *testing.T) {
	const key = "archive/1.2/3.4/5.6.dcm"
	tests := []struct {
		name     string
		before   []string // keys committed first
		failSync string   // a directory (below the root) whose fsync fails
		want     []string // directories synced by the Commit of key, sorted
		wantErr  bool
	}{
		{name: "new study and series (and the archive folder)", want: []string{".", "archive", "archive/1.2", "archive/1.2/3.4"}},
		{name: "known series", before: []string{"archive/1.2/3.4/5.5.dcm"}, want: []string{"archive/1.2/3.4"}},
		{name: "replacement", before: []string{key}, want: []string{"archive/1.2/3.4"}},
		{name: "new key, series sync fails", failSync: "archive/1.2/3.4", wantErr: true,
			want: []string{".", "archive", "archive/1.2", "archive/1.2/3.4"}},
		{name: "new key, a parent's sync fails", failSync: "archive", wantErr: true,
			want: []string{".", "archive", "archive/1.2", "archive/1.2/3.4"}},
	}
	for _, tt := range tests {
		for _, withRing := range []bool{true, false} {
			name := tt.name
			if !withRing {
				name += ", without io_uring"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				a := openArchive(t, dir)
				if !withRing {
					noRings(a)
				}
				for _, k := range tt.before {
					put(t, a, k, "old")
				}
				var mu sync.Mutex
				var synced []string
				a.dirs.beforeSync = func(d string) error {
					rel, _ := filepath.Rel(dir, d)
					mu.Lock()
					synced = append(synced, filepath.ToSlash(rel))
					mu.Unlock()
					if rel == filepath.FromSlash(tt.failSync) {
						return errors.New("injected")
					}
					return nil
				}
				w, err := a.Create(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(w, "new")
				err = w.Commit(context.Background(), key)
				slices.Sort(synced)
				if !slices.Equal(synced, tt.want) {
					t.Errorf("synced %v, want %v", synced, tt.want)
				}
				if (err != nil) != tt.wantErr {
					t.Fatalf("Commit: %v, want error %v", err, tt.wantErr)
				}
				a.dirs.beforeSync = nil
				if tt.wantErr {
					if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(key))); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("failed new key left its name: %v", err)
					}
					if a.isSynced(filepath.Join(dir, "archive", "1.2", "3.4")) {
						t.Error("series directory marked durable after a failed sync")
					}
					return
				}
				if got := read(t, a, key, 0); got != "new" {
					t.Errorf("object reads %q", got)
				}
				for _, d := range []string{"archive", "archive/1.2", "archive/1.2/3.4"} {
					if !a.isSynced(filepath.Join(dir, filepath.FromSlash(d))) {
						t.Errorf("%s not marked durable", d)
					}
				}
			})
		}
	}
}

// noRings makes a's commits sync from goroutines, as on a kernel without io_uring.
func noRings(a *Archive) { a.rings.disable(errors.New("test: no io_uring")) }
