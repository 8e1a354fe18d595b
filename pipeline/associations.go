package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dimse"
)

// associations keeps one association per destination open between deliveries. Negotiating an
// association (TCP connect, A-ASSOCIATE, A-RELEASE) cost more than the C-STORE of a SEG, and a
// burst sends many SEGs to the same place. Deliveries to one destination take turns on its
// association, which also suits destinations that serve one association at a time (DCMTK's
// storescp without --fork): a second association would only wait in their listen queue. An
// association idle for keepIdle is released; Stop releases them all.
type associations struct {
	keepIdle time.Duration
	log      zerolog.Logger

	mu    sync.Mutex
	dests map[destKey]*destination
}

type destKey struct{ addr, calledAE string }

// destination is one destination's turn and its association. Whoever holds turn owns c.
type destination struct {
	turn     chan struct{}
	c        *dimse.Client
	sopClass string // what c's one presentation context carries
	syntax   string
	lastUsed time.Time
}

// keepIdle is how long an association to a destination stays open without a delivery.
const keepIdle = 5 * time.Second

func newAssociations(log zerolog.Logger) *associations {
	return &associations{keepIdle: keepIdle, log: log, dests: map[destKey]*destination{}}
}

// acquire waits for the destination's turn.
func (a *associations) acquire(ctx context.Context, k destKey) (*destination, error) {
	a.mu.Lock()
	d, ok := a.dests[k]
	if !ok {
		d = &destination{turn: make(chan struct{}, 1)}
		a.dests[k] = d
	}
	a.mu.Unlock()
	select {
	case d.turn <- struct{}{}:
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release gives the turn back; the association, if the holder left one, stays for the next.
func (d *destination) release() {
	d.lastUsed = time.Now()
	<-d.turn
}

// client returns the destination's open association for the SOP class and transfer syntax, or
// nil after releasing one negotiated for something else.
func (d *destination) client(ctx context.Context, sopClass, syntax string) *dimse.Client {
	if d.c != nil && (d.sopClass != sopClass || d.syntax != syntax) {
		_ = d.c.Release(ctx)
		d.c = nil
	}
	return d.c
}

// keep makes c the destination's association; drop forgets it after a failure (aborted).
func (d *destination) keep(c *dimse.Client, sopClass, syntax string) {
	d.c, d.sopClass, d.syntax = c, sopClass, syntax
}

func (d *destination) drop() {
	if d.c != nil {
		_ = d.c.Abort()
		d.c = nil
	}
}

// expire releases the associations idle for longer than keepIdle, skipping destinations in use.
func (a *associations) expire(ctx context.Context, now time.Time) {
	a.mu.Lock()
	dests := make([]*destination, 0, len(a.dests))
	for _, d := range a.dests {
		dests = append(dests, d)
	}
	a.mu.Unlock()
	for _, d := range dests {
		select {
		case d.turn <- struct{}{}:
		default:
			continue // in use: not idle
		}
		if d.c != nil && now.Sub(d.lastUsed) >= a.keepIdle {
			if err := d.c.Release(ctx); err != nil {
				a.log.Debug().Err(err).Msg("releasing an idle delivery association")
			}
			d.c = nil
		}
		<-d.turn
	}
}

// run expires idle associations until ctx is done, then releases all of them.
func (a *associations) run(ctx context.Context) {
	tick := time.NewTicker(a.keepIdle / 5)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			a.expire(ctx, now)
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			a.expire(rctx, time.Now().Add(a.keepIdle))
			cancel()
			return
		}
	}
}
