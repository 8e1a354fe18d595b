package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/store/compose"
)

// runJobs implements `espnode jobs list|retry|purge`. It opens the queue of
// the configured index beside running nodes: the data directory's SQLite
// database (WAL allows it), or the PostgreSQL database every node of a
// cluster shares, where it sees and acts on the jobs of all of them. The
// workers see the changes at their next poll.
func runJobs(ctx context.Context, env *cliEnv, args []string) error {
	usage := func() {
		fmt.Fprintln(env.stderr, `usage: espnode jobs list  [--state S,...] [--kind K,...] [--limit N]
       espnode jobs retry [--all-dead] [ID...]
       espnode jobs purge [--state S,...]
common flags: --config FILE, --data-dir DIR (the queue is the configured index's: ESPNODE_INDEX)
states: `+stateNames()+` (discarded: dead letters)
kinds: segment, segment_series, deliver`)
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry" && args[0] != "purge") {
		usage()
		return exitError{2}
	}
	sub := args[0]
	fs := flag.NewFlagSet("jobs "+sub, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = usage
	configPath := fs.String("config", "", "YAML configuration `file`")
	dataDir := fs.String("data-dir", "", "archive `folder` (data_dir)")
	stateList := fs.String("state", "", "comma-separated job `states`")
	kindList := fs.String("kind", "", "comma-separated job `kinds`")
	limit := fs.Int("limit", 100, "most jobs listed, newest first")
	allDead := fs.Bool("all-dead", false, "retry every dead letter (discarded job)")
	ids, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return exitError{2}
	}
	cfg, err := config.Load(*configPath, os.Environ())
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	states, err := parseStates(*stateList)
	if err != nil {
		return err
	}
	var kinds []string
	for _, k := range splitList(*kindList) {
		kinds = append(kinds, "espnode."+strings.TrimPrefix(k, "espnode."))
	}

	// The queue of every node when the index is shared (PostgreSQL).
	queue, err := compose.OpenQueue(ctx, storeOptions(cfg, zerolog.Nop()))
	if err != nil {
		return err
	}
	defer queue.Close()
	admin, err := pipeline.NewAdmin(queue)
	if err != nil {
		return err
	}

	switch sub {
	case "list":
		jobs, err := admin.List(ctx, states, kinds, *limit)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPT\tCREATED\tNEXT\tARGS\tLAST ERROR")
		for _, j := range jobs {
			next := ""
			if j.State == rivertype.JobStateRetryable || j.State == rivertype.JobStateScheduled || j.State == rivertype.JobStateAvailable {
				next = j.ScheduledAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", j.ID, strings.TrimPrefix(j.Kind, "espnode."), j.State,
				j.Attempt, j.MaxAttempts, j.CreatedAt.Local().Format(time.DateTime), next, j.Args, oneLine(j.LastError))
		}
		return tw.Flush()
	case "retry":
		var list []int64
		for _, s := range ids {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("job ID %q is not a number", s)
			}
			list = append(list, id)
		}
		if *allDead {
			dead, err := admin.List(ctx, []rivertype.JobState{rivertype.JobStateDiscarded}, kinds, 10000)
			if err != nil {
				return err
			}
			for _, j := range dead {
				list = append(list, j.ID)
			}
		}
		if len(list) == 0 {
			return errors.New("nothing to retry: give job IDs or --all-dead")
		}
		if err := admin.Retry(ctx, list); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%d job(s) made available again\n", len(list))
		return nil
	default: // purge
		if len(states) == 0 {
			states = []rivertype.JobState{rivertype.JobStateDiscarded}
		}
		n, err := admin.Purge(ctx, states)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%d job(s) deleted\n", n)
		return nil
	}
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func parseStates(s string) ([]rivertype.JobState, error) {
	var out []rivertype.JobState
	for _, e := range splitList(s) {
		ok := false
		for _, st := range pipeline.JobStates() {
			if string(st) == e {
				out, ok = append(out, st), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown job state %q (want %s)", e, stateNames())
		}
	}
	return out, nil
}

func stateNames() string {
	var names []string
	for _, st := range pipeline.JobStates() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
