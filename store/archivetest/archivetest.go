// Package archivetest is the contract of store.Archive as tests: every archive engine runs Run
// against a fresh archive of its own, so that the engines behave alike.
package archivetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"testing"

	"github.com/espnode/espnode/store"
)

// LargeSize is the size of the object TestLarge writes: past any part size an engine buffers.
const LargeSize = 20 << 20

// Pattern returns n bytes that differ from offset to offset, so that a part written twice,
// dropped or misplaced shows.
func Pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// Put writes content as one object under key, in writes of 64 KiB as the Store makes them.
func Put(t testing.TB, a store.Archive, key string, content []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := a.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(w, content); err != nil {
		w.Abort()
		t.Fatal(err)
	}
	if err := w.Commit(ctx, key); err != nil {
		w.Abort()
		t.Fatal(err)
	}
}

func write(w io.Writer, content []byte) error {
	for len(content) > 0 {
		n := min(len(content), 64<<10)
		if _, err := w.Write(content[:n]); err != nil {
			return err
		}
		content = content[n:]
	}
	return nil
}

// Read returns the object under key from offset on.
func Read(t testing.TB, a store.Archive, key string, offset int64) []byte {
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
	return b
}

func missing(t testing.TB, a store.Archive, key, when string) {
	t.Helper()
	rc, err := a.Open(context.Background(), key, 0)
	if err == nil {
		rc.Close()
		t.Errorf("%s: %s is readable", when, key)
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: Open(%s): %v, want an error wrapping fs.ErrNotExist", when, key, err)
	}
}

// Run runs the contract against the archives open returns (a fresh, empty one per call).
func Run(t *testing.T, open func(t *testing.T) store.Archive) {
	t.Run("Objects", func(t *testing.T) { testObjects(t, open(t)) })
	t.Run("Abort", func(t *testing.T) { testAbort(t, open(t)) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open(t)) })
	t.Run("Large", func(t *testing.T) { testLarge(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
}

// testObjects: an object is invisible until committed, then readable from any offset (at or past
// its end: nothing), replaced by a commit under the same key, and gone after Remove (twice is
// fine); an empty object is an object.
func testObjects(t *testing.T, a store.Archive) {
	ctx := context.Background()
	const key = "archive/1.2/3.4/5.6.dcm"
	missing(t, a, key, "before anything")
	w, err := a.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "0123456789")
	missing(t, a, key, "before Commit")
	if err := w.Commit(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if err := w.Commit(ctx, key); err == nil {
		t.Error("a second Commit succeeded")
	}
	for _, c := range []struct {
		offset int64
		want   string
	}{{0, "0123456789"}, {4, "456789"}, {9, "9"}, {10, ""}, {11, ""}, {1 << 40, ""}} {
		if got := string(Read(t, a, key, c.offset)); got != c.want {
			t.Errorf("read from offset %d: %q, want %q", c.offset, got, c.want)
		}
	}
	Put(t, a, key, []byte("new"))
	if got := string(Read(t, a, key, 0)); got != "new" {
		t.Errorf("replaced object reads %q", got)
	}
	Put(t, a, "archive/1.2/3.4/empty.dcm", nil)
	if got := Read(t, a, "archive/1.2/3.4/empty.dcm", 0); len(got) != 0 {
		t.Errorf("empty object reads %q", got)
	}
	for range 2 {
		if err := a.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	missing(t, a, key, "after Remove")
	if err := a.Remove(ctx, "archive/9.9/9.9/never.dcm"); err != nil {
		t.Errorf("Remove of a key never written: %v", err)
	}
}

// testAbort: an aborted object is under no key, a Commit after Abort fails, and a second Abort is
// harmless; an object aborted after outgrowing any buffer leaves nothing either.
func testAbort(t *testing.T, a store.Archive) {
	ctx := context.Background()
	for _, size := range []int{4, LargeSize} {
		w, err := a.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(w, Pattern(size, size)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort of %d bytes: %v", size, err)
		}
		if err := w.Abort(); err != nil {
			t.Errorf("second Abort: %v", err)
		}
		if err := w.Commit(ctx, "archive/a/b/c.dcm"); err == nil {
			t.Errorf("Commit after Abort of %d bytes succeeded", size)
		}
		missing(t, a, "archive/a/b/c.dcm", fmt.Sprintf("after Abort of %d bytes", size))
	}
}

// testKeys: no key leaves the archive's space.
func testKeys(t *testing.T, a store.Archive) {
	ctx := context.Background()
	for _, key := range []string{"", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a/", ".", ".."} {
		w, err := a.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "x")
		if err := w.Commit(ctx, key); err == nil {
			t.Errorf("Commit(%q) succeeded", key)
		}
		w.Abort()
		if rc, err := a.Open(ctx, key, 0); err == nil {
			rc.Close()
			t.Errorf("Open(%q) succeeded", key)
		}
		if err := a.Remove(ctx, key); err == nil {
			t.Errorf("Remove(%q) succeeded", key)
		}
	}
}

// testLarge: an object of LargeSize reads back whole and from offsets inside it, replaces a small
// one and is replaced by one.
func testLarge(t *testing.T, a store.Archive) {
	const key = "archive/1.2/3.4/large.dcm"
	Put(t, a, key, []byte("small"))
	content := Pattern(1, LargeSize)
	Put(t, a, key, content)
	if got := Read(t, a, key, 0); !bytes.Equal(got, content) {
		t.Fatalf("large object reads %d bytes (sha256 %x), want %d (%x)", len(got), sha256.Sum256(got), len(content), sha256.Sum256(content))
	}
	for _, off := range []int64{1, 5<<20 + 3, LargeSize - 1} {
		if got := Read(t, a, key, off); !bytes.Equal(got, content[off:]) {
			t.Errorf("read from %d: %d bytes, want %d", off, len(got), len(content)-int(off))
		}
	}
	Put(t, a, key, []byte("small again"))
	if got := string(Read(t, a, key, 0)); got != "small again" {
		t.Errorf("replaced large object reads %q", got)
	}
}

// testConcurrent: objects written from several goroutines at once land under their keys.
func testConcurrent(t *testing.T, a store.Archive) {
	ctx := context.Background()
	const n = 16
	key := func(i int) string { return fmt.Sprintf("archive/1.%d/1.%d.%d/1.%d.%d.1.dcm", i%3, i%3, i, i%3, i) }
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			w, err := a.Create(ctx)
			if err == nil {
				err = write(w, Pattern(i, 1000+i))
			}
			if err == nil {
				err = w.Commit(ctx, key(i))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got := Read(t, a, key(i), 0); !bytes.Equal(got, Pattern(i, 1000+i)) {
			t.Errorf("object %d reads %d bytes, not what was written", i, len(got))
		}
	}
}
