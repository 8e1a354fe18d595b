package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/espnode/espnode/seg/onnx"
)

// runModelBench implements `espnode model bench`: onnx.Bench, printed as one JSON line.
func runModelBench(ctx context.Context, env *cliEnv, args []string) error {
	fs := env.newFlagSet("model bench",
		"usage: espnode model bench [flags] FILE.onnx",
		"Compares the provider's logits with the reference's on the same synthetic images (max |diff|,",
		"Dice of the masks), times batches on both and prints one JSON line (seg/onnx.BenchReport).")
	provider := fs.String("provider", onnx.ProviderAuto, "execution provider to measure: "+strings.Join(onnx.Providers(), ", "))
	reference := fs.String("reference", onnx.ProviderCPU, "provider to compare with and time beside it; none for neither")
	batches := fs.String("batches", "1,8,32", "comma-separated batch sizes to time")
	iters := fs.Int("iters", 5, "timed runs per batch size")
	warmup := fs.Int("warmup", 1, "untimed runs per batch size before them (the first is reported as first_ms)")
	parity := fs.Int("parity-images", 4, "images in the parity batch")
	seed := fs.Uint64("seed", 1, "seed of the synthetic images")
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0: all cores)")
	library := fs.String("onnxruntime", "", "path of libonnxruntime.so")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error (debug lets the GPU libraries print)")
	files, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return exitError{2}
	}
	if len(files) != 1 {
		fs.Usage()
		return exitError{2}
	}
	var sizes []int
	for f := range strings.SplitSeq(*batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--batches %q: want positive integers separated by commas", *batches)
		}
		sizes = append(sizes, n)
	}
	ref := *reference
	if ref == "none" {
		ref = ""
	} else if ref, err = onnx.ParseProvider(ref); err != nil {
		return fmt.Errorf("--reference: %w", err)
	}
	log, err := newLogger(env.stderr, *logLevel, "auto")
	if err != nil {
		return err
	}
	rep, err := onnx.Bench(ctx, files[0], onnx.Options{Library: *library, Provider: *provider, Threads: *threads, Logger: log},
		onnx.BenchConfig{Reference: ref, Batches: sizes, Warmup: *warmup, Iters: *iters, ParityImages: *parity, Seed: *seed})
	if err != nil {
		return err
	}
	return json.NewEncoder(env.stdout).Encode(rep)
}
