package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/riverqueue/river"

	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store"
)

// segmentWorker makes the SEG of one instance.
type segmentWorker struct {
	river.WorkerDefaults[SegmentArgs]
	p *Pipeline
}

func (w *segmentWorker) Work(ctx context.Context, job *river.Job[SegmentArgs]) error {
	a := job.Args
	inst, err := w.p.opts.Store.Get(ctx, a.SOPInstanceUID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	return segmentAndStore(ctx, w.p, job, segmentation{
		key:        a.SOPInstanceUID,
		series:     inst.SeriesInstanceUID,
		channel:    a.Channel,
		callingAE:  a.CallingAE,
		instances:  []store.Instance{inst},
		receivedAt: inst.ReceivedAt,
	})
}

// seriesWorker makes the SEG of a series once no instance has arrived for
// the idle window.
type seriesWorker struct {
	river.WorkerDefaults[SeriesArgs]
	p *Pipeline
}

func (w *seriesWorker) Work(ctx context.Context, job *river.Job[SeriesArgs]) error {
	a := job.Args
	idle := w.p.opts.Config.SeriesIdle
	uids, last, err := w.p.queue.SeriesInstances(ctx, a.SeriesInstanceUID)
	if err != nil {
		return err
	}
	if wait := time.Until(last.Add(idle)); wait > 0 {
		return river.JobSnooze(wait)
	}
	if len(uids) == 0 {
		return river.JobCancel(fmt.Errorf("series %s: no instances recorded", a.SeriesInstanceUID))
	}
	var insts []store.Instance
	for _, uid := range uids {
		inst, err := w.p.opts.Store.Get(ctx, uid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if inst.SeriesInstanceUID != a.SeriesInstanceUID {
			continue // sent again since, as part of another series
		}
		insts = append(insts, inst)
	}
	if len(insts) == 0 {
		return river.JobCancel(fmt.Errorf("series %s: no instance left in the archive", a.SeriesInstanceUID))
	}
	return segmentAndStore(ctx, w.p, job, segmentation{
		key:        a.SeriesInstanceUID,
		series:     a.SeriesInstanceUID,
		channel:    a.Channel,
		callingAE:  a.CallingAE,
		instances:  insts,
		receivedAt: last,
		seriesMode: true,
	})
}

// segmentation is one SEG to make.
type segmentation struct {
	// key is what the SEG is of: a SOP Instance UID, or a Series Instance
	// UID in series mode. The SEG's UID derives from it.
	key        string
	series     string
	channel    string
	callingAE  string
	instances  []store.Instance
	receivedAt time.Time
	seriesMode bool
}

// segmentAndStore segments, stores the SEG, completes the job and creates
// its deliveries, the last three in one index transaction: either the SEG is
// indexed, its job completed and its deliveries queued, or none of it is and
// the job runs again, making the same SEG (same UIDs) again.
func segmentAndStore[T river.JobArgs](ctx context.Context, p *Pipeline, job *river.Job[T], s segmentation) error {
	sg := p.segmenterOrNil()
	if sg == nil {
		return errors.New("no model loaded")
	}
	model, version, err := sg.ModelVersion(s.channel)
	if err != nil {
		return river.JobCancel(err)
	}
	segUID := SEGInstanceUID(s.key, s.channel, model, version)
	inputs := make([]segment.Input, len(s.instances))
	sources := make([]string, len(s.instances))
	for i, inst := range s.instances {
		uid := inst.SOPInstanceUID
		// Read through the store, wherever its archive keeps the object.
		inputs[i] = segment.Input{Name: uid, Open: func() (io.ReadCloser, error) {
			rc, _, err := p.opts.Store.Open(ctx, uid)
			return rc, err
		}}
		sources[i] = uid
	}
	log := p.log.With().Str("seg_instance_uid", segUID).Str("source", s.key).Str("channel", s.channel).
		Int64("job", job.ID).Int("attempt", job.Attempt).Logger()

	req := segment.Request{Sources: inputs, Channel: s.channel, RejectImplausible: p.opts.Config.RejectImplausible, SEG: dicomseg.Options{
		SOPInstanceUID:    segUID,
		SeriesInstanceUID: SEGSeriesUID(s.series, s.channel, model, version),
		Equipment: dicomseg.Equipment{
			Manufacturer: "espnode", ModelName: "espnode",
			SoftwareVersions: p.opts.ImplementationVersionName,
		},
	}}
	if s.seriesMode {
		// Photographs share no plane geometry: one SEG each, named as in
		// instance mode.
		req.PerSource = func(uid string) string { return SEGInstanceUID(uid, s.channel, model, version) }
	}
	res, err := sg.Segment(ctx, req)
	if err != nil {
		p.metrics.SegmentFailures.WithLabelValues(s.channel).Inc()
		if errors.Is(err, segment.ErrUndecodable) {
			log.Warn().Err(err).Msg("cannot segment: job cancelled, the instance stays stored")
			return river.JobCancel(err)
		}
		log.Warn().Err(err).Msg("segmentation failed; will retry")
		return err
	}
	p.metrics.Inference.WithLabelValues(s.channel, res.Provider).Observe(res.Timing.Infer.Seconds())
	p.metrics.Segmentation.WithLabelValues(s.channel, res.Provider).Observe(res.Timing.Total().Seconds())
	for _, c := range res.Implausible() {
		p.metrics.Implausible.WithLabelValues(s.channel, c.Reason).Inc()
		ev := log.Warn().Str("instance", c.Source).Str("reason", c.Reason).Float64("fg_fraction", c.FgFraction)
		if c.HasPatch {
			ev = ev.Float64("patch_max", c.PatchMax)
		}
		bounds, _ := sg.Bounds(s.channel)
		ev = ev.Str("bounds", bounds.String())
		if res.Withheld {
			ev.Msg("implausible output for the channel: SEG withheld, job completed (model.reject_implausible)")
		} else {
			ev.Msg("implausible output for the channel: SEG stored anyway (model.reject_implausible is off)")
		}
	}

	if s.seriesMode {
		// An instance that arrived while this ran found the job running and
		// made no new one: go round again so the SEG covers it.
		_, last, err := p.queue.SeriesInstances(ctx, s.series)
		if err != nil {
			return err
		}
		if last.After(s.receivedAt) {
			return river.JobSnooze(p.opts.Config.SeriesIdle)
		}
	}

	if res.Withheld {
		// Nothing to store or deliver: returning completes the job.
		return nil
	}

	type part struct {
		seg      *dicomseg.Result
		source   string
		revision string
	}
	var parts []part
	if res.SEG != nil {
		parts = []part{{res.SEG, s.key, revision(sources)}}
	} else {
		for i, seg := range res.SEGs {
			parts = append(parts, part{seg, sources[i], revision(sources[i : i+1])})
		}
	}
	dests := p.destinations(s.callingAE)
	for i, pt := range parts {
		last := i == len(parts)-1
		// The encoder says what it wrote: nothing parses the SEG again.
		req := store.PutRequest{
			SOPClassUID:       pt.seg.SOPClassUID,
			SOPInstanceUID:    pt.seg.SOPInstanceUID,
			TransferSyntaxUID: pt.seg.TransferSyntaxUID,
			CallingAE:         p.opts.AETitle,
			CalledAE:          p.opts.AETitle,
			Data:              bytes.NewReader(pt.seg.DataSet()),
			// A rerun replaces its SEG whatever the duplicate policy.
			Overwrite: true,
		}
		if last {
			// The last SEG's transaction queues every delivery and completes
			// the job: a crash before it reruns the job, which remakes the
			// same SEGs.
			req.InTx = func(ctx context.Context, tx store.Tx, _ store.Instance) error {
				for _, pt := range parts {
					for _, d := range dests {
						err := tx.Enqueue(ctx, DeliverArgs{
							SEGInstanceUID: pt.seg.SOPInstanceUID, Source: pt.source, Channel: s.channel,
							AETitle: d.AETitle, Host: d.Host, Port: d.Port,
							Revision: pt.revision, ReceivedAt: s.receivedAt.UnixNano(),
						}, &river.InsertOpts{
							Queue: QueueDeliver, MaxAttempts: p.opts.Config.DeliveryRetry.MaxAttempts,
							// A destination gets one delivery per SEG revision,
							// however often the segmentation runs.
							UniqueOpts: river.UniqueOpts{ByArgs: true},
						})
						if err != nil {
							return fmt.Errorf("delivery job to %s: %w", d, err)
						}
					}
				}
				if err := tx.Complete(ctx, job.JobRow); err != nil {
					return fmt.Errorf("complete job: %w", err)
				}
				return nil
			}
		}
		if _, err := p.opts.Store.Put(ctx, req); err != nil {
			log.Warn().Err(err).Msg("storing the SEG failed; will retry")
			return err
		}
	}
	p.recordSEG(segUID, sources, s, res, model, version)
	log.Info().Int("frames", res.Frames).Int("foreground", res.Foreground).Str("provider", res.Provider).
		Dur("infer", res.Timing.Infer).Dur("total", res.Timing.Total()).Int("destinations", len(dests)).
		Int("segs", len(parts)).Msg("SEG stored")
	return nil
}
