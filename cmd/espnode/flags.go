package main

import (
	"flag"
	"fmt"
)

// newFlagSet returns a subcommand's flag set that writes to stderr and prints the usage lines
// before the flag defaults.
func (env *cliEnv) newFlagSet(name string, usage ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		for _, line := range usage {
			fmt.Fprintln(env.stderr, line)
		}
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses the flags and checks the count of the remaining arguments; a usage error
// exits with status 2, as flag parsing errors conventionally do.
func parseArgs(fs *flag.FlagSet, args []string, minArgs, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if fs.NArg() < minArgs || (maxArgs >= 0 && fs.NArg() > maxArgs) {
		fs.Usage()
		return exitError{2}
	}
	return nil
}

// parseInterspersed parses flags that may come before, between or after the positional
// arguments, as in `espnode segment a.dcm b.dcm -o out`; the standard flag package stops at
// the first positional argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
