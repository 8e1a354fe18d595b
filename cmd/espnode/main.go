// Command espnode is a DICOM node that segments the images it receives with ESP-MedSAM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/espnode/espnode/seg/onnx"
)

// command is one subcommand; run gets the arguments after the subcommand's name.
type command struct {
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv carries the process's streams so that commands stay testable.
type cliEnv struct {
	stdout, stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"serve":   {"run the DICOM node", runServe},
		"jobs":    {"list, retry and purge the pipeline's jobs (jobs list|retry|purge)", runJobs},
		"echo":    {"send C-ECHO to a peer (exit 0 on success)", runEcho},
		"store":   {"send DICOM files and folders to a peer with C-STORE", runStore},
		"find":    {"query a peer with C-FIND", runFind},
		"get":     {"retrieve from a peer with C-GET", runGet},
		"version": {"print the version", runVersion},
		"segment": {"segment DICOM files with the model and write masks and overlays", runSegment},
		"model":   {"inspect and time model files (model info|bench FILE.onnx)", runModel},
		"eval":    {"score the model on a seg2d tree's test split (Dice, IoU)", runEval},
	}
}

// exitError lets a command choose its exit status without printing twice.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The node's own output goes to a duplicate of descriptor 2: seg/onnx points descriptor 2
	// itself elsewhere while it probes GPU providers, whose native libraries print there.
	stderr := onnx.DupStderr()
	stopProfiles := startProfiles(os.Getenv(ProfileDirEnv), stderr)
	code := run(ctx, &cliEnv{stdout: os.Stdout, stderr: stderr}, os.Args[1:])
	stopProfiles()
	stop()
	os.Exit(code)
}

func run(ctx context.Context, env *cliEnv, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.stderr, "espnode: unknown command %q\n", args[0])
		usage(env.stderr, cmds)
		return 2
	}
	err := c.run(ctx, env, args[1:])
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(env.stderr, "espnode %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: espnode COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'espnode COMMAND -h' for a command's flags.")
}
