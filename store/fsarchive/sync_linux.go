package fsarchive

import (
	"os"
	"syscall"
)

// syncData makes a new object's bytes durable. fdatasync flushes the data and what is needed to
// read it back (size, block map) but not the times, which nothing depends on: what fsync adds
// for a file whose name the directory sync makes durable.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
