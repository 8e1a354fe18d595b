//go:build !linux

package fsarchive

import "os"

// syncData makes a new object's bytes durable (fsync: fdatasync is Linux's).
func syncData(f *os.File) error { return f.Sync() }

const writebackChunk = 0

func startWriteback(*os.File, int64, int64) {}

// ringPool has no io_uring to lend here: syncTogether syncs from goroutines.
type ringPool struct{}

type syncRing struct{}

func newRingPool() *ringPool                 { return &ringPool{} }
func (*ringPool) get(int) (*syncRing, error) { return nil, nil }
func (*ringPool) put(*syncRing)              {}
func (*ringPool) close()                     {}
func (*ringPool) disable(error)              {}
func (*syncRing) close()                     {}

func (a *Archive) syncByRing(*syncRing, *os.File, []string) (error, error) { return nil, nil }
