package main

import (
	"context"
	"errors"
)

// Placeholder until the model runtime lands: the commands exist so the CLI's shape is stable.
func runSegment(ctx context.Context, env *cliEnv, args []string) error {
	return errors.New("not available yet: the model runtime is not built into this binary")
}

func runModel(ctx context.Context, env *cliEnv, args []string) error {
	return errors.New("not available yet: the model runtime is not built into this binary")
}
