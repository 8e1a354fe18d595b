//go:build unix

package dimse

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// pending reports, without blocking and without consuming anything, whether the peer has sent
// bytes that are not yet read. A read deadline in the past cannot do this: Go fails such a read
// before looking at the socket.
func (a *Association) pending() (bool, error) {
	if a.pduLeft > 0 || a.r.Buffered() > 0 {
		return true, nil
	}
	sc, ok := a.conn.(syscall.Conn)
	if !ok {
		return a.pendingByDeadline()
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, err
	}
	var rerr error
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	if err != nil {
		return false, err
	}
	switch {
	case errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EWOULDBLOCK):
		return false, nil
	case rerr != nil:
		return true, nil // let the read report it
	}
	return true, nil // data, or EOF (0 bytes): the reader reports which
}
