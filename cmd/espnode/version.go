package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"

	"github.com/espnode/espnode/internal/version"
)

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	fmt.Fprintf(env.stdout, "espnode %s (%s, %s/%s)\nimplementation class UID %s\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH, version.ImplementationClassUID)
	return nil
}
