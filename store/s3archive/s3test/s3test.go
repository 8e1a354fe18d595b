// Package s3test starts a real S3 server for tests: versitygw (Apache-2.0) on its posix backend
// in a temporary folder, built into third_party/versitygw by scripts/deps.sh test.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/espnode/espnode/internal/testutil"
)

// Version is the versitygw release scripts/deps.sh builds.
const Version = "v1.8.0"

// startTimeout bounds how long the server may take to answer.
const startTimeout = 30 * time.Second

// Server is one running versitygw with one bucket.
type Server struct {
	Endpoint, Bucket, AccessKeyID, SecretAccessKey, Region string

	bin, root, addr string
	log             *logBuffer
	cmd             *exec.Cmd
	exited          chan struct{}
}

// logBuffer holds the server's output; the process writes it while a failing test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Binary returns the versitygw that scripts/deps.sh test built, failing the test with what to
// run when it is missing or of another version.
func Binary(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(testutil.RepoRoot(t), "third_party", "versitygw")
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("versitygw not found at %s: run scripts/deps.sh test (it builds versitygw %s from the Go module proxy)", bin, Version)
	}
	if v, _ := os.ReadFile(filepath.Join(dir, "VERSION")); string(bytes.TrimSpace(v)) != Version {
		t.Fatalf("versitygw at %s is not %s (VERSION says %q): run scripts/deps.sh test", bin, Version, bytes.TrimSpace(v))
	}
	return bin
}

// Start starts versitygw on a free port of 127.0.0.1 over a posix root in t.TempDir() and
// makes a bucket; it is stopped in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	var key [8]byte
	rand.Read(key[:])
	s := &Server{
		Bucket:          "espnode-test",
		AccessKeyID:     "espnode" + hex.EncodeToString(key[:4]),
		SecretAccessKey: hex.EncodeToString(key[:]) + "secret",
		Region:          "us-east-1",
		bin:             Binary(t),
		root:            t.TempDir(),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ln.Close()
	s.Endpoint = "http://" + s.addr
	t.Cleanup(s.stop)
	s.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("versitygw: create bucket %s: %v\n%s", s.Bucket, err, s.log)
	}
	return s
}

// start runs the server and waits until it accepts connections.
func (s *Server) start(t testing.TB) {
	t.Helper()
	s.log = &logBuffer{}
	s.cmd = exec.Command(s.bin, "--port", s.addr, "--access", s.AccessKeyID, "--secret", s.SecretAccessKey,
		"--region", s.Region, "--quiet", "posix", s.root)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	dieWithParent(s.cmd)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("versitygw exited at start: %v\n%s", s.cmd.ProcessState, s.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw does not answer on %s after %s\n%s", s.addr, startTimeout, s.log)
		}
	}
}

// Stop kills the server (SIGKILL: what it had acknowledged is on disk); Restart starts it again
// on the same folder and port.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop()
}

// Restart starts a stopped server again, with the objects it held.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.start(t)
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// Env returns the AWS variables that point a child process at the server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_REGION=" + s.Region,
		"AWS_ACCESS_KEY_ID=" + s.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
	}
}

// Client returns an S3 client of the server (path-style addressing), for a test's own checks.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
	})
}

// Keys returns every object key of the bucket under prefix with its size.
func (s *Server) Keys(ctx context.Context, prefix string) (map[string]int64, error) {
	keys := map[string]int64{}
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("versitygw: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			keys[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	return keys, nil
}

// Uploads returns the keys of the multipart uploads in progress under prefix.
func (s *Server) Uploads(ctx context.Context, prefix string) ([]string, error) {
	out, err := s.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.Bucket, Prefix: &prefix})
	if err != nil {
		return nil, fmt.Errorf("versitygw: list multipart uploads %q: %w", prefix, err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys, nil
}

// Root is the posix folder the server keeps its buckets in.
func (s *Server) Root() string { return s.root }

// Port is the server's TCP port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}
