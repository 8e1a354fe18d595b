package fsarchive

import (
	"fmt"
	"os"
	"sync"
)

// maxOpenDirs bounds the directory handles kept open for fsync.
const maxOpenDirs = 64

// dirHandles keeps directories open for the fsyncs that make entries in them durable: the
// archive root and a series' directory take one fsync per object, and opening them again for
// each cost as much as the fsync's call. A handle is closed only when no sync is using it, so a
// file descriptor is never synced after it was closed (and its number reused by another file).
type dirHandles struct {
	mu    sync.Mutex
	open  map[string]*dirHandle
	order []string // insertion order, for eviction
	// beforeSync, when set (tests), is called before each fsync; an error fails that sync.
	beforeSync func(dir string) error
}

type dirHandle struct {
	f       *os.File
	refs    int
	evicted bool
}

func newDirHandles() *dirHandles { return &dirHandles{open: map[string]*dirHandle{}} }

// sync fsyncs dir, making the entries created in it durable.
func (d *dirHandles) sync(dir string) error {
	h, err := d.acquireForSync(dir)
	if err != nil {
		return err
	}
	err = h.f.Sync()
	d.release(h)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// acquireForSync is acquire for a sync of dir about to start (the tests' beforeSync runs here);
// its errors name the sync.
func (d *dirHandles) acquireForSync(dir string) (*dirHandle, error) {
	if d.beforeSync != nil {
		if err := d.beforeSync(dir); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", dir, err)
		}
	}
	h, err := d.acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("fsync %s: %w", dir, err)
	}
	return h, nil
}

func (d *dirHandles) acquire(dir string) (*dirHandle, error) {
	d.mu.Lock()
	if h, ok := d.open[dir]; ok {
		h.refs++
		d.mu.Unlock()
		return h, nil
	}
	d.mu.Unlock()
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.open[dir]; ok {
		// Opened meanwhile by another sync: use that one.
		h.refs++
		f.Close()
		return h, nil
	}
	for len(d.order) >= maxOpenDirs {
		old := d.open[d.order[0]]
		delete(d.open, d.order[0])
		d.order = d.order[1:]
		old.evicted = true
		if old.refs == 0 {
			old.f.Close()
		}
	}
	h := &dirHandle{f: f, refs: 1}
	d.open[dir] = h
	d.order = append(d.order, dir)
	return h, nil
}

func (d *dirHandles) release(h *dirHandle) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.refs--; h.refs == 0 && h.evicted {
		h.f.Close()
	}
}

// close closes every handle; no sync may be running.
func (d *dirHandles) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.open {
		h.f.Close()
	}
	clear(d.open)
	d.order = nil
}
