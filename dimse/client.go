package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
)

// ClientConfig describes the association a Client requests.
type ClientConfig struct {
	CallingAE string
	CalledAE  string
	// Contexts are the proposed presentation contexts; IDs are assigned (1, 3, 5, ...) when zero.
	Contexts       []PresentationContextRQ
	RoleSelections []RoleSelection
	// AsyncOps, when set, proposes an asynchronous operations window (PS3.7 D.3.3.3):
	// MaxInvoked is how many requests we would have outstanding at once; Association.Window
	// says how many the acceptor allows.
	AsyncOps     *AsyncOpsWindow
	MaxPDULength uint32
	Timeouts     Timeouts
	Logger       zerolog.Logger
	// Implementation identifies us in A-ASSOCIATE-RQ.
	ImplementationClassUID    string
	ImplementationVersionName string
	// TLS, when set, runs the association over TLS (PS3.15 B) with this configuration: its
	// RootCAs verify the acceptor, its Certificates are ours when the acceptor asks for one.
	// The server name checked is the host Dial was given unless ServerName is set.
	TLS *tls.Config
}

// Client is the requestor side of one association.
type Client struct {
	a *Association
}

// Dial connects to addr and negotiates an association (AE-1 to AE-3 of PS3.8 9.2).
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if len(cfg.Contexts) == 0 {
		return nil, errors.New("dial: no presentation contexts proposed")
	}
	if len(cfg.Contexts) > 128 {
		return nil, fmt.Errorf("dial: %d presentation contexts proposed, at most 128 fit in one association", len(cfg.Contexts))
	}
	// The PDU's fixed fields would cut a long title or name silently; refuse it here instead.
	for _, ae := range []struct{ what, v string }{{"called", cfg.CalledAE}, {"calling", cfg.CallingAE}} {
		if err := dcm.CheckAE(ae.v); err != nil {
			return nil, fmt.Errorf("dial: %s AE title: %w", ae.what, err)
		}
	}
	if uid := cfg.ImplementationClassUID; uid != "" {
		if err := dcm.CheckUID(uid); err != nil {
			return nil, fmt.Errorf("dial: implementation class UID: %w", err)
		}
	}
	if n := len(cfg.ImplementationVersionName); n > 16 {
		return nil, fmt.Errorf("dial: implementation version name %q has %d characters, at most 16 allowed", cfg.ImplementationVersionName, n)
	}
	rq := &AssociateRQ{
		ProtocolVersion:    1,
		CalledAE:           cfg.CalledAE,
		CallingAE:          cfg.CallingAE,
		ApplicationContext: ApplicationContextName,
		UserInfo: UserInfo{
			MaxLength:                 cfg.MaxPDULength,
			ImplementationClassUID:    cfg.ImplementationClassUID,
			ImplementationVersionName: cfg.ImplementationVersionName,
			RoleSelections:            cfg.RoleSelections,
			AsyncOps:                  cfg.AsyncOps,
		},
	}
	if rq.UserInfo.MaxLength == 0 {
		rq.UserInfo.MaxLength = DefaultMaxPDULength
	}
	for i, pc := range cfg.Contexts {
		if pc.ID == 0 {
			pc.ID = byte(2*i + 1)
		}
		rq.PresentationContexts = append(rq.PresentationContexts, pc)
	}
	t := cfg.Timeouts.withDefaults()
	log := cfg.Logger.With().Str("peer", addr).Str("called_ae", cfg.CalledAE).Logger()

	// AE-1: transport connect; its confirmation (Evt2) leads to AE-2.
	d := net.Dialer{Timeout: t.ARTIM}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var tlsState *tls.ConnectionState
	if cfg.TLS != nil {
		hctx, cancel := context.WithTimeout(ctx, t.ARTIM)
		tc, err := dialTLS(hctx, conn, addr, cfg.TLS)
		cancel()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		st := tc.ConnectionState()
		conn, tlsState = tc, &st
	}
	a := newAssociation(conn, true, t, log, rq.UserInfo.MaxLength)
	a.tlsState = tlsState
	_, _ = a.fire(evt1, eventArgs{}) // AE-1, done above: Sta4
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := a.fire(evt2, eventArgs{pdu: rq}); err != nil { // AE-2: send A-ASSOCIATE-RQ, Sta5
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	e, p, err := a.readEvent(t.ARTIM)
	act, ferr := a.fire(e, eventArgs{pdu: p, reason: reasonOf(err, AbortReasonUnexpectedPDU)})
	if ferr != nil {
		a.closeTransport()
		return nil, fmt.Errorf("dial %s: %w", addr, ferr)
	}
	switch act {
	case ae3:
	case ae4:
		return nil, fmt.Errorf("dial %s: %w", addr, &RejectError{*p.(*AssociateRJ)})
	case aa3:
		a.closeTransport()
		if ab, ok := p.(*Abort); ok {
			return nil, fmt.Errorf("dial %s: %w", addr, &AbortError{*ab})
		}
		return nil, fmt.Errorf("dial %s: %w", addr, ErrPeerAborted)
	default:
		a.closeTransport()
		if err == nil {
			err = fmt.Errorf("unexpected %s", e)
		}
		return nil, fmt.Errorf("dial %s: association not established: %w", addr, err)
	}
	ac := p.(*AssociateAC)
	a.CallingAE, a.CalledAE = cfg.CallingAE, cfg.CalledAE
	a.PeerImplementation = ac.UserInfo.ImplementationVersionName
	a.maxSend = ac.UserInfo.MaxLength
	a.adoptContexts(rq, ac)
	if w := ac.UserInfo.AsyncOps; w != nil && cfg.AsyncOps != nil {
		a.window = int(smallerWindow(w.MaxPerformed, cfg.AsyncOps.MaxInvoked))
		if a.window == 0 { // neither side has a limit
			a.window = math.MaxUint16
		}
	}
	// Roles the acceptor did not answer keep their defaults (PS3.7 D.3.3.4).
	if len(a.contexts) == 0 {
		_ = a.releaseQuietly(ctx)
		return nil, fmt.Errorf("dial %s: the peer accepted none of the %d proposed presentation contexts", addr, len(rq.PresentationContexts))
	}
	return &Client{a: a}, nil
}

func (a *Association) releaseQuietly(ctx context.Context) error {
	err := a.Release(ctx)
	a.closeTransport()
	return err
}

// Association exposes the negotiated association.
func (c *Client) Association() *Association { return c.a }

// FindContext returns an accepted context for the abstract syntax, preferring the transfer syntax
// given (the first accepted one otherwise).
func (c *Client) FindContext(abstractSyntax, transferSyntax string) (*PresentationContext, bool) {
	var found *PresentationContext
	for _, pc := range c.a.Contexts() {
		if pc.AbstractSyntax != abstractSyntax {
			continue
		}
		if pc.TransferSyntax == transferSyntax {
			return pc, true
		}
		if found == nil && transferSyntax == "" {
			found = pc
		}
	}
	return found, found != nil
}

func (c *Client) messageID() uint16 { return c.a.NextMessageID() }

// roundTrip sends a request and reads its one final response.
func (c *Client) roundTrip(ctx context.Context, pc *PresentationContext, rq Message, data io.Reader) (Message, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.a.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := c.a.SendMessage(pc, rq, data); err != nil {
		return nil, err
	}
	_, rsp, rspData, err := c.a.ReadMessage(c.a.timeouts.DIMSE)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if d, ok := rspData.(*dataReader); ok {
		if err := d.drain(); err != nil {
			return nil, err
		}
	}
	return rsp, nil
}

// Echo sends C-ECHO and returns the peer's status.
func (c *Client) Echo(ctx context.Context) (Status, error) {
	pc, ok := c.FindContext(VerificationSOPClass, "")
	if !ok {
		return Status{}, errors.New("echo: the peer did not accept the Verification SOP class")
	}
	id := c.messageID()
	rsp, err := c.roundTrip(ctx, pc, &CEchoRQ{MessageID: id, AffectedSOPClassUID: VerificationSOPClass}, nil)
	if err != nil {
		return Status{}, fmt.Errorf("echo: %w", err)
	}
	r, ok := rsp.(*CEchoRSP)
	if !ok || r.MessageIDBeingRespondedTo != id {
		return Status{}, c.unexpected("echo", rsp)
	}
	return r.Status, nil
}

// Store sends one data set, streamed from data in the transfer syntax of an accepted context, and
// returns the peer's status.
func (c *Client) Store(ctx context.Context, sopClass, sopInstance, transferSyntax string, data io.Reader) (Status, error) {
	return c.StoreWithOptions(ctx, sopClass, sopInstance, transferSyntax, data, StoreOptions{})
}

func (c *Client) unexpected(op string, rsp Message) error {
	_ = c.a.Abort()
	return fmt.Errorf("%s: unexpected response 0x%04X: %w", op, rsp.CommandField(), ErrAborted)
}

// Release ends the association politely.
func (c *Client) Release(ctx context.Context) error {
	if c.a.currentState() != sta6 {
		c.a.closeTransport()
		return nil
	}
	stop := context.AfterFunc(ctx, func() { _ = c.a.conn.SetDeadline(time.Now()) })
	defer stop()
	return c.a.releaseQuietly(ctx)
}

// Abort ends the association at once.
func (c *Client) Abort() error { return c.a.Abort() }
