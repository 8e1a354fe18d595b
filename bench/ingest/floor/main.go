// Command floor measures what fsync-per-object ingest costs on this machine without espnode:
// a child process streams N objects of SIZE bytes over loopback TCP (16 KiB writes, as
// storescu's PDUs), and the receiver does what the archive does with each and nothing else:
// 32 KiB reads teed into a 64 KiB buffered file in a temporary folder, then (with -sync)
// fdatasync, rename into place and the directory's fsync, then a one-byte answer. It prints
// objects per second, the time spent in the file writes and the receiver's CPU per object,
// with and without the syncs, so that espnode's figures in bench/ingest have a floor to be
// read against (docs/PERFORMANCE.md, "Ingest"). With -drop a synced object's pages leave the
// page cache at once (fadvise DONTNEED), as the archive's do. With -touch it measures instead
// what the first write to each page of fresh memory costs, right after the same amount was freed
// and after pauses: on a guest whose host takes back free memory, the pauses cost more. With
// -direct each object bypasses the page cache (O_DIRECT from one page-aligned buffer, whole
// blocks, the tail padded and the file truncated to its size), the alternative to -drop.
//
//	go run ./bench/ingest/floor -n 500 -size 543744   # rounds: sync, none, sync, none
//	go run ./bench/ingest/floor -plain-first          # none, sync, none, sync
//	go run ./bench/ingest/floor -drop                 # syncing rounds drop what they wrote
//	go run ./bench/ingest/floor -direct               # no page cache at all (O_DIRECT)
//	go run ./bench/ingest/floor -touch                # 512 MiB, pauses of 0, 0, 5, 0, 10, 0 s
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 500, "objects")
	size := flag.Int("size", 531<<10, "bytes an object (the shared CT slice is 531 KB)")
	plainFirst := flag.Bool("plain-first", false, "begin with a round without the syncs (the first round of a process is its slowest)")
	drop := flag.Bool("drop", false, "after the syncs, drop the object's pages from the page cache (as the archive does)")
	direct := flag.Bool("direct", false, "write each object with O_DIRECT from an aligned buffer (no page cache), the tail padded and the file truncated")
	touch := flag.Bool("touch", false, "measure the first write to each page of 512 MiB of fresh memory, after pauses, instead")
	send := flag.String("send", "", "internal: stream the objects to this address")
	flag.Parse()
	if *touch {
		if err := touchRounds(512<<20, []time.Duration{0, 0, 5 * time.Second, 0, 10 * time.Second, 0}); err != nil {
			fmt.Fprintln(os.Stderr, "floor: touch:", err)
			os.Exit(1)
		}
		return
	}
	if *send != "" {
		if err := sender(*send, *n, *size); err != nil {
			fmt.Fprintln(os.Stderr, "floor: send:", err)
			os.Exit(1)
		}
		return
	}
	for i := range 4 {
		if err := round(*n, *size, (i%2 == 0) != *plainFirst, *drop, *direct); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
	}
}

func sender(addr string, n, size int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 16<<10)
	ack := make([]byte, 1)
	for range n {
		for k := 0; k < size; k += len(buf) {
			if _, err := c.Write(buf[:min(len(buf), size-k)]); err != nil {
				return err
			}
		}
		if _, err := io.ReadFull(c, ack); err != nil {
			return err
		}
	}
	return nil
}

// round receives n objects from a child sender, syncing each or not (and, syncing, dropping its
// cached pages or not), and prints the figures.
func round(n, size int, sync, drop, direct bool) error {
	dir, err := os.MkdirTemp("", "floor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, "-send", ln.Addr().String(), "-n", fmt.Sprint(n), "-size", fmt.Sprint(size))
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		return err
	}
	defer child.Wait()
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()

	var writes time.Duration
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &before); err != nil {
		return err
	}
	start := time.Now()
	rbuf := make([]byte, 32<<10)
	var dbuf []byte
	if direct {
		if dbuf, err = unix.Mmap(-1, 0, 256<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE); err != nil {
			return err
		}
		defer unix.Munmap(dbuf)
	}
	for i := range n {
		f, err := os.CreateTemp(dir, "put-*.part")
		if err != nil {
			return err
		}
		var w interface {
			io.Writer
			Flush() error
		} = bufio.NewWriterSize(timed{f, &writes}, 64<<10)
		if direct {
			if w, err = newDirectWriter(f, dbuf, &writes); err != nil {
				return err
			}
		}
		for left := size; left > 0; {
			m, err := c.Read(rbuf[:min(len(rbuf), left)])
			if err != nil {
				return err
			}
			if _, err := w.Write(rbuf[:m]); err != nil {
				return err
			}
			left -= m
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if sync {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				return err
			}
			if drop {
				if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
					return err
				}
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), filepath.Join(dir, fmt.Sprintf("obj%d", i))); err != nil {
			return err
		}
		if sync {
			d, err := os.Open(dir)
			if err != nil {
				return err
			}
			err = d.Sync()
			d.Close()
			if err != nil {
				return err
			}
		}
		if _, err := c.Write([]byte{1}); err != nil {
			return err
		}
	}
	wall := time.Since(start)
	if err := unix.Getrusage(unix.RUSAGE_SELF, &after); err != nil {
		return err
	}
	cpu := time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
	perObject := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	fmt.Printf("direct %-5v sync %-5v drop %-5v %4d objects: %6.0f objects/s, file writes %.3f ms/object, receiver CPU %.3f ms/object\n",
		direct, sync, sync && drop, n, float64(n)/wall.Seconds(), perObject(writes), perObject(cpu))
	return nil
}

// touchRounds maps n bytes of anonymous memory once per pause, after the pause, writes a byte
// to each page, unmaps it and prints the time a page took. The kernel gives each round the pages
// the last one freed; a pause lets the host take them back first.
func touchRounds(n int, pauses []time.Duration) error {
	page := os.Getpagesize()
	for _, pause := range pauses {
		time.Sleep(pause)
		m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return err
		}
		start := time.Now()
		for i := 0; i < n; i += page {
			m[i] = 1
		}
		d := time.Since(start)
		if err := unix.Munmap(m); err != nil {
			return err
		}
		fmt.Printf("after a pause of %4v: %4d MiB touched in %v, %.2f µs a page\n", pause, n>>20, d.Round(time.Millisecond),
			float64(d.Nanoseconds())/1000/float64(n/page))
	}
	return nil
}

// timed is the archive file, with the time its writes take added up.
type timed struct {
	f     *os.File
	total *time.Duration
}

func (t timed) Write(p []byte) (int, error) {
	start := time.Now()
	n, err := t.f.Write(p)
	*t.total += time.Since(start)
	return n, err
}

// directWriter writes through an O_DIRECT descriptor of the same file from a page-aligned
// buffer, whole blocks at a time; Flush pads the tail to a block and truncates to the real size.
type directWriter struct {
	fd    int
	buf   []byte
	n     int
	size  int64
	total *time.Duration
}

const directBlock = 4096

func newDirectWriter(f *os.File, buf []byte, total *time.Duration) (*directWriter, error) {
	fd, err := unix.Open(f.Name(), unix.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	return &directWriter{fd: fd, buf: buf, total: total}, nil
}

func (w *directWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := copy(w.buf[w.n:], p)
		w.n += k
		p = p[k:]
		written += k
		if w.n == len(w.buf) {
			if err := w.writeOut(w.n); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *directWriter) writeOut(n int) error {
	start := time.Now()
	padded := (n + directBlock - 1) / directBlock * directBlock
	clear(w.buf[n:padded])
	_, err := unix.Pwrite(w.fd, w.buf[:padded], w.size)
	*w.total += time.Since(start)
	w.size += int64(n)
	w.n = 0
	return err
}

func (w *directWriter) Flush() error {
	if w.n > 0 {
		if err := w.writeOut(w.n); err != nil {
			return err
		}
	}
	err := unix.Ftruncate(w.fd, w.size)
	return errors.Join(err, unix.Close(w.fd))
}
