// Package pipeline turns stored instances into delivered DICOM Segmentation
// objects: routing to a channel, a durable job created in the instance's own
// index transaction, workers that segment and store the SEG, and outbound
// jobs that send it to each destination with retries and dead letters. The
// queue is River on the index database (SQLite here; River's PostgreSQL
// drivers take over where the index does). See docs/PIPELINE.md.
package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store"
)

// Options configure a Pipeline.
type Options struct {
	Store *store.Store
	// DataDir is the store's data directory (instance paths are relative to it).
	DataDir string
	Config  config.Pipeline
	// Peers is the AE table: a sender found in it gets its SEGs back when
	// Config.ReplyToSender is set.
	Peers []config.Peer
	// AETitle is this node's: the calling AE of deliveries.
	AETitle string
	// Segmenter runs the model. When nil, segmentation jobs wait until
	// EnableSegmentation gives one; deliveries run meanwhile.
	Segmenter *segment.Segmenter
	// Workers is how many segmentation jobs run at once; see Workers.
	Workers int
	Metrics *Metrics
	Logger  zerolog.Logger

	ImplementationClassUID, ImplementationVersionName string
}

// Workers fits the worker count to the machine and the execution provider
// when configured is 0: a GPU takes a full batch of images at once; on the
// CPU ONNX Runtime already spreads one inference over the cores, so a few
// workers only overlap decoding and encoding with it.
func Workers(configured int, provider string, batch int) int {
	if configured > 0 {
		return configured
	}
	if provider != "" && provider != "cpu" {
		return max(batch, 8)
	}
	return min(max(runtime.NumCPU()/2, 1), 4)
}

// Pipeline is the running pipeline. Put is its entry point.
type Pipeline struct {
	opts    Options
	db      *sql.DB
	client  *river.Client[*sql.Tx]
	router  *Router
	log     zerolog.Logger
	metrics *Metrics

	// segMu guards the segmenter, which arrives after the start when the
	// model loads in the background, and why it has not.
	segMu     sync.RWMutex
	segmenter *segment.Segmenter
	modelErr  error
}

// New migrates the queue's tables, requeues the jobs a crashed process left
// running, and prepares the workers. Start starts them.
func New(ctx context.Context, opts Options) (*Pipeline, error) {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	p := &Pipeline{
		opts:    opts,
		db:      opts.Store.DB(),
		router:  NewRouter(opts.Config.Routing),
		log:     opts.Logger,
		metrics: opts.Metrics,

		segmenter: opts.Segmenter,
		modelErr:  errors.New("model loading"),
	}
	if err := migrate(ctx, p.db); err != nil {
		return nil, err
	}
	n, err := recoverJobs(ctx, p.db)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		p.log.Warn().Int64("jobs", n).Msg("requeued jobs left running by a previous process (a crash or kill); those on their last attempt are dead letters")
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &segmentWorker{p: p})
	river.AddWorker(workers, &seriesWorker{p: p})
	river.AddWorker(workers, &deliverWorker{p: p})
	queues := map[string]river.QueueConfig{QueueDeliver: {MaxWorkers: 4}}
	if opts.Segmenter != nil {
		queues[QueueSegment] = river.QueueConfig{MaxWorkers: max(opts.Workers, 1)}
	}
	poll := opts.Config.PollInterval
	c := opts.Config
	p.client, err = river.NewClient(newDriver(p.db), &river.Config{
		Queues:            queues,
		Workers:           workers,
		FetchPollInterval: poll,
		FetchCooldown:     min(poll, 50*time.Millisecond),
		RetryPolicy: retryPolicy{
			segment: Backoff{Initial: c.SegmentRetry.Initial, Max: c.SegmentRetry.Max},
			deliver: Backoff{Initial: c.DeliveryRetry.Initial, Max: c.DeliveryRetry.Max},
		},
		// Workers bound their own work (delivery_timeout; a segmentation
		// ends with its frames).
		JobTimeout: -1,
		// Dead letters stay until an operator retries or purges them;
		// completed deliveries are kept a week, which is how long a rerun
		// of their segmentation job is recognised as already delivered.
		DiscardedJobRetentionPeriod: -1,
		CompletedJobRetentionPeriod: 7 * 24 * time.Hour,
		Logger:                      slog.New(slog.NewTextHandler(zerologWriter{opts.Logger}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	opts.Metrics.Registry.MustRegister(newJobCollector(p.db, opts.Logger))
	return p, nil
}

// Start starts the workers; they stop when ctx is cancelled or Stop is called.
func (p *Pipeline) Start(ctx context.Context) error {
	if err := p.client.Start(ctx); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	return nil
}

// Stop waits for running jobs to finish, up to ctx's deadline, then cancels
// them; a cancelled job runs again at the next start.
func (p *Pipeline) Stop(ctx context.Context) error {
	err := p.client.Stop(ctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = p.client.StopAndCancel(cctx)
	}
	if err != nil {
		return fmt.Errorf("job queue: stop: %w", err)
	}
	return nil
}

// Ready returns why the pipeline cannot segment, or nil.
func (p *Pipeline) Ready() error {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	if p.segmenter == nil {
		return fmt.Errorf("no model, segmentation jobs wait: %w", p.modelErr)
	}
	return nil
}

// ModelFailed records why the model could not be loaded, for Ready.
func (p *Pipeline) ModelFailed(err error) {
	p.segMu.Lock()
	defer p.segMu.Unlock()
	p.modelErr = err
}

// EnableSegmentation starts the segmentation workers with s, after Start.
func (p *Pipeline) EnableSegmentation(s *segment.Segmenter, workers int) error {
	p.segMu.Lock()
	defer p.segMu.Unlock()
	if p.segmenter != nil {
		return errors.New("segmentation already enabled")
	}
	p.segmenter = s
	if err := p.client.Queues().Add(QueueSegment, river.QueueConfig{MaxWorkers: max(workers, 1)}); err != nil {
		p.segmenter = nil
		return fmt.Errorf("job queue: %w", err)
	}
	return nil
}

func (p *Pipeline) segmenterOrNil() *segment.Segmenter {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	return p.segmenter
}

// Put stores an instance as store.Put does and, in the same index
// transaction, creates its segmentation job when routing gives it a
// channel: a Success answered after Put returns means the job exists.
func (p *Pipeline) Put(ctx context.Context, req store.PutRequest) (store.Instance, error) {
	var (
		channel string
		routed  bool
	)
	req.InTx = func(ctx context.Context, tx *sql.Tx, inst store.Instance) error {
		channel, _, routed = p.router.Route(inst)
		if !routed {
			return nil
		}
		return p.enqueue(ctx, tx, inst, channel)
	}
	inst, err := p.opts.Store.Put(ctx, req)
	if err != nil {
		return inst, err
	}
	if inst.Duplicate {
		// Kept the stored copy: its job was made when it arrived.
		return inst, nil
	}
	p.metrics.Bytes.Add(float64(inst.Size))
	if !routed {
		p.metrics.Instances.WithLabelValues(config.ChannelNone).Inc()
		p.log.Info().Str("sop_instance_uid", inst.SOPInstanceUID).Str("modality", inst.Modality).
			Str("sop_class", inst.SOPClassUID).Str("calling_ae", inst.CallingAE).
			Msg("no routing rule gives this instance a channel: stored, not segmented")
		return inst, nil
	}
	p.metrics.Instances.WithLabelValues(channel).Inc()
	return inst, nil
}

func (p *Pipeline) enqueue(ctx context.Context, tx *sql.Tx, inst store.Instance, channel string) error {
	c := p.opts.Config
	if c.SeriesMode {
		if err := recordSeriesInstance(ctx, tx, inst.SeriesInstanceUID, inst.SOPInstanceUID, inst.InstanceNumber, inst.ReceivedAt); err != nil {
			return err
		}
		// One job per series: later instances find it waiting (unique by
		// series and channel). It is available at once and snoozes until the
		// series has been idle long enough: a snooze shorter than River's
		// scheduler interval (5 s) is timed by the fetch itself, where a job
		// scheduled for later would wait for the scheduler's next pass.
		_, err := p.client.InsertTx(ctx, tx, SeriesArgs{SeriesInstanceUID: inst.SeriesInstanceUID, Channel: channel, CallingAE: inst.CallingAE},
			&river.InsertOpts{
				Queue: QueueSegment, MaxAttempts: c.SegmentRetry.MaxAttempts,
				UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
					rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
					rivertype.JobStateRetryable, rivertype.JobStateScheduled,
				}},
			})
		if err != nil {
			return fmt.Errorf("series job: %w", err)
		}
		return nil
	}
	_, err := p.client.InsertTx(ctx, tx, SegmentArgs{SOPInstanceUID: inst.SOPInstanceUID, Channel: channel, CallingAE: inst.CallingAE},
		&river.InsertOpts{Queue: QueueSegment, MaxAttempts: c.SegmentRetry.MaxAttempts})
	if err != nil {
		return fmt.Errorf("segmentation job: %w", err)
	}
	return nil
}

// destinations returns where a SEG goes: the configured destinations, and
// the sender when it is in the AE table and replies are on.
func (p *Pipeline) destinations(callingAE string) []config.Peer {
	out := append([]config.Peer(nil), p.opts.Config.Destinations...)
	if p.opts.Config.ReplyToSender && callingAE != "" {
		for _, peer := range p.opts.Peers {
			if strings.TrimSpace(peer.AETitle) == strings.TrimSpace(callingAE) {
				dup := false
				for _, d := range out {
					dup = dup || d == peer
				}
				if !dup {
					out = append(out, peer)
				}
				break
			}
		}
	}
	return out
}

// zerologWriter passes River's slog lines to the node's log.
type zerologWriter struct{ log zerolog.Logger }

func (w zerologWriter) Write(b []byte) (int, error) {
	w.log.Warn().Str("component", "river").Msg(strings.TrimSpace(string(b)))
	return len(b), nil
}
