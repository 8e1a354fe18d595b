// Package pgtest starts a real PostgreSQL server for tests: Debian's binaries (package
// postgresql), a cluster made by initdb in a temporary folder, on a free port of 127.0.0.1, with
// its Unix socket in that folder, stopped and removed when the test ends. PostgreSQL refuses to
// run as root, and CI runs the tests as root: then the server runs as the unprivileged user
// nobody, which owns the folder. The server is the test process's child (not daemonised as
// pg_ctl would), so that on Linux a test killed by its timeout takes it along.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one running PostgreSQL server. Its superuser is postgres, without a password
// (trust authentication, on 127.0.0.1 only).
type Server struct {
	Host string
	Port int

	bin, dir string
	cred     *syscall.Credential
	dbs      atomic.Int64
	// server is the running postmaster; exited is closed when it has exited.
	server *exec.Cmd
	exited chan struct{}
}

// Start initialises a cluster and starts its server; t.Cleanup stops it and removes its files.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("PostgreSQL: %v: install the server (apt-get install postgresql, or scripts/deps.sh test)", err)
	}
	// Not t.TempDir: its folders are private to the test's user, and the server's user must
	// reach its data directory.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Host: "127.0.0.1", bin: bin, dir: dir}
	t.Cleanup(func() {
		s.stop(syscall.SIGQUIT) // immediate shutdown: the data goes with the folder
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		uid, gid := 65534, 65534
		if u, err := user.Lookup("nobody"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := s.command("initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Port = freePort(t)
	s.start(t)
	if _, err := s.exec(t, "postgres", "CREATE DATABASE espnode"); err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	return s
}

// binDir finds the folder of initdb and postgres: Debian keeps them out of PATH, under
// /usr/lib/postgresql/VERSION/bin (the newest version wins).
func binDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return vb - va
	})
	if len(found) > 0 {
		return filepath.Dir(found[0]), nil
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("no initdb in /usr/lib/postgresql/*/bin or PATH")
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// command runs a PostgreSQL program as the server's user, in a clean environment: PG*
// variables of the caller's would point it elsewhere.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"LC_ALL=C", "HOME=" + s.dir, "PATH=" + s.bin + ":/usr/bin:/bin"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// start runs the postmaster and waits until it accepts connections; a server that exits or
// does not answer within a minute fails the test with its log.
func (s *Server) start(t testing.TB) {
	t.Helper()
	logPath := filepath.Join(s.dir, "log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := s.command("postgres", "-D", s.dataDir(), "-p", strconv.Itoa(s.Port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	s.server, s.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.urlOf("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres exited at start: %v\nserver log:\n%s", cmd.ProcessState, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres does not accept connections after a minute: %v\nserver log:\n%s", err, log)
		}
	}
}

// stop signals the postmaster (SIGINT: fast shutdown, SIGQUIT: immediate) and waits for it.
func (s *Server) stop(sig syscall.Signal) {
	if s.server == nil {
		return
	}
	s.server.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.server.Process.Kill()
		<-s.exited
	}
	s.server = nil
}

// Restart stops the server (fast shutdown: open connections are cut, as a failover cuts them)
// and starts it again on the same port with the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Down(t)
	s.Up(t)
}

// Down stops the server as Restart does, and leaves it stopped until Up: an outage, not a blip.
func (s *Server) Down(t testing.TB) {
	t.Helper()
	s.stop(syscall.SIGINT)
}

// Up starts a server that Down stopped, on the same port with the same data.
func (s *Server) Up(t testing.TB) {
	t.Helper()
	s.start(t)
}

// URL is the database espnode of the server, made at Start.
func (s *Server) URL() string { return s.urlOf("espnode") }

func (s *Server) urlOf(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", s.Host, s.Port, db)
}

// NewDatabase makes an empty database and returns its URL: tests sharing one server each get
// their own.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	if _, err := s.exec(t, "postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	return s.urlOf(name)
}

// exec runs one statement on the database db as the superuser.
func (s *Server) exec(t testing.TB, db, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.urlOf(db))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql)
	return strings.TrimSpace(tag.String()), err
}
