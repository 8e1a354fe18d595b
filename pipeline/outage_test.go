package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store/compose"
	"github.com/espnode/espnode/store/postgres/pgtest"
)

// A shared index that is down while the model loads (a failover at a node's start) delays the
// segmentation workers; it does not leave the node without them until someone restarts it.
func TestWorkersStartAfterAnIndexOutage(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	st, err := compose.Open(ctx, compose.Options{Dir: t.TempDir(), Index: pg.NewDatabase(t), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := testConfig()
	cfg.RescueAfter = 5 * time.Minute
	pl, err := New(ctx, Options{Store: st, Config: cfg, AETitle: "ESPNODE", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pl.Stop(sctx)
	}()
	engine := testEngine(t)
	pg.Down(t)
	enabled := make(chan error, 1)
	go func() { enabled <- pl.EnableSegmentation(segment.New(engine), 1) }()
	time.Sleep(2 * time.Second)
	pg.Up(t)
	select {
	case err := <-enabled:
		if err != nil {
			t.Fatalf("segmentation after the index came back: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("EnableSegmentation still waiting two minutes after the index came back")
	}
	putFile(t, pl, testutil.SharedData(t, "dicom", "wrapped", "GM_gbm40_gbm40_25.dcm"), "SCU")
	waitUntil(t, "the job segmented after the outage", time.Minute, func() bool {
		return jobsByState(t, st)["segment/completed"] == 1
	})
}

// Stop ends the workers' retries: a node shut down during an index outage does not wait for it.
func TestStopEndsTheWorkersRetries(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	st, err := compose.Open(ctx, compose.Options{Dir: t.TempDir(), Index: pg.NewDatabase(t), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := testConfig()
	cfg.RescueAfter = 5 * time.Minute
	pl, err := New(ctx, Options{Store: st, Config: cfg, AETitle: "ESPNODE", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	engine := testEngine(t)
	pg.Down(t)
	defer pg.Up(t)
	enabled := make(chan error, 1)
	go func() { enabled <- pl.EnableSegmentation(segment.New(engine), 1) }()
	time.Sleep(time.Second)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pl.Stop(sctx)
	select {
	case err := <-enabled:
		if err == nil {
			t.Fatal("EnableSegmentation succeeded with the index down")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("EnableSegmentation still retrying 30 s after Stop")
	}
}
