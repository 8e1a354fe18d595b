package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/fsarchive"
	"github.com/espnode/espnode/store/sqlite"
)

// namingArchive is fsarchive whose writers implement store.ObjectNamer and record each Name
// with how many bytes had been written when it came.
type namingArchive struct {
	*fsarchive.Archive
	named []naming
}

type naming struct {
	key     string
	written int
}

type namingWriter struct {
	store.ObjectWriter
	a       *namingArchive
	written int
}

func (a *namingArchive) Create(ctx context.Context) (store.ObjectWriter, error) {
	w, err := a.Archive.Create(ctx)
	return &namingWriter{ObjectWriter: w, a: a}, err
}

func (w *namingWriter) Write(p []byte) (int, error) {
	n, err := w.ObjectWriter.Write(p)
	w.written += n
	return n, err
}

func (w *namingWriter) Name(key string) error {
	w.a.named = append(w.a.named, naming{key, w.written})
	return nil
}

// TestPutNamesTheKeyEarly: a writer that can be told its key is told it once, before the pixel
// data is written, and the key is the one the object is committed under; an instance whose
// Study Instance UID is invalid names nothing (and is refused).
func TestPutNamesTheKeyEarly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fa, err := fsarchive.Open(dir, fsarchive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := sqlite.Open(ctx, filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	a := &namingArchive{Archive: fa}
	s, err := store.New(store.Options{Archive: a, Index: idx, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const pixels = 4 << 20
	inst, err := s.Put(ctx, handRequest(instanceAttrs("1.2.3", "1.2.3.4", "1.2.3.4.5"), pixels))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.named) != 1 || a.named[0].key != inst.Path {
		t.Fatalf("named %v, want %s once", a.named, inst.Path)
	}
	if a.named[0].written >= int(inst.Size)-pixels {
		t.Errorf("named after %d bytes of %d, when the pixel data had begun", a.named[0].written, inst.Size)
	}
	a.named = nil
	_, err = s.Put(ctx, handRequest(instanceAttrs("1.2.03", "1.2.3.4", "1.2.3.4.6"), 16))
	if err == nil || len(a.named) != 0 {
		t.Errorf("an invalid Study Instance UID: Put %v, named %v", err, a.named)
	}
}
