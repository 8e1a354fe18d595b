package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/seg/pixel/transcode"
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
	defer rc.Close()
	c, err := dimse.Dial(ctx, Peer{Host: a.Host, Port: a.Port}.Addr(), dimse.ClientConfig{
		CallingAE: p.opts.AETitle,
		CalledAE:  a.AETitle,
		// As stored, else converted (decompressed when the object's syntax is encapsulated)
		// for a destination that accepts none of the stored syntaxes.
		Contexts: []dimse.PresentationContextRQ{{
			AbstractSyntax:   seg.SOPClassUID,
			TransferSyntaxes: transcode.Offer(seg.TransferSyntaxUID),
		}},
		Logger:                    p.log,
		ImplementationClassUID:    p.opts.ImplementationClassUID,
		ImplementationVersionName: p.opts.ImplementationVersionName,
	})
	if err != nil {
		return fmt.Errorf("associate: %w", err)
	}
	ts := seg.TransferSyntaxUID
	for _, offered := range transcode.Offer(seg.TransferSyntaxUID) {
		if _, ok := c.FindContext(seg.SOPClassUID, offered); ok {
			ts = offered
			break
		}
	}
	data, err := transcode.Open(bufio.NewReaderSize(rc, 64<<10), seg.TransferSyntaxUID, ts, dcm.Limits{})
	if err != nil {
		_ = c.Release(ctx)
		return fmt.Errorf("send as %s: %w", dcm.TransferSyntaxName(ts), err)
	}
	defer data.Close()
	st, err := c.Store(ctx, seg.SOPClassUID, seg.SOPInstanceUID, ts, data)
	if err != nil {
		_ = c.Abort()
		return fmt.Errorf("C-STORE: %w", err)
	}
	// Success, or a warning (0xB000, 0xB007, 0xB006): the object is kept.
	if st.Code != dimse.StatusSuccess && st.Code&0xF000 != 0xB000 {
		_ = c.Release(ctx)
		return fmt.Errorf("C-STORE: the destination answered %s", st)
	}
	if err := c.Release(ctx); err != nil {
		// Stored already: a failed release does not undo it.
		p.log.Debug().Err(err).Msg("release after delivery")
	}
	return nil
}
