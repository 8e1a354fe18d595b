package fsarchive

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A syncRing is an io_uring (io_uring_setup(2)) that runs a new object's syncs, the file's
// fdatasync and its directories' fsyncs, as one submission and one wait, where goroutines would
// block a thread each (and on a virtual machine each thread that blocks and wakes costs a trip
// through the hypervisor). One association of CT slices ran 1.11x to 1.19x faster through it
// (docs/PERFORMANCE.md, "Ingest"). Only fsyncs go through it; the kernel runs them in its own
// workers, and they complete in any order.
type syncRing struct {
	fd             int
	sq, cq, sqes   []byte
	sqTail         *uint32
	sqArray        []uint32
	cqHead, cqTail *uint32
	sqMask, cqMask uint32
	cqesOff        uint32
	entries        uint32
}

// The parts of struct io_uring_params, io_uring_sqe and io_uring_cqe (linux/io_uring.h) used here.
type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

type uringSQE struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len           uint32
	opFlags       uint32
	userData      uint64
	pad           [3]uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

const (
	uringOpFsync        = 3          // IORING_OP_FSYNC
	uringFsyncDatasync  = 1          // IORING_FSYNC_DATASYNC
	uringEnterGetEvents = 1          // IORING_ENTER_GETEVENTS
	uringOffSQRing      = 0          // IORING_OFF_SQ_RING
	uringOffCQRing      = 0x8000000  // IORING_OFF_CQ_RING
	uringOffSQEs        = 0x10000000 // IORING_OFF_SQES
	uringEntries        = 8          // a new study's object: its file and three directories
)

func newSyncRing() (*syncRing, error) {
	var p uringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uringEntries, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &syncRing{fd: int(fd), entries: p.sqEntries}
	mmap := func(off int64, n uint32) ([]byte, error) {
		return unix.Mmap(r.fd, off, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	}
	var err error
	if r.sq, err = mmap(uringOffSQRing, p.sqOff.array+p.sqEntries*4); err == nil {
		if r.cq, err = mmap(uringOffCQRing, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(uringCQE{}))); err == nil {
			r.sqes, err = mmap(uringOffSQEs, p.sqEntries*uint32(unsafe.Sizeof(uringSQE{})))
		}
	}
	if err != nil {
		r.close()
		return nil, fmt.Errorf("io_uring mmap: %w", err)
	}
	r.sqTail = (*uint32)(unsafe.Pointer(&r.sq[p.sqOff.tail]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&r.sq[p.sqOff.ringMask]))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Pointer(&r.sq[p.sqOff.array])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Pointer(&r.cq[p.cqOff.head]))
	r.cqTail = (*uint32)(unsafe.Pointer(&r.cq[p.cqOff.tail]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&r.cq[p.cqOff.ringMask]))
	r.cqesOff = p.cqOff.cqes
	return r, nil
}

func (r *syncRing) close() {
	for _, m := range [][]byte{r.sq, r.cq, r.sqes} {
		if m != nil {
			_ = unix.Munmap(m)
		}
	}
	_ = unix.Close(r.fd)
}

// sync runs fdatasync on fds[0] and fsync on each of the others, and returns each one's error
// once all have completed. The ring is the caller's alone meanwhile; after an error of the ring
// itself (the second result) it must be closed, not reused.
func (r *syncRing) sync(fds []int) ([]error, error) {
	n := uint32(len(fds))
	if n == 0 || n > r.entries {
		return nil, fmt.Errorf("io_uring: %d syncs for a ring of %d", n, r.entries)
	}
	tail := atomic.LoadUint32(r.sqTail)
	for i, fd := range fds {
		idx := (tail + uint32(i)) & r.sqMask
		sqe := (*uringSQE)(unsafe.Pointer(&r.sqes[uintptr(idx)*unsafe.Sizeof(uringSQE{})]))
		*sqe = uringSQE{opcode: uringOpFsync, fd: int32(fd), userData: uint64(i)}
		if i == 0 {
			sqe.opFlags = uringFsyncDatasync
		}
		r.sqArray[idx] = idx
	}
	// The store publishes the entries written above (Go's atomics are sequentially consistent).
	atomic.StoreUint32(r.sqTail, tail+n)
	errs := make([]error, n)
	var submitted, completed uint32
	for completed < n {
		ret, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n-submitted),
			uintptr(n-completed), uringEnterGetEvents, 0, 0)
		switch {
		case errno == syscall.EINTR:
		case errno != 0:
			return nil, fmt.Errorf("io_uring_enter: %w", errno)
		default:
			submitted += uint32(ret)
		}
		head := atomic.LoadUint32(r.cqHead)
		for end := atomic.LoadUint32(r.cqTail); head != end; head++ {
			cqe := (*uringCQE)(unsafe.Pointer(&r.cq[r.cqesOff+(head&r.cqMask)*uint32(unsafe.Sizeof(uringCQE{}))]))
			if cqe.userData >= uint64(n) {
				return nil, fmt.Errorf("io_uring: completion for entry %d of %d", cqe.userData, n)
			}
			if cqe.res < 0 {
				errs[cqe.userData] = syscall.Errno(-cqe.res)
			}
			completed++
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	return errs, nil
}

// ringPool lends syncRings to concurrent commits. When the kernel refuses io_uring (older than
// 5.1, kernel.io_uring_disabled, a seccomp profile) it lends none, and the syncs run from
// goroutines as before.
type ringPool struct {
	mu     sync.Mutex
	free   []*syncRing
	err    error // why no ring can be had; set once
	closed bool
}

// maxIdleRings bounds the rings kept between commits (each holds a descriptor and three maps).
const maxIdleRings = 16

func newRingPool() *ringPool { return &ringPool{} }

// get returns a ring for syncs syncs, or nil: when they are more than a ring holds, or when no
// ring can be had (and then, the first time, why).
func (p *ringPool) get(syncs int) (*syncRing, error) {
	p.mu.Lock()
	if p.err != nil || p.closed || syncs > uringEntries {
		p.mu.Unlock()
		return nil, nil
	}
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return r, nil
	}
	p.mu.Unlock()
	r, err := newSyncRing()
	if err != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err == nil {
			p.err = err
			return nil, err
		}
		return nil, nil
	}
	return r, nil
}

// disable makes get lend no more rings, as if the kernel had refused one for err.
func (p *ringPool) disable(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *ringPool) put(r *syncRing) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.free) >= maxIdleRings {
		r.close()
		return
	}
	p.free = append(p.free, r)
}

func (p *ringPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, r := range p.free {
		r.close()
	}
	p.free = nil
}

// syncByRing is syncTogether through r: it returns the syncs' errors, or, when the ring itself
// failed, ringErr (the caller then closes r and syncs without it).
func (a *Archive) syncByRing(r *syncRing, f *os.File, dirs []string) (syncErr, ringErr error) {
	fds := []int{int(f.Fd())}
	names := []string{f.Name()}
	handles := make([]*dirHandle, 0, len(dirs))
	defer func() {
		for _, h := range handles {
			a.dirs.release(h)
		}
	}()
	for _, d := range dirs {
		h, err := a.dirs.acquireForSync(d)
		if err != nil {
			syncErr = errors.Join(syncErr, err)
			continue
		}
		handles = append(handles, h)
		fds = append(fds, int(h.f.Fd()))
		names = append(names, d)
	}
	errs, err := r.sync(fds)
	if err != nil {
		return nil, err
	}
	for i, e := range errs {
		switch {
		case e == nil:
		case i == 0:
			syncErr = errors.Join(syncErr, &os.PathError{Op: "fdatasync", Path: names[0], Err: e})
		default:
			syncErr = errors.Join(syncErr, fmt.Errorf("fsync %s: %w", names[i], e))
		}
	}
	if errs[0] == nil {
		dropPages(fds[0])
	}
	runtime.KeepAlive(f)
	return syncErr, nil
}
