package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/store"
)

// deliverWorker sends one SEG to one destination with C-STORE.
type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	p *Pipeline
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	a := job.Args
	p := w.p
	dest := a.Destination()
	log := p.log.With().Str("seg_instance_uid", a.SEGInstanceUID).Str("destination", dest).
		Int64("job", job.ID).Int("attempt", job.Attempt).Int("max_attempts", job.MaxAttempts).Logger()

	p.metrics.DeliveryAttempts.WithLabelValues(dest).Inc()
	err := w.send(ctx, a)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn().Err(err).Msg("SEG no longer in the archive: delivery cancelled")
		return river.JobCancel(err)
	}
	if err != nil {
		p.metrics.DeliveryFailures.WithLabelValues(dest).Inc()
		ev := log.Warn().Err(err)
		if job.Attempt >= job.MaxAttempts {
			ev.Msg("delivery failed for the last time: dead letter (espnode jobs list --state discarded; espnode jobs retry)")
		} else {
			ev.Msg("delivery failed; will retry")
		}
		return err
	}
	e2e := time.Since(time.Unix(0, a.ReceivedAt))
	p.metrics.EndToEnd.WithLabelValues(a.Channel).Observe(e2e.Seconds())
	log.Info().Dur("since_received", e2e).Msg("SEG delivered")
	return nil
}

func (w *deliverWorker) send(ctx context.Context, a DeliverArgs) error {
	p := w.p
	ctx, cancel := context.WithTimeout(ctx, p.opts.Config.DeliverTimeout)
	defer cancel()
	// The index row says what the SEG is; the store opens it at its data set.
	rc, seg, err := p.opts.Store.OpenDataSet(ctx, a.SEGInstanceUID)
	if err != nil {
		return err
	}
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	addr := Peer{Host: a.Host, Port: a.Port}.Addr()
	d, err := p.assocs.acquire(ctx, destKey{addr, a.AETitle})
	if err != nil {
		return fmt.Errorf("waiting for the association to %s: %w", a.Destination(), err)
	}
	defer d.release()
	c := d.client(ctx, seg.SOPClassUID, seg.TransferSyntaxUID)
	reused := c != nil
	for {
		if c == nil {
			if c, err = w.dial(ctx, addr, a.AETitle, seg.SOPClassUID, seg.TransferSyntaxUID); err != nil {
				return fmt.Errorf("associate: %w", err)
			}
		}
		var st dimse.Status
		st, err = c.Store(ctx, seg.SOPClassUID, seg.SOPInstanceUID, seg.TransferSyntaxUID, bufio.NewReaderSize(rc, 64<<10))
		if err != nil {
			d.drop()
			c = nil
			if reused && ctx.Err() == nil && (dimse.IsAssociationGone(err) || errors.Is(err, dimse.ErrReleaseRequested)) {
				// The destination closed the association while it was idle: once more on a
				// new one, from the start of the SEG.
				reused = false
				rc.Close()
				if rc, _, err = p.opts.Store.OpenDataSet(ctx, a.SEGInstanceUID); err != nil {
					rc = nil
					return err
				}
				continue
			}
			return fmt.Errorf("C-STORE: %w", err)
		}
		d.keep(c, seg.SOPClassUID, seg.TransferSyntaxUID)
		// Success, or a warning (0xB000, 0xB007, 0xB006): the object is kept.
		if st.Code != dimse.StatusSuccess && st.Code&0xF000 != 0xB000 {
			return fmt.Errorf("C-STORE: the destination answered %s", st)
		}
		return nil
	}
}

// dial opens an association to a destination for one SOP class in one transfer syntax.
func (w *deliverWorker) dial(ctx context.Context, addr, calledAE, sopClass, syntax string) (*dimse.Client, error) {
	p := w.p
	return dimse.Dial(ctx, addr, dimse.ClientConfig{
		CallingAE: p.opts.AETitle,
		CalledAE:  calledAE,
		Contexts: []dimse.PresentationContextRQ{{
			AbstractSyntax:   sopClass,
			TransferSyntaxes: []string{syntax},
		}},
		Logger:                    p.log,
		ImplementationClassUID:    p.opts.ImplementationClassUID,
		ImplementationVersionName: p.opts.ImplementationVersionName,
	})
}
