package onnx

import (
	"io"
	"os"
	"sync"
	"syscall"
)

// Native libraries write to file descriptor 2 directly: Dawn (ONNX Runtime's WebGPU
// provider) prints a warning and a source location for every backend it cannot open, and the
// Vulkan loader prints its errors. While the package probes a GPU provider it points descriptor
// 2 at a pipe, keeps what arrives there for the reason it logs, and puts descriptor 2 back.

// maxNative bounds what a capture keeps of the native output; the rest is read and dropped.
const maxNative = 64 << 10

// stderrMu serialises captures: descriptor 2 is one per process, like the environment that
// envMu guards.
var stderrMu sync.Mutex

type stderrCapture struct {
	saved int
	w     *os.File
	out   chan []byte
}

// DupStderr returns a second descriptor of the process's standard error, for the Go program's
// own output (its logger). Descriptor 2 goes to a pipe while a GPU provider is probed; what the
// program writes through the duplicate meanwhile still reaches the terminal. If the duplicate
// cannot be made it returns os.Stderr, and such writes are kept with the native output instead.
func DupStderr() *os.File {
	fd, err := syscall.Dup(2)
	if err != nil {
		return os.Stderr
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "/dev/stderr")
}

// captureStderr points descriptor 2 at a pipe until stop is called. If the descriptors cannot
// be juggled it captures nothing, and native output reaches the terminal as without it.
func captureStderr() *stderrCapture {
	stderrMu.Lock()
	r, w, err := os.Pipe()
	if err != nil {
		stderrMu.Unlock()
		return nil
	}
	saved, err := syscall.Dup(2)
	if err == nil {
		syscall.CloseOnExec(saved)
		err = syscall.Dup3(int(w.Fd()), 2, 0)
		if err != nil {
			syscall.Close(saved)
		}
	}
	if err != nil {
		r.Close()
		w.Close()
		stderrMu.Unlock()
		return nil
	}
	c := &stderrCapture{saved: saved, w: w, out: make(chan []byte, 1)}
	go func() {
		// Drained as it arrives, so that a chatty library never blocks on a full pipe.
		b, _ := io.ReadAll(io.LimitReader(r, maxNative))
		io.Copy(io.Discard, r)
		r.Close()
		c.out <- b
	}()
	return c
}

// stop puts descriptor 2 back and returns what was written to it meanwhile.
func (c *stderrCapture) stop() string {
	if c == nil {
		return ""
	}
	syscall.Dup3(c.saved, 2, 0)
	syscall.Close(c.saved)
	c.w.Close() // the last write end: the reader sees EOF
	b := <-c.out
	stderrMu.Unlock()
	return string(b)
}
