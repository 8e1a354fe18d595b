package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/espnode/espnode/seg/onnx"
)

// runModel implements `espnode model info FILE.onnx` and `espnode model bench FILE.onnx`.
func runModel(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) > 0 && args[0] == "bench" {
		return runModelBench(ctx, env, args[1:])
	}
	if len(args) == 0 || args[0] != "info" {
		fmt.Fprintln(env.stderr, "usage: espnode model info [--onnxruntime LIB] FILE.onnx")
		fmt.Fprintln(env.stderr, "       espnode model bench [--provider P] [--reference P] [--batches 1,8,32] FILE.onnx")
		return exitError{2}
	}
	fs := flag.NewFlagSet("model info", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	library := fs.String("onnxruntime", "", "path of libonnxruntime.so")
	files, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return exitError{2}
	}
	if len(files) != 1 {
		return errors.New("model info takes one FILE.onnx")
	}
	libPath, version, err := onnx.LoadLibrary(*library)
	if err != nil {
		return err
	}
	info, err := onnx.Inspect(files[0])
	if err != nil {
		return err
	}
	printModelInfo(env.stdout, info, libPath, version)
	return nil
}

func printModelInfo(w io.Writer, info *onnx.ModelInfo, libPath, version string) {
	md := info.Metadata
	fmt.Fprintf(w, "file:              %s\n", info.Path)
	fmt.Fprintf(w, "model:             %s %s\n", md.ModelName, md.ModelVersion)
	fmt.Fprintf(w, "input size:        %d\n", md.InputSize)
	fmt.Fprintf(w, "threshold:         %g\n", md.Threshold)
	if md.Normalization != "" {
		fmt.Fprintf(w, "normalization:     %s\n", md.Normalization)
	}
	if md.CheckpointSHA256 != "" {
		fmt.Fprintf(w, "checkpoint sha256: %s\n", md.CheckpointSHA256)
	}
	for _, line := range info.Signature() {
		kind, rest, _ := strings.Cut(line, " ")
		fmt.Fprintf(w, "%-19s%s\n", kind+":", rest)
	}
	fmt.Fprintln(w, "channels:")
	for _, c := range md.Channels {
		fmt.Fprintf(w, "  %d %-12s query %d  %q  category %s %s %q  type %s %s %q\n", c.Index, c.Name, c.Query, c.Label,
			c.Category.Scheme, c.Category.Value, c.Category.Meaning, c.Type.Scheme, c.Type.Value, c.Type.Meaning)
	}
	if len(md.Extra) > 0 {
		keys := make([]string, 0, len(md.Extra))
		for k := range md.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "other metadata:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s = %s\n", k, md.Extra[k])
		}
	}
	fmt.Fprintf(w, "onnx runtime:      %s (%s)\n", version, libPath)
}
