package s3archive

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/archivetest"
	"github.com/espnode/espnode/store/s3archive/s3test"
)

func testConfig(s *s3test.Server, prefix string) Config {
	return Config{Bucket: s.Bucket, Prefix: prefix, Endpoint: s.Endpoint, Region: s.Region,
		AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, PathStyle: true}
}

func openArchive(t testing.TB, cfg Config) *Archive {
	t.Helper()
	a, err := Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestContract runs the archive contract on one server, each run under a prefix of its own; a
// run leaves nothing but its objects: no staging object, no multipart upload.
func TestContract(t *testing.T) {
	s := s3test.Start(t)
	var prefixes []string
	archivetest.Run(t, func(t *testing.T) store.Archive {
		prefix := "espnode/" + strings.ReplaceAll(t.Name(), "/", "-")
		prefixes = append(prefixes, prefix)
		return openArchive(t, testConfig(s, prefix))
	})
	ctx := context.Background()
	for _, p := range prefixes {
		keys, err := s.Keys(ctx, p+"/"+StagingDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			t.Errorf("staging objects left under %s: %v", p, keys)
		}
	}
	if up, err := s.Uploads(ctx, ""); err != nil || len(up) > 0 {
		t.Errorf("multipart uploads left: %v %v", up, err)
	}
}

// write writes content to a new writer of a in the Store's 64 KiB writes.
func write(t *testing.T, a *Archive, content []byte) *writer {
	t.Helper()
	ow, err := a.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := ow.(*writer)
	for off := 0; off < len(content); off += 64 << 10 {
		if _, err := w.Write(content[off:min(off+64<<10, len(content))]); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// TestMultipart: a large object goes up in parts with never more than one part buffered, by
// each of the ways to its key: through a staging object and one server-side copy, through a
// ranged copy (S3's 5 GiB limit lowered), and directly to a key named in advance. Afterwards the
// bucket holds the object under its key and nothing else.
func TestMultipart(t *testing.T) {
	s := s3test.Start(t)
	ctx := context.Background()
	content := archivetest.Pattern(7, archivetest.LargeSize)
	const key = "archive/1.2/3.4/5.6.dcm"
	for _, c := range []struct {
		name  string
		setup func(a *Archive, w *writer)
	}{
		{"staged", func(*Archive, *writer) {}},
		{"ranged copy", func(a *Archive, _ *writer) { a.copyLimit, a.copyPart = 6<<20, MinPartSize }},
		{"named", func(_ *Archive, w *writer) { w.Name(key) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			prefix := "mp-" + strings.ReplaceAll(c.name, " ", "-")
			cfg := testConfig(s, prefix)
			cfg.PartSize = MinPartSize
			a := openArchive(t, cfg)
			ow, _ := a.Create(ctx)
			w := ow.(*writer)
			c.setup(a, w)
			for off := 0; off < len(content); off += 64 << 10 {
				if _, err := w.Write(content[off:min(off+64<<10, len(content))]); err != nil {
					t.Fatal(err)
				}
			}
			if w.peak != MinPartSize || cap(w.buf) > MinPartSize {
				t.Errorf("the writer buffered %d bytes at most (capacity %d), want the part size %d", w.peak, cap(w.buf), MinPartSize)
			}
			// The last part stays buffered until Commit: a write may still follow.
			if want := archivetest.LargeSize/MinPartSize - 1; len(w.parts) != want {
				t.Errorf("%d parts uploaded before Commit, want %d", len(w.parts), want)
			}
			if err := w.Commit(ctx, key); err != nil {
				t.Fatal(err)
			}
			if want := archivetest.LargeSize / MinPartSize; len(w.parts) != want {
				t.Errorf("%d parts uploaded, want %d", len(w.parts), want)
			}
			if got := archivetest.Read(t, a, key, 0); !bytes.Equal(got, content) {
				t.Fatalf("object reads %d bytes, not what was written", len(got))
			}
			keys, err := s.Keys(ctx, prefix+"/")
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]int64{prefix + "/" + key: archivetest.LargeSize}; !maps.Equal(keys, want) {
				t.Errorf("bucket holds %v, want %v", keys, want)
			}
			if up, err := s.Uploads(ctx, prefix+"/"); err != nil || len(up) > 0 {
				t.Errorf("multipart uploads left: %v %v", up, err)
			}
		})
	}
}

// TestNamedOtherKey: a writer named one key refuses to commit under another.
func TestNamedOtherKey(t *testing.T) {
	s := s3test.Start(t)
	a := openArchive(t, testConfig(s, ""))
	w := write(t, a, []byte("x"))
	if err := w.Name("archive/a/b/c.dcm"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background(), "archive/a/b/d.dcm"); err == nil {
		t.Error("Commit under another key than the one named succeeded")
	}
	w.Abort()
}

// TestCommitFailsWhenTheServerIsDown: with the server stopped, Commit of a small and of a large
// object fails (after the SDK's bounded retries) and nothing is under the key once it is back;
// the sweep of a later Open removes what the failed large write left.
func TestCommitFailsWhenTheServerIsDown(t *testing.T) {
	s := s3test.Start(t)
	ctx := context.Background()
	cfg := testConfig(s, "down")
	cfg.PartSize = MinPartSize
	a := openArchive(t, cfg)
	small := write(t, a, []byte("small"))
	large := write(t, a, archivetest.Pattern(3, 12<<20))
	s.Stop(t)
	for name, w := range map[string]*writer{"small": small, "large": large} {
		if err := w.Commit(ctx, "archive/1/2/"+name+".dcm"); err == nil {
			t.Errorf("Commit of the %s object succeeded with the server down", name)
		}
		if err := w.Abort(); err == nil && name == "large" {
			t.Error("Abort of a multipart upload succeeded with the server down")
		}
	}
	s.Restart(t)
	for _, name := range []string{"small", "large"} {
		if _, err := a.Open(ctx, "archive/1/2/"+name+".dcm", 0); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
	if up, _ := s.Uploads(ctx, "down/"); len(up) != 1 {
		t.Fatalf("uploads after the failed large write: %v, want its one", up)
	}
	if err := a.sweep(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if up, _ := s.Uploads(ctx, "down/"); len(up) != 0 {
		t.Errorf("uploads after the sweep: %v", up)
	}
}

// TestSweep: Open removes staging objects and multipart uploads older than StaleAfter and keeps
// younger ones (a write in progress on another node) and every object.
func TestSweep(t *testing.T) {
	s := s3test.Start(t)
	ctx := context.Background()
	cfg := testConfig(s, "sweep")
	cfg.PartSize = MinPartSize
	a := openArchive(t, cfg)
	archivetest.Put(t, a, "archive/1/2/3.dcm", []byte("kept"))
	// A staging object and an upload as a killed writer leaves them.
	stale := write(t, a, archivetest.Pattern(1, 6<<20))
	stale.uploadPart(ctx)
	staged := write(t, a, archivetest.Pattern(2, 6<<20))
	staged.uploadPart(ctx)
	if _, err := a.client.CompleteMultipartUpload(ctx, completeInput(staged)); err != nil {
		t.Fatal(err)
	}
	keys, _ := s.Keys(ctx, "sweep/")
	up, _ := s.Uploads(ctx, "sweep/")
	if len(keys) != 2 || len(up) != 1 {
		t.Fatalf("before the sweep: %v, uploads %v", keys, up)
	}
	// Young: kept by an Open.
	openArchive(t, cfg)
	if k, _ := s.Keys(ctx, "sweep/"); len(k) != 2 {
		t.Errorf("a fresh staging object was removed: %v", k)
	}
	var log strings.Builder
	a.log = zerolog.New(&log)
	if err := a.sweep(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	keys, _ = s.Keys(ctx, "sweep/")
	up, _ = s.Uploads(ctx, "sweep/")
	if want := []string{"sweep/archive/1/2/3.dcm"}; !slices.Equal(slices.Collect(maps.Keys(keys)), want) || len(up) != 0 {
		t.Errorf("after the sweep: %v, uploads %v; want %v and none", keys, up, want)
	}
	if !strings.Contains(log.String(), `"staging_objects":1,"multipart_uploads":1`) {
		t.Errorf("log does not count what was removed: %s", log.String())
	}
}

// TestOpen: the AWS variables fill what the configuration leaves empty, and a server or bucket
// that cannot be reached is a clear error at Open.
func TestOpen(t *testing.T) {
	s := s3test.Start(t)
	ctx := context.Background()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	a := openArchive(t, Config{Bucket: s.Bucket, Prefix: "/env/", PathStyle: true})
	archivetest.Put(t, a, "archive/x.dcm", []byte("from the environment"))
	if keys, _ := s.Keys(ctx, "env/"); keys["env/archive/x.dcm"] != 20 {
		t.Errorf("object not under the prefix: %v", keys)
	}
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing bucket", Config{Bucket: "no-such-bucket", PathStyle: true}, `bucket "no-such-bucket"`},
		{"wrong secret", Config{Bucket: s.Bucket, AccessKeyID: s.AccessKeyID, SecretAccessKey: "wrong", PathStyle: true}, "cannot be reached"},
		{"no server", Config{Bucket: s.Bucket, Endpoint: "http://127.0.0.1:1", PathStyle: true}, "http://127.0.0.1:1"},
		{"half the credentials", Config{Bucket: s.Bucket, AccessKeyID: "x"}, "secret access key"},
		{"small parts", Config{Bucket: s.Bucket, PartSize: 1 << 20}, "part size"},
		{"bad bucket", Config{Bucket: "Bad_Bucket"}, "not a bucket name"},
		{"bad prefix", Config{Bucket: s.Bucket, Prefix: "a/../b"}, "prefix"},
		{"staging prefix", Config{Bucket: s.Bucket, Prefix: StagingDir}, "prefix"},
	} {
		a, err := Open(ctx, c.cfg, zerolog.Nop())
		if err == nil {
			a.Close()
			t.Errorf("%s: Open succeeded", c.name)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
		}
	}
	t.Setenv("AWS_REGION", "")
	if _, err := Open(ctx, Config{Bucket: s.Bucket}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("no region: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url, bucket, prefix string
		ok                  bool
	}{
		{"s3://bucket", "bucket", "", true},
		{"s3://bucket/", "bucket", "", true},
		{"s3://my.bucket-1/espnode/site-a/", "my.bucket-1", "espnode/site-a", true},
		{"s3://bucket/a//b", "", "", false},
		{"s3://bucket/../x", "", "", false},
		{"s3://bucket/.incoming", "", "", false},
		{"s3://Bucket/x", "", "", false},
		{"s3://b/x", "", "", false},
		{"s3://", "", "", false},
		{"https://bucket/x", "", "", false},
		{"file", "", "", false},
	} {
		bucket, prefix, err := ParseURL(c.url)
		if (err == nil) != c.ok || bucket != c.bucket || prefix != c.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v", c.url, bucket, prefix, err)
		}
	}
}

// TestStagingKeysAreNotKeys: the staging area is not reachable by a key.
func TestStagingKeysAreNotKeys(t *testing.T) {
	s := s3test.Start(t)
	a := openArchive(t, testConfig(s, ""))
	w := write(t, a, []byte("x"))
	if err := w.Commit(context.Background(), StagingDir+"/x"); err == nil {
		t.Error("Commit into the staging area succeeded")
	}
	w.Abort()
	if _, err := a.Open(context.Background(), StagingDir+"/x", 0); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a staging key: %v, want a refusal", err)
	}
}

func completeInput(w *writer) *s3.CompleteMultipartUploadInput {
	return &s3.CompleteMultipartUploadInput{Bucket: &w.a.bucket, Key: &w.uploadKey, UploadId: &w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts}}
}
