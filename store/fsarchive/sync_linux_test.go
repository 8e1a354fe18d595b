package fsarchive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestCommitDropsCachedPages: once an object is durable its pages leave the page cache, and it
// still reads back whole (from the disk).
func TestCommitDropsCachedPages(t *testing.T) {
	const key = "archive/1.2/3.4/5.6.dcm"
	content := bytes.Repeat([]byte("espnode "), 1<<17) // 1 MiB, 256 pages
	for _, tt := range []struct {
		name   string
		before bool // the key is committed once first, so the second Commit is a replacement
	}{{"new key", false}, {"replacement", true}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := diskDir(t)
			a := openArchive(t, dir)
			if tt.before {
				put(t, a, key, "old")
			}
			ctx := context.Background()
			w, err := a.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(content); err != nil {
				t.Fatal(err)
			}
			tmp := w.(*writer).f.Name()
			if n := residentPages(t, tmp); n == 0 {
				t.Fatal("no page of the object written is cached before Commit: this check cannot see a drop")
			}
			if err := w.Commit(ctx, key); err != nil {
				t.Fatal(err)
			}
			if n := residentPages(t, filepath.Join(dir, filepath.FromSlash(key))); n != 0 {
				t.Errorf("%d of %d pages still cached after Commit", n, len(content)/os.Getpagesize())
			}
			if got := read(t, a, key, 0); got != string(content) {
				t.Errorf("object reads %d bytes, want %d", len(got), len(content))
			}
		})
	}
}

// diskDir is a temporary folder on a file system with a page cache to drop: the test's own
// (TMPDIR), or, where that is tmpfs (Debian's /tmp by default), one beside the package's source.
func diskDir(t *testing.T) string {
	t.Helper()
	onTmpfs := func(dir string) bool {
		var fsys unix.Statfs_t
		if err := unix.Statfs(dir, &fsys); err != nil {
			t.Fatal(err)
		}
		return fsys.Type == unix.TMPFS_MAGIC
	}
	if dir := t.TempDir(); !onTmpfs(dir) {
		return dir
	}
	dir, err := os.MkdirTemp(".", ".test-pages-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if onTmpfs(dir) {
		t.Fatalf("%s and TMPDIR are on tmpfs, whose pages cannot be dropped: set TMPDIR to a folder on a disk", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// residentPages counts the pages of a file in the page cache (mincore of a shared mapping, which
// maps the cache and reads nothing).
func residentPages(t *testing.T, name string) int {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)),
		uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

func idleRings(a *Archive) int {
	a.rings.mu.Lock()
	defer a.rings.mu.Unlock()
	return len(a.rings.free)
}

// ringsWork reports whether this kernel gives an io_uring, saying why not when it does not.
func ringsWork(t *testing.T) bool {
	r, err := newSyncRing()
	if err != nil {
		t.Skipf("this kernel refuses io_uring (%v): the archive syncs from goroutines, which TestCommitSyncs covers", err)
		return false
	}
	r.close()
	return true
}

// TestNewKeySyncsThroughRing: where the kernel has io_uring, a new key's syncs go through a ring,
// which goes back to the pool for the next commit.
func TestNewKeySyncsThroughRing(t *testing.T) {
	if !ringsWork(t) {
		return
	}
	a := openArchive(t, t.TempDir())
	put(t, a, "archive/1.2/3.4/5.6.dcm", "new")
	put(t, a, "archive/1.2/3.4/5.7.dcm", "new")
	if n := idleRings(a); n != 1 {
		t.Fatalf("%d rings idle after two commits, want the one both used", n)
	}
}
