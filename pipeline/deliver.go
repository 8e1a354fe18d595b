package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
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
	p.metrics.Activity.Delivered(dest, time.Now(), err)
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
			if c, err = p.dialDestination(ctx, a, seg.SOPClassUID, seg.TransferSyntaxUID); err != nil {
				return fmt.Errorf("associate: %w", err)
			}
			// Kept from here on, so that a failure below aborts it (drop).
			d.keep(c, seg.SOPClassUID, seg.TransferSyntaxUID)
		}
		ts, data, err := sendable(c, seg, bufio.NewReaderSize(rc, 64<<10))
		if err != nil {
			d.drop()
			return err
		}
		st, err := c.Store(ctx, seg.SOPClassUID, seg.SOPInstanceUID, ts, data)
		data.Close()
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
		// Success, or a warning (0xB000, 0xB007, 0xB006): the object is kept.
		if st.Code != dimse.StatusSuccess && st.Code&0xF000 != 0xB000 {
			return fmt.Errorf("C-STORE: the destination answered %s", st)
		}
		return nil
	}
}

// dialDestination requests an association with a delivery's destination for
// one SOP class stored in transfer syntax ts: over TLS when the configuration
// marks the destination so, with a context for each syntax the object can be
// sent in (storeContexts).
func (p *Pipeline) dialDestination(ctx context.Context, a DeliverArgs, sopClass, ts string) (*dimse.Client, error) {
	return dimse.DialPeer(ctx, Peer{Host: a.Host, Port: a.Port}.Addr(), p.destinationTLS(a), p.opts.TLS, dimse.ClientConfig{
		CallingAE:                 p.opts.AETitle,
		CalledAE:                  a.AETitle,
		Contexts:                  storeContexts(sopClass, ts),
		Logger:                    p.log,
		ImplementationClassUID:    p.opts.ImplementationClassUID,
		ImplementationVersionName: p.opts.ImplementationVersionName,
	})
}

// sendable picks the transfer syntax the association accepted for an object
// (storeSyntax) and returns its data set in it (transcode.Open): as stored,
// converted to implicit VR little endian as it is read, or decompressed.
// Closing data ends a conversion the C-STORE stopped reading; close it when the
// C-STORE is over.
func sendable(c *dimse.Client, in store.Instance, stored io.Reader) (ts string, data io.ReadCloser, err error) {
	ts, ok := storeSyntax(c, in.SOPClassUID, in.TransferSyntaxUID)
	if !ok {
		return "", nil, fmt.Errorf("the destination accepted no presentation context for %s in %s",
			in.SOPClassUID, strings.Join(transcode.Offer(in.TransferSyntaxUID), " or "))
	}
	data, err = transcode.Open(stored, in.TransferSyntaxUID, ts, dcm.Limits{})
	if err != nil {
		return "", nil, fmt.Errorf("send as %s: %w", dcm.TransferSyntaxName(ts), err)
	}
	return ts, data, nil
}

// storeContexts proposes one presentation context per transfer syntax the
// object can be sent in (transcode.Offer: as stored, explicit also as implicit,
// a decodable compressed syntax also decompressed) rather than one context
// listing them all: the receiver answers each context with one syntax of its
// choosing, so separate contexts let the node send in the stored syntax
// whenever the receiver accepts it, and converted only when it does not.
func storeContexts(sopClass, ts string) []dimse.PresentationContextRQ {
	var out []dimse.PresentationContextRQ
	for _, s := range transcode.Offer(ts) {
		out = append(out, dimse.PresentationContextRQ{AbstractSyntax: sopClass, TransferSyntaxes: []string{s}})
	}
	return out
}

// storeSyntax picks the first of transcode.Offer's syntaxes for an object
// stored in ts that the association accepted.
func storeSyntax(c *dimse.Client, sopClass, ts string) (string, bool) {
	for _, s := range transcode.Offer(ts) {
		if _, ok := c.FindContext(sopClass, s); ok {
			return s, true
		}
	}
	return "", false
}

// destinationTLS says whether a delivery's destination is marked TLS in the configuration as it
// is now (a destination, or the AE table for reply_to_sender): the job names the destination,
// the configuration says how to reach it, so a job queued before a change of the setting
// follows the change.
func (p *Pipeline) destinationTLS(a DeliverArgs) bool {
	for _, d := range append(append([]Peer(nil), p.opts.Config.Destinations...), p.opts.Peers...) {
		if d.AETitle == a.AETitle && d.Host == a.Host && d.Port == a.Port {
			return d.TLS
		}
	}
	return false
}
