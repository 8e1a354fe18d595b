package fsarchive

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much of a new object is written before the kernel is asked to start
// writing it out: by Commit most of the object is on its way to the disk already, and the
// fdatasync that Success waits for has only the tail left.
const writebackChunk = 256 << 10

// startWriteback asks the kernel to begin writing [off, off+n) of f to the disk and returns at
// once (SYNC_FILE_RANGE_WRITE waits for nothing, and promises nothing: durability is still
// syncData's). A failure is ignored for the same reason.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { _ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

// syncData makes a new object's bytes durable, then lets the kernel forget its cached pages.
//
// fdatasync flushes the data and what is needed to read it back (size, block map) but not the
// times, which nothing depends on: what fsync adds for a file whose name the directory sync makes
// durable.
//
// The pages are clean once it returns, so dropping them (fadvise DONTNEED) loses nothing: a later
// read comes from the disk. The archive is written once and read rarely, and keeping every
// object received would fill the page cache with them, evicting the index's pages first. Under a
// hypervisor that reclaims the guest's free memory (free page reporting: Firecracker, and KVM
// guests with virtio-balloon), the pages freed here are also the ones the next object is written
// into while the host still backs them; fresh ones cost a fault in the host on first touch,
// which made the file writes of a 531 KB object take 1.5 ms instead of 0.1 (docs/PERFORMANCE.md,
// "Ingest"). The advice follows a successful sync only, and its own failure is ignored.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				break
			}
		}
		if serr == nil {
			dropPages(int(fd))
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// dropPages lets the kernel forget the cached pages of the file open as fd, once a sync has made
// them clean (see syncData for why); a failure is ignored.
func dropPages(fd int) { _ = unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED) }
