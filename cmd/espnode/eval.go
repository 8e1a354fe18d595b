package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/seg/eval"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/segment"
)

// runEval implements `espnode eval --data DIR [--json]`: every test pair of a seg2d tree goes
// through the node's own pre-processing, ONNX Runtime and post-processing, and the masks at the
// source resolution are scored against the reference masks; the plausibility guard judges each
// image as serve would (the withheld share).
func runEval(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	dataDir := fs.String("data", "", "seg2d folder holding MANIFEST.csv (required)")
	model := fs.String("model", os.Getenv(modelEnv), "model file (ONNX, espnode contract); default $"+modelEnv+", else the shipped model")
	split := fs.String("split", "test", "manifest split to score")
	asJSON := fs.Bool("json", false, "print a JSON array of {channel, dataset, n, dice, iou, withheld, guarded}")
	library := fs.String("onnxruntime", "", "path of libonnxruntime.so (default: $"+onnx.LibraryEnv+", next to the binary, the system)")
	provider := fs.String("provider", onnx.ProviderAuto, "execution provider: "+strings.Join(onnx.Providers(), ", "))
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0: all cores)")
	batch := fs.Int("batch", 4, "most images run together")
	limit := fs.Int("limit", 0, "score at most this many pairs per dataset (0: all)")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: espnode eval --data DIR [--json] [--model FILE.onnx]")
		fmt.Fprintln(env.stderr, "Scores the model on a seg2d tree's test split: Dice and IoU per channel and dataset, and the share")
		fmt.Fprintln(env.stderr, "of images whose SEG the plausibility guard would withhold (\"-\": the model gives the channel no bounds).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError{2}
	}
	if *dataDir == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitError{2}
	}
	rows, skipped, err := eval.ReadManifest(*dataDir, *split, *limit)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(env.stderr, "eval: %s not scored: %s\n", s, eval.Excluded()[s])
	}
	if len(rows) == 0 {
		return fmt.Errorf("no %q pairs in %s", *split, filepath.Join(*dataDir, "MANIFEST.csv"))
	}
	path := *model
	if path == "" {
		if path, err = shippedModelPath(); err != nil {
			return err
		}
	}
	engine, err := onnx.OpenUniversal(path, onnx.Options{
		Library: *library, Provider: *provider, Threads: *threads,
		MaxBatch: *batch, BatchWait: 5 * time.Millisecond, Logger: zerolog.Nop(),
	})
	if err != nil {
		return err
	}
	defer engine.Close()
	scores, err := eval.Evaluate(ctx, engine, *dataDir, rows, *batch)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", " ")
		return enc.Encode(scores)
	}
	eval.WriteTable(env.stdout, scores)
	return nil
}

// shippedModelPath writes the model the binary carries to the user's cache (or the temporary
// folder) and returns its path: ONNX Runtime loads models from files.
func shippedModelPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return segment.WriteShippedModel(filepath.Join(dir, "espnode", "models"))
}
