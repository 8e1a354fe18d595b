package pipeline

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	segrt "github.com/espnode/espnode/seg/runtime"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store"
)

// testEngine opens the shipped model on the CPU.
func testEngine(t *testing.T) *segrt.Engine {
	t.Helper()
	if os.Getenv(segrt.LibraryEnv) == "" {
		lib := filepath.Join(testutil.RepoRoot(t), "third_party", "onnxruntime", "libonnxruntime.so.1")
		if _, err := os.Stat(lib); err != nil {
			t.Fatalf("ONNX Runtime not found at %s: run scripts/deps.sh run", lib)
		}
		t.Setenv(segrt.LibraryEnv, lib)
	}
	path, err := segment.WriteShippedModel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := segrt.OpenUniversal(path, segrt.Options{Provider: segrt.ProviderCPU, Threads: 1, MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type testNode struct {
	dir string
	st  *store.Store
	pl  *Pipeline
}

// startPipeline opens a store and a pipeline over it with quick retries.
func startPipeline(t *testing.T, dir string, mutate func(*config.Pipeline), engine *segrt.Engine) *testNode {
	t.Helper()
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Pipeline
	cfg.PollInterval = 50 * time.Millisecond
	cfg.SegmentRetry = config.Retry{MaxAttempts: 2, Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.DeliveryRetry = config.Retry{MaxAttempts: 3, Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.SeriesIdle = 500 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	pl, err := New(ctx, Options{Store: st, DataDir: dir, Config: cfg, AETitle: "ESPNODE", Logger: log})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := pl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if engine != nil {
		if err := pl.EnableSegmentation(segment.New(engine), 2); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pl.Stop(sctx)
		st.Close()
	})
	return &testNode{dir: dir, st: st, pl: pl}
}

// putFile stores a Part-10 file through the pipeline as a C-STORE would.
func putFile(t *testing.T, pl *Pipeline, path, callingAE string) store.Instance {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := pl.Put(context.Background(), store.PutRequest{
		SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID, CallingAE: callingAE, CalledAE: "ESPNODE", Data: br,
	})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSegmentsStoredInstances(t *testing.T) {
	n := startPipeline(t, t.TempDir(), nil, testEngine(t))
	es := putFile(t, n.pl, testutil.SharedData(t, "dicom", "wrapped", "ES_polypgen_C3_EndoCV2021_00428.dcm"), "SCU")
	us := putFile(t, n.pl, testutil.SharedData(t, "dicom", "US_multiframe", "pydicom_OBXXXX1A_2fr_evrle_palette.dcm"), "SCU")
	for _, inst := range []store.Instance{es, us} {
		ch, _, _ := n.pl.router.Route(inst)
		uid := SEGInstanceUID(inst.SOPInstanceUID, ch, "x", "y")
		_ = uid
	}
	waitUntil(t, "two SEGs", time.Minute, func() bool {
		_, _, _, instances, err := n.st.Counts(context.Background())
		return err == nil && instances == 4
	})
}
