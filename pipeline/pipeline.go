// Package pipeline turns stored instances into delivered DICOM Segmentation
// objects: routing to a channel, a durable job created in the instance's own
// index transaction, workers that segment and store the SEG, and outbound
// jobs that send it to each destination with retries and dead letters. The
// jobs are River's, on the store's queue (store.Queue), whose engine chooses
// the database and River's driver. See docs/PIPELINE.md.
package pipeline

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store"
)

// Options configure a Pipeline.
type Options struct {
	// Store keeps sources and SEGs; its index's queue (Store.Queue) holds
	// the jobs.
	Store  *store.Store
	Config Config
	// Peers is the AE table: a sender found in it gets its SEGs back when
	// Config.ReplyToSender is set.
	Peers []Peer
	// AETitle is this node's: the calling AE of deliveries.
	AETitle string
	// Segmenter runs the model. When nil, segmentation jobs wait until
	// EnableSegmentation gives one; deliveries run meanwhile.
	Segmenter *segment.Segmenter
	// Workers is how many segmentation jobs run at once; see Workers.
	Workers int
	// NoWorkers makes an ingest node: Put stores and enqueues, and the workers of other nodes
	// on the same shared queue run the jobs. Start then starts no workers, and Ready does not
	// wait for a model.
	NoWorkers bool
	Metrics   *Metrics
	Logger    zerolog.Logger
	// TLS configures deliveries to peers marked TLS (their CA, the node's client certificate);
	// nil when no peer uses TLS.
	TLS *tls.Config

	ImplementationClassUID, ImplementationVersionName string
}

// Config is what happens to a stored instance: its routing, its jobs and
// where its SEG goes. The command translates the configuration file's
// pipeline section into it (config.Pipeline).
type Config struct {
	// SeriesMode makes one SEG per series, once no instance of it has
	// arrived for SeriesIdle; otherwise each instance gets its own.
	SeriesMode   bool
	SeriesIdle   time.Duration
	SegmentRetry Retry
	// PollInterval is how often idle workers look for jobs they were not
	// told of (retries come due, jobs released by another process).
	PollInterval time.Duration
	// Routing gives an instance its channel: the first rule it matches.
	Routing []Route
	// Destinations get every SEG; ReplyToSender adds the sender when it is
	// in the AE table.
	Destinations   []Peer
	ReplyToSender  bool
	DeliveryRetry  Retry
	DeliverTimeout time.Duration
	// RescueAfter is how long a job may run before River's rescuer takes its worker for dead
	// and makes it available again: on a shared queue, how the jobs of a node that died are
	// run by the others; it is the job timeout too (a job that runs longer is cancelled and
	// retried). It exceeds DeliverTimeout; 0 leaves River's default (an hour) and no timeout.
	RescueAfter time.Duration
	// RejectImplausible withholds the SEG of an instance the plausibility guard judges
	// implausible (segment.Request.RejectImplausible); either way it is counted and logged.
	RejectImplausible bool
}

// Retry bounds the attempts of a job and spaces them (see Backoff).
type Retry struct {
	MaxAttempts  int
	Initial, Max time.Duration
}

// Peer is a DICOM node the pipeline sends to.
type Peer struct {
	AETitle string
	Host    string
	Port    int
	// TLS: deliveries to this peer run over TLS (PS3.15 B) with Options.TLS.
	TLS bool
}

// Addr is the peer's address in net.Dial's form.
func (p Peer) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// String writes the peer as AET@HOST:PORT.
func (p Peer) String() string { return p.AETitle + "@" + p.Addr() }

// check reports the first setting the pipeline cannot run with.
func (c Config) check() error {
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"series idle", c.SeriesIdle}, {"poll interval", c.PollInterval}, {"delivery timeout", c.DeliverTimeout}} {
		if d.d <= 0 {
			return fmt.Errorf("pipeline: %s must be positive, got %s", d.name, d.d)
		}
	}
	if c.RescueAfter < 0 || c.RescueAfter > 0 && c.RescueAfter <= c.DeliverTimeout {
		return fmt.Errorf("pipeline: rescue after %s: want 0 (River's default) or longer than the delivery timeout %s", c.RescueAfter, c.DeliverTimeout)
	}
	for _, r := range []struct {
		name string
		r    Retry
	}{{"segment retry", c.SegmentRetry}, {"delivery retry", c.DeliveryRetry}} {
		if r.r.MaxAttempts < 1 || r.r.Initial <= 0 || r.r.Max < r.r.Initial {
			return fmt.Errorf("pipeline: %s %+v: want at least one attempt and 0 < initial <= max", r.name, r.r)
		}
	}
	return nil
}

// Workers fits the worker count to the machine and the execution provider
// when configured is 0: a GPU takes a full batch of images at once; on the
// CPU ONNX Runtime already spreads one inference over the cores, so a few
// workers only overlap decoding, encoding and the SEG's durable store with
// it. At least two, and at least a batch: with one worker the model waited
// for the store of each SEG, and the batcher's wait for company that could
// not come (bench/e2e, a burst on two cores).
func Workers(configured int, provider string, batch int) int {
	if configured > 0 {
		return configured
	}
	if provider != "" && provider != "cpu" {
		return max(batch, 8)
	}
	return min(max(runtime.NumCPU()/2, batch, 2), 4)
}

// Pipeline is the running pipeline. Put is its entry point.
type Pipeline struct {
	opts    Options
	queue   store.Queue
	client  store.JobClient
	router  *Router
	log     zerolog.Logger
	metrics *Metrics

	// segMu guards the segmenter, which arrives after the start when the
	// model loads in the background, and why it has not.
	segMu     sync.RWMutex
	segmenter *segment.Segmenter
	modelErr  error

	// assocs keeps the associations of deliveries open between them; stopAssocs ends its
	// janitor, which closes assocsDone when it has released them.
	assocs     *associations
	stopAssocs context.CancelFunc
	assocsDone chan struct{}

	// stopping is closed when Stop begins: retries that wait on the database give up then.
	stopping chan struct{}
	stopOnce sync.Once
}

// New requeues the jobs a crashed process left running (the queue's engine
// migrated its tables when it opened) and prepares the workers. Start starts
// them.
func New(ctx context.Context, opts Options) (*Pipeline, error) {
	if err := opts.Config.check(); err != nil {
		return nil, err
	}
	queue, ok := opts.Store.Queue()
	if !ok {
		return nil, errors.New("pipeline: the store's index has no job queue")
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	p := &Pipeline{
		opts:    opts,
		queue:   queue,
		router:  NewRouter(opts.Config.Routing),
		log:     opts.Logger,
		metrics: opts.Metrics,

		segmenter: opts.Segmenter,
		modelErr:  errors.New("model loading"),
		assocs:    newAssociations(opts.Logger),
		stopping:  make(chan struct{}),
	}
	n, err := queue.RecoverJobs(ctx)
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
	if opts.NoWorkers {
		// An insert-only client: its Puts still tell the workers of the queue at once.
		queues = nil
	}
	poll := opts.Config.PollInterval
	c := opts.Config
	p.client, err = queue.NewClient(&river.Config{
		Queues:            queues,
		Workers:           workers,
		FetchPollInterval: poll,
		// A worker that finishes asks for the next job at once; the cooldown caps how
		// often: 50 ms held one worker to 20 jobs a second whatever the model's speed.
		FetchCooldown: min(poll, 5*time.Millisecond),
		RetryPolicy: retryPolicy{
			segment: Backoff{Initial: c.SegmentRetry.Initial, Max: c.SegmentRetry.Max},
			deliver: Backoff{Initial: c.DeliveryRetry.Initial, Max: c.DeliveryRetry.Max},
		},
		// Workers bound their own work (delivery_timeout; a segmentation
		// ends with its frames). On a shared queue the job timeout is
		// rescue_after: River's rescuer passes over every running job while
		// the timeout is negative, so a killed node's jobs would stay
		// running for good; a job that outlives it is taken for dead anyway.
		JobTimeout:           cmp.Or(c.RescueAfter, -1),
		RescueStuckJobsAfter: c.RescueAfter,
		// Dead letters stay until an operator retries or purges them;
		// completed deliveries are kept a week, which is how long a rerun
		// of their segmentation job is recognised as already delivered.
		DiscardedJobRetentionPeriod: -1,
		CompletedJobRetentionPeriod: 7 * 24 * time.Hour,
		Logger:                      slog.New(slog.NewTextHandler(zerologWriter{opts.Logger}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	opts.Metrics.Registry.MustRegister(newJobCollector(queue, opts.Logger))
	return p, nil
}

// Start starts the workers; they stop when ctx is cancelled or Stop is called. An ingest
// pipeline (NoWorkers) starts none.
func (p *Pipeline) Start(ctx context.Context) error {
	if !p.opts.NoWorkers {
		if err := p.client.Start(ctx); err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopAssocs, p.assocsDone = cancel, make(chan struct{})
	go func() {
		defer close(p.assocsDone)
		p.assocs.run(actx)
	}()
	return nil
}

// Stop waits for running jobs to finish, up to ctx's deadline, then cancels
// them; a cancelled job runs again at the next start.
func (p *Pipeline) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stopping) })
	var err error
	if !p.opts.NoWorkers {
		err = p.client.Stop(ctx)
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = p.client.StopAndCancel(cctx)
	}
	if p.stopAssocs != nil {
		// The deliveries have stopped: their associations can go.
		p.stopAssocs()
		<-p.assocsDone
	}
	if err != nil {
		return fmt.Errorf("job queue: stop: %w", err)
	}
	return nil
}

// Ready returns why the pipeline cannot segment, or nil. An ingest pipeline is ready: it
// segments nothing itself.
func (p *Pipeline) Ready() error {
	if p.opts.NoWorkers {
		return nil
	}
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
	if p.opts.NoWorkers {
		return errors.New("an ingest pipeline runs no workers")
	}
	p.segMu.Lock()
	if p.segmenter != nil {
		p.segMu.Unlock()
		return errors.New("segmentation already enabled")
	}
	p.segmenter = s
	p.segMu.Unlock()
	if err := p.addSegmentQueue(max(workers, 1)); err != nil {
		p.segMu.Lock()
		p.segmenter = nil
		p.segMu.Unlock()
		return fmt.Errorf("job queue: %w", err)
	}
	p.logGuard(s)
	return nil
}

// addSegmentQueue starts the segmentation queue's workers. Starting them reaches the database:
// one restarting while the model loaded (a shared index's failover) must not leave the node
// without workers until someone restarts it, so a failed start is taken back and tried again,
// for up to segmentQueueRetryFor or until Stop. The lock is not held meanwhile: Ready must keep
// answering.
func (p *Pipeline) addSegmentQueue(workers int) error {
	cfg := river.QueueConfig{MaxWorkers: workers}
	deadline := time.Now().Add(segmentQueueRetryFor)
	for delay := 250 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		err := p.client.Queues().Add(QueueSegment, cfg)
		if err == nil {
			return nil
		}
		// The producer stays registered when its start failed: remove it, or Add refuses.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.client.Queues().Remove(ctx, QueueSegment)
		cancel()
		if time.Now().Add(delay).After(deadline) {
			return err
		}
		p.log.Warn().Err(err).Stringer("retry_in", delay).Msg("segmentation workers cannot start; retrying")
		select {
		case <-time.After(delay):
		case <-p.stopping:
			return fmt.Errorf("the pipeline stopped while retrying: %w", err)
		}
	}
}

// segmentQueueRetryFor bounds addSegmentQueue's retries: longer than a database failover.
const segmentQueueRetryFor = 5 * time.Minute

// logGuard says once, when a model starts segmenting, which channels the plausibility guard
// watches and which it cannot (the model has no bounds for them).
func (p *Pipeline) logGuard(s *segment.Segmenter) {
	var guarded, unguarded []string
	for _, ch := range s.Channels() {
		if b, err := s.Bounds(ch); err == nil && b != nil {
			guarded = append(guarded, ch+" ("+b.String()+")")
		} else {
			unguarded = append(unguarded, ch)
		}
	}
	reject := p.opts.Config.RejectImplausible
	switch {
	case len(unguarded) == 0:
		p.log.Info().Bool("reject_implausible", reject).Strs("guarded", guarded).Msg("plausibility guard: every channel has bounds")
		return
	case len(guarded) == 0:
		// A model without espnode.plausibility (the shipped one): an ordinary start, not a warning.
		p.log.Info().Bool("reject_implausible", reject).
			Msg("plausibility guard off: the model has no plausibility bounds (espnode.plausibility); its output is not judged")
		return
	}
	p.log.Warn().Bool("reject_implausible", reject).Strs("guarded", guarded).Strs("unguarded", unguarded).
		Msg("plausibility guard: the model gives no bounds for the unguarded channels; their output is not judged")
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
	var d Decision
	req.InTx = func(ctx context.Context, tx store.Tx, inst store.Instance) error {
		d = p.router.Decide(inst)
		if d.Channel == "" {
			return nil
		}
		return p.enqueue(ctx, tx, inst, d.Channel)
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
	p.metrics.Activity.Received(time.Now())
	if d.Channel == "" {
		p.metrics.Instances.WithLabelValues(channel.None).Inc()
		p.metrics.NotSegmented.WithLabelValues(d.Reason).Inc()
		msg := "a routing rule keeps this instance from segmentation: stored, not segmented"
		if d.Rule < 0 {
			msg = "no routing rule gives this instance a channel: stored, not segmented"
		}
		p.log.Info().Str("sop_instance_uid", inst.SOPInstanceUID).Str("modality", inst.Modality).
			Str("body_part", inst.BodyPartExamined).Str("sop_class", inst.SOPClassUID).Str("calling_ae", inst.CallingAE).
			Str("reason", d.Reason).Int("rule", d.Rule).Msg(msg)
		return inst, nil
	}
	p.metrics.Instances.WithLabelValues(d.Channel).Inc()
	return inst, nil
}

func (p *Pipeline) enqueue(ctx context.Context, tx store.Tx, inst store.Instance, ch string) error {
	c := p.opts.Config
	if c.SeriesMode {
		if err := tx.RecordSeriesInstance(ctx, inst.SeriesInstanceUID, inst.SOPInstanceUID, inst.InstanceNumber, inst.ReceivedAt); err != nil {
			return err
		}
		// One job per series: later instances find it waiting (unique by
		// series and channel). It is available at once and snoozes until the
		// series has been idle long enough: a snooze shorter than River's
		// scheduler interval (5 s) is timed by the fetch itself, where a job
		// scheduled for later would wait for the scheduler's next pass.
		err := tx.Enqueue(ctx, SeriesArgs{SeriesInstanceUID: inst.SeriesInstanceUID, Channel: ch, CallingAE: inst.CallingAE},
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
	err := tx.Enqueue(ctx, SegmentArgs{SOPInstanceUID: inst.SOPInstanceUID, Channel: ch, CallingAE: inst.CallingAE},
		&river.InsertOpts{Queue: QueueSegment, MaxAttempts: c.SegmentRetry.MaxAttempts})
	if err != nil {
		return fmt.Errorf("segmentation job: %w", err)
	}
	return nil
}

// destinations returns where a SEG goes: the configured destinations, and
// the sender when it is in the AE table and replies are on.
func (p *Pipeline) destinations(callingAE string) []Peer {
	out := append([]Peer(nil), p.opts.Config.Destinations...)
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
