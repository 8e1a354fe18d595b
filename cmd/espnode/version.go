package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/espnode/espnode/internal/version"
)

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	if err := parseArgs(env.newFlagSet("version", "usage: espnode version"), args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "espnode %s (%s, %s/%s)\nimplementation class UID %s\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH, version.ImplementationClassUID)
	return nil
}
