package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/store/compose"
	"github.com/espnode/espnode/store/postgres/pgtest"
	"github.com/espnode/espnode/store/s3archive/s3test"
)

// serveRole runs serve with cfg until the test ends, and waits for its HTTP endpoint.
func serveRole(t *testing.T, cfg config.Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("node did not stop within 15 s")
		}
	})
	waitFor(t, "the node's HTTP endpoint", 10*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("node exited at start: %v", err)
		default:
		}
		c, err := net.Dial("tcp", cfg.HTTP.Addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// pgJobCounts counts the shared queue's jobs by "kind/state", as `espnode jobs` sees them.
func pgJobCounts(t *testing.T, url string) map[string]int {
	t.Helper()
	queue, err := compose.OpenQueue(context.Background(), compose.Options{Index: url})
	if err != nil {
		t.Fatal(err)
	}
	defer queue.Close()
	admin, err := pipeline.NewAdmin(queue)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := admin.List(context.Background(), nil, nil, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, j := range jobs {
		out[strings.TrimPrefix(j.Kind, "espnode.")+"/"+string(j.State)]++
	}
	return out
}

// TestRolesOnPostgres: two nodes with data directories of their own share a PostgreSQL index and
// an S3 archive. The ingest node stores and enqueues but runs no job, and is ready without a
// model; the worker node has no DICOM listener and no DICOMweb, runs the jobs from the shared
// queue, reading the sources the other node stored, and delivers the SEGs; `espnode jobs` and
// /metrics read the shared queue.
func TestRolesOnPostgres(t *testing.T) {
	pipelineORT(t)
	pg := pgtest.Start(t)
	s3 := s3test.Start(t)
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	destDir := t.TempDir()
	destPort := startStorescp(t, destDir)
	dest := config.Peer{AETitle: "STORESCP", Host: "127.0.0.1", Port: destPort}
	cluster := func(c *config.Config, role string) {
		withPipeline(dest)(c)
		c.Index, c.Archive, c.Role = pg.URL(), "s3://"+s3.Bucket+"/roles", role
		c.S3.PathStyle = true
	}
	files := []string{
		testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD092.dcm"),
		testutil.SharedData(t, "dicom", "wrapped", "GM_gbm40_gbm40_25.dcm"),
	}

	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := startNode(t, func(c *config.Config) {
		cluster(c, config.RoleIngest)
		c.HTTP.Addr = httpAddr
	})
	storescu(t, n.port, files)
	if code, body := httpGet(t, "http://"+httpAddr+"/readyz"); code != 200 {
		t.Errorf("/readyz of an ingest node: %d %s (it waits for no model)", code, body)
	}
	time.Sleep(time.Second) // a worker would have taken the jobs by now
	if jobs := pgJobCounts(t, pg.URL()); jobs["segment/available"] != len(files) || len(jobs) != 1 {
		t.Errorf("jobs %v, want %d segment jobs waiting", jobs, len(files))
	}

	cfg := config.Default()
	cluster(&cfg, config.RoleWorker)
	cfg.DataDir = t.TempDir()
	cfg.DICOM.Host, cfg.DICOM.Port = "127.0.0.1", freePort(t)
	cfg.HTTP.Addr, cfg.HTTP.Viewer.Addr = fmt.Sprintf("127.0.0.1:%d", freePort(t)), ""
	serveRole(t, cfg)
	if c, err := net.Dial("tcp", cfg.DICOM.Addr()); err == nil {
		c.Close()
		t.Error("a worker listens for DICOM")
	}
	if code, _ := httpGet(t, "http://"+cfg.HTTP.Addr+"/dicom-web/studies"); code != 404 {
		t.Errorf("a worker serves DICOMweb: %d", code)
	}
	waitFor(t, "a SEG per source at storescp", 2*time.Minute, func() bool { return len(receivedSEGs(t, destDir)) == len(files) })
	waitFor(t, "every job to finish", time.Minute, func() bool { return jobsSettled(pgJobCounts(t, pg.URL())) })
	jobs := pgJobCounts(t, pg.URL())
	if jobs["segment/completed"] != len(files) || jobs["deliver/completed"] != len(files) {
		t.Errorf("jobs %v, want every segmentation and delivery completed", jobs)
	}
	if keys, err := s3.Keys(context.Background(), "roles/"); err != nil || len(keys) != 2*len(files) {
		t.Errorf("objects in the bucket: %v (%v), want the sources and their SEGs", keys, err)
	}
	_, metrics := httpGet(t, "http://"+cfg.HTTP.Addr+"/metrics")
	if !strings.Contains(metrics, `espnode_jobs{kind="espnode.deliver",state="completed"} 2`) {
		t.Errorf("/metrics does not count the shared queue's deliveries:\n%s", grepLines(metrics, "espnode_jobs"))
	}
	t.Setenv("ESPNODE_INDEX", pg.URL())
	out, code := jobsCmd(t, "list", "--data-dir", t.TempDir())
	if code != 0 || strings.Count(out, "completed") != 2*len(files) {
		t.Errorf("espnode jobs list on the shared queue: exit %d\n%s", code, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
