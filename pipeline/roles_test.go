package pipeline

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store/datadir"
)

// TestIngestRunsNoJob: an ingest pipeline (NoWorkers) stores and enqueues in the instance's
// transaction, starts no worker, is ready without a model and refuses one.
func TestIngestRunsNoJob(t *testing.T) {
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	st, err := datadir.Open(ctx, datadir.Options{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pl, err := New(ctx, Options{Store: st, Config: testConfig(), AETitle: "ESPNODE", Logger: log, NoWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pl.Stop(ctx)
	putFile(t, pl, testutil.SharedData(t, "dicom", "wrapped", "OP_drishti-gs1_drishtiGS_012.dcm"), "SCU")
	time.Sleep(300 * time.Millisecond) // six poll intervals: a worker would have taken the job
	if got := jobsByState(t, st); !maps.Equal(got, map[string]int{"segment/available": 1}) {
		t.Errorf("jobs %v, want the segmentation job waiting for another node's worker", got)
	}
	if err := pl.Ready(); err != nil {
		t.Errorf("an ingest pipeline is not ready: %v", err)
	}
	if err := pl.EnableSegmentation(&segment.Segmenter{}, 1); err == nil {
		t.Error("an ingest pipeline took a model")
	}
}

// TestRescueAfterBound: a rescue threshold that a running delivery could reach is refused.
func TestRescueAfterBound(t *testing.T) {
	for _, tt := range []struct {
		after time.Duration
		ok    bool
	}{{0, true}, {3 * time.Minute, true}, {2 * time.Minute, false}, {-time.Second, false}} {
		c := testConfig()
		c.RescueAfter = tt.after
		if err := c.check(); (err == nil) != tt.ok || err != nil && !strings.Contains(err.Error(), "rescue after") {
			t.Errorf("rescue after %s with a %s delivery timeout: %v", tt.after, c.DeliverTimeout, err)
		}
	}
}
