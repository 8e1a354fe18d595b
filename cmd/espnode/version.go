package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/espnode/espnode/internal/version"
	"github.com/espnode/espnode/seg/pixel"
)

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	if err := parseArgs(env.newFlagSet("version", "usage: espnode version"), args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "espnode %s (%s, %s/%s)\nimplementation class UID %s\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH, version.ImplementationClassUID)
	// What this build decodes: the C codecs are absent from a build without cgo or with the
	// nocodecs tag, and an instance in their syntaxes is then stored but not segmented.
	fmt.Fprintln(env.stdout, "pixel data decoders:")
	for _, c := range pixel.Codecs() {
		var names []string
		for _, uid := range c.Syntaxes {
			names = append(names, strings.TrimPrefix(uid, "1.2.840.10008."))
		}
		state := ""
		if !c.Compiled {
			state = ", not decoded by this build"
		}
		fmt.Fprintf(env.stdout, "  %-17s %s: %s%s\n", c.Name, c.Library, strings.Join(names, " "), state)
	}
	return nil
}
