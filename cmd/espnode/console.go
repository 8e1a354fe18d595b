package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/console"
	"github.com/espnode/espnode/dicomweb"
	"github.com/espnode/espnode/internal/version"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/store"
)

// newConsole builds the operator console over the store's index and queue, the pipeline's
// activity and DICOMweb's renderer (nil when DICOMweb is off: no images).
func newConsole(cfg config.Config, log zerolog.Logger, logs *console.LogRing, metrics *pipeline.Metrics,
	pl *pipeline.Pipeline, st *store.Store, web *dicomweb.Server) (*console.Server, error) {
	queue, ok := st.Queue()
	if !ok {
		return nil, fmt.Errorf("console: the store's index has no job queue")
	}
	admin, err := pipeline.NewAdmin(queue)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	var states []string
	for _, s := range pipeline.JobStates() {
		states = append(states, string(s))
	}
	var dests []string
	for _, d := range cfg.Pipeline.Destinations {
		dests = append(dests, pipeline.Peer{AETitle: d.AETitle, Host: d.Host, Port: d.Port}.String())
	}
	opts := console.Options{
		Index:        st,
		Jobs:         consoleJobs{admin: admin, queue: queue},
		Activity:     consoleActivity{metrics.Activity},
		Destinations: dests,
		Channels:     channel.Names(),
		JobStates:    states,
		Provider:     cfg.Model.Provider,
		Ready:        pl.Ready,
		DataDir:      cfg.DataDir,
		Config:       maskedConfig(cfg),
		Log:          logs,
		ViewerURL:    consoleViewerURL(cfg.HTTP),
		Version:      version.String(),
		Logger:       log,
	}
	if web != nil {
		opts.Render, opts.DICOMwebRoot = web, web.Root()
	}
	return console.New(opts)
}

// maskedConfig is the effective configuration as YAML with its secrets replaced.
func maskedConfig(cfg config.Config) []byte {
	const mask = "********"
	c := cfg
	c.HTTP.Auth.Tokens = make([]string, len(cfg.HTTP.Auth.Tokens))
	for i := range c.HTTP.Auth.Tokens {
		c.HTTP.Auth.Tokens[i] = mask
	}
	c.HTTP.Auth.Users = make([]config.HTTPUser, len(cfg.HTTP.Auth.Users))
	for i, u := range cfg.HTTP.Auth.Users {
		c.HTTP.Auth.Users[i] = config.HTTPUser{Name: u.Name, Password: mask}
	}
	if c.S3.SecretAccessKey != "" {
		c.S3.SecretAccessKey = mask
	}
	if u, err := url.Parse(c.Index); err == nil && config.Postgres(c.Index) {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", mask)
			u.RawQuery = q.Encode()
		}
		c.Index = u.String()
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return []byte("cannot show the configuration: " + err.Error())
	}
	return b
}

// consoleViewerURL is the viewer's address as a browser on this machine reaches it.
func consoleViewerURL(h config.HTTP) string {
	if h.Viewer.Addr == "" || !h.DICOMweb {
		return ""
	}
	host, port, err := net.SplitHostPort(h.Viewer.Addr)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	scheme := "http"
	if h.TLS.Cert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// consoleJobs is the queue as the console sees it.
type consoleJobs struct {
	admin *pipeline.Admin
	queue store.Queue
}

func (j consoleJobs) List(ctx context.Context, states, kinds []string, limit int) ([]console.Job, error) {
	rs := make([]rivertype.JobState, len(states))
	for i, s := range states {
		rs[i] = rivertype.JobState(s)
	}
	jobs, err := j.admin.List(ctx, rs, kinds, limit)
	if err != nil {
		return nil, err
	}
	out := make([]console.Job, len(jobs))
	for i, jb := range jobs {
		// Every job kind's arguments name the channel.
		var args struct {
			Channel string `json:"channel"`
		}
		_ = json.Unmarshal([]byte(jb.Args), &args)
		out[i] = console.Job{ID: jb.ID, Kind: jb.Kind, State: string(jb.State), Channel: args.Channel, Attempt: jb.Attempt,
			MaxAttempts: jb.MaxAttempts, Args: jb.Args, CreatedAt: jb.CreatedAt, ScheduledAt: jb.ScheduledAt, LastError: jb.LastError}
	}
	return out, nil
}

func (j consoleJobs) Counts(ctx context.Context) ([]console.JobCount, error) {
	counts, err := j.queue.JobCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]console.JobCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, console.JobCount{Kind: k.Kind, State: string(k.State), N: n})
	}
	return out, nil
}

func (j consoleJobs) Retry(ctx context.Context, ids []int64) error { return j.admin.Retry(ctx, ids) }

func (j consoleJobs) Purge(ctx context.Context, states []string) (int, error) {
	rs := make([]rivertype.JobState, len(states))
	for i, s := range states {
		rs[i] = rivertype.JobState(s)
	}
	return j.admin.Purge(ctx, rs)
}

// consoleActivity is the pipeline's activity as the console sees it.
type consoleActivity struct{ a *pipeline.Activity }

func (c consoleActivity) PerMinute(now time.Time, n int) []int { return c.a.PerMinute(now, n) }

func (c consoleActivity) SEGs() []console.SEG {
	recs := c.a.SEGs()
	out := make([]console.SEG, len(recs))
	for i, r := range recs {
		out[i] = console.SEG{At: r.At, SEGInstanceUID: r.SEGInstanceUID, Sources: r.Sources, Channel: r.Channel,
			Provider: r.Provider, Model: r.Model, Version: r.Version, Frames: r.Frames, Foreground: r.Foreground,
			Inference: r.Inference}
	}
	return out
}

func (c consoleActivity) Destinations() []console.Destination {
	ds := c.a.Destinations()
	out := make([]console.Destination, len(ds))
	for i, d := range ds {
		out[i] = console.Destination{Name: d.Destination, LastSuccess: d.LastSuccess, LastErrorAt: d.LastErrorAt, LastError: d.LastError}
	}
	return out
}
