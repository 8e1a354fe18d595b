package dimse

import (
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
)

// Request is one DIMSE request received by a Server.
type Request struct {
	Association *Association
	Context     *PresentationContext
	Command     Message
	// Data streams the data set that follows the command; nil when there is none. The server drains
	// whatever the handler leaves unread.
	Data io.Reader
}

// ResponseWriter sends responses to the request being served. Pending responses may be sent
// several times; the final one (any non-pending status) ends the exchange.
type ResponseWriter interface {
	Respond(rsp Response, data io.Reader) error
}

// Handler serves one DIMSE request.
type Handler interface {
	ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, w ResponseWriter, r *Request)

// ServeDIMSE calls f.
func (f HandlerFunc) ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request) { f(ctx, w, r) }

// ServeMux dispatches requests by SOP class and command field, like http.ServeMux by path.
type ServeMux struct {
	mu sync.RWMutex
	m  map[muxKey]Handler
}

type muxKey struct {
	sopClass string // "" matches any SOP class
	field    uint16
}

// NewServeMux returns an empty mux.
func NewServeMux() *ServeMux { return &ServeMux{m: map[muxKey]Handler{}} }

// Handle registers h for the command field on the SOP class ("" for every SOP class).
func (mux *ServeMux) Handle(sopClass string, field uint16, h Handler) {
	mux.mu.Lock()
	defer mux.mu.Unlock()
	mux.m[muxKey{sopClass, field}] = h
}

// HandleFunc registers a function.
func (mux *ServeMux) HandleFunc(sopClass string, field uint16, f func(context.Context, ResponseWriter, *Request)) {
	mux.Handle(sopClass, field, HandlerFunc(f))
}

// ServeDIMSE dispatches to the most specific handler; with none it answers "unrecognized operation".
func (mux *ServeMux) ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request) {
	mux.mu.RLock()
	h, ok := mux.m[muxKey{r.Context.AbstractSyntax, r.Command.CommandField()}]
	if !ok {
		h, ok = mux.m[muxKey{"", r.Command.CommandField()}]
	}
	mux.mu.RUnlock()
	if ok {
		h.ServeDIMSE(ctx, w, r)
		return
	}
	if rsp := FailureResponse(r.Command, Status{Code: StatusUnrecognizedOperation, ErrorComment: "no service for this command"}); rsp != nil {
		_ = w.Respond(rsp, nil)
	}
}

// FailureResponse builds the response type matching a request with the given status; nil for a
// command that has no response (C-CANCEL).
func FailureResponse(req Message, s Status) Response {
	switch q := req.(type) {
	case *CEchoRQ:
		return &CEchoRSP{MessageIDBeingRespondedTo: q.MessageID, AffectedSOPClassUID: q.AffectedSOPClassUID, Status: s}
	case *CStoreRQ:
		return &CStoreRSP{MessageIDBeingRespondedTo: q.MessageID, AffectedSOPClassUID: q.AffectedSOPClassUID, AffectedSOPInstanceUID: q.AffectedSOPInstanceUID, Status: s}
	case *CFindRQ:
		return &CFindRSP{MessageIDBeingRespondedTo: q.MessageID, AffectedSOPClassUID: q.AffectedSOPClassUID, Status: s}
	case *CMoveRQ:
		return &CMoveRSP{MessageIDBeingRespondedTo: q.MessageID, AffectedSOPClassUID: q.AffectedSOPClassUID, Status: s}
	case *CGetRQ:
		return &CGetRSP{MessageIDBeingRespondedTo: q.MessageID, AffectedSOPClassUID: q.AffectedSOPClassUID, Status: s}
	}
	return nil
}

// Policy decides which associations a Server accepts and with which presentation contexts. Its
// callbacks run while the requestor waits for A-ASSOCIATE-AC or -RJ: their context is cancelled
// when the server shuts down and once ARTIM has passed, after which the requestor has given up.
type Policy struct {
	// AETitle is the node's own AE title.
	AETitle string
	// StrictCalledAE rejects requests whose called AE title is not AETitle.
	StrictCalledAE bool
	// CallerAllowed, when set, decides whether a requestor may associate: its calling AE title,
	// its address and, on a TLS connection, its verified certificate.
	CallerAllowed func(ctx context.Context, r Requestor) bool
	// TransferSyntaxes returns the transfer syntaxes accepted for an abstract syntax, in the order
	// of preference; none means the abstract syntax is not supported.
	TransferSyntaxes func(ctx context.Context, abstractSyntax string) []string
	// SendTransferSyntaxes, when set, replaces TransferSyntaxes for contexts on which the
	// requestor asked for the SCP role (it receives C-STOREs of a C-GET from us): there the
	// preference is about what we can send, not what we like to store.
	SendTransferSyntaxes func(ctx context.Context, abstractSyntax string) []string
}

// Requestor is what an acceptor knows of the peer asking for an association.
type Requestor struct {
	CallingAE string
	Addr      net.Addr
	// TLS is the state of the connection when it is TLS (PS3.15 B), nil on plain TCP; its
	// PeerCertificates[0] is the client certificate, verified, when the peer sent one.
	TLS *tls.ConnectionState
}

// Server accepts associations and serves their requests, one goroutine per association. Serve may
// run on several listeners at once (plain TCP and TLS): the limits are shared.
type Server struct {
	Policy  Policy
	Handler Handler
	// MaxAssociations caps concurrent established associations, counted from their
	// A-ASSOCIATE-RQ; more are rejected as transient, local limit exceeded (0: 64).
	MaxAssociations int
	// MaxPending caps connections that have not yet sent a whole A-ASSOCIATE-RQ (Sta2); a
	// connection beyond it is closed at once. They do not count toward MaxAssociations, so
	// silent sockets cannot lock requestors out of it, and Timeouts.FirstPDU ends each of them
	// soon (0: 64).
	MaxPending int
	// MaxPerHost caps the connections from one IP address, pending and established together; one
	// beyond it is closed at once (0: no limit).
	MaxPerHost int
	// MaxPDULength is the maximum P-DATA-TF length announced to peers (0: DefaultMaxPDULength).
	MaxPDULength uint32
	// MaxOperations is how many C-STORE and C-ECHO requests of one association are performed at
	// once when its requestor proposes an asynchronous operations window (PS3.7 D.3.3.3): the
	// data sets still arrive one after the other, but each is committed and answered while the
	// next arrives. 0 or 1: one at a time, as for a requestor that proposes no window. Other
	// operations (C-FIND, C-MOVE, C-GET) always run alone.
	MaxOperations int
	Timeouts      Timeouts
	// ShutdownGrace is how long associations may finish their current message at shutdown.
	ShutdownGrace time.Duration
	Logger        zerolog.Logger
	// Implementation identifies the node in A-ASSOCIATE-AC.
	ImplementationClassUID    string
	ImplementationVersionName string

	mu     sync.Mutex
	active map[*Association]struct{}
	// Admission (under mu): connections in Sta2, oldest first; the count of established
	// associations; connections of both kinds per remote IP address.
	pendingConns list.List
	established  int
	perHost      map[string]int
	// refusals logs connections closed at admission, sampled: a flood must not flood the log.
	refusals zerolog.Logger
	wg       sync.WaitGroup
}

// ListenAndServe listens on addr and serves until ctx is cancelled.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx is cancelled, then stops accepting, lets associations
// finish the message in progress (up to ShutdownGrace), aborts the rest and returns. A temporary
// accept error (out of file descriptors, a connection reset before it was accepted) is logged and
// retried after a pause that doubles from 5 ms up to 1 s, as net/http's Server.Serve does; any
// other ends Serve with the error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.init()
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var acceptErr error
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if !isTemporary(err) {
				acceptErr = fmt.Errorf("accept: %w", err)
				break
			}
			delay = nextAcceptDelay(delay)
			s.Logger.Warn().Err(err).Stringer("retry_in", delay).Msg("accept failed")
			if !sleep(ctx, delay) {
				break
			}
			continue
		}
		delay = 0
		// Admission happens here, in accept order, not in the connection's goroutine: eviction
		// closes the oldest pending connection, and goroutines start in no particular order, so
		// a requestor accepted after a flood could otherwise be counted before it and evicted.
		pc := s.admitOrRefuse(conn)
		if pc == nil {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(connCtx, conn, pc)
		}()
	}
	s.shutdown(cancelConns)
	return acceptErr
}

// The pause after a temporary accept error: the first, and the most it doubles to.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// nextAcceptDelay is the pause after a temporary accept error that followed a pause of d (0 for
// none): the listener is not spun on while, say, file descriptors are exhausted.
func nextAcceptDelay(d time.Duration) time.Duration {
	if d == 0 {
		return minAcceptDelay
	}
	return min(2*d, maxAcceptDelay)
}

// isTemporary reports whether an accept error may go away by itself. Temporary is deprecated for
// errors in general, but for accept it is still what tells EMFILE or ECONNABORTED from a closed
// listener, and net/http relies on it the same way.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// shutdown interrupts idle associations at once and busy ones after the grace period.
func (s *Server) shutdown(cancel context.CancelFunc) {
	cancel()
	grace := s.ShutdownGrace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(grace)
	for {
		s.mu.Lock()
		for a := range s.active {
			if a.idle.Load() {
				_ = a.conn.SetReadDeadline(time.Now())
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			return
		case <-tick.C:
		case <-deadline:
			s.mu.Lock()
			for a := range s.active {
				_ = a.conn.Close()
			}
			s.mu.Unlock()
			<-done
			return
		}
	}
}

func (s *Server) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		s.active = map[*Association]struct{}{}
		s.perHost = map[string]int{}
		s.refusals = s.Logger.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second})
	}
}

// admitOrRefuse counts a new connection in, or closes it and says which limit refused it.
func (s *Server) admitOrRefuse(conn net.Conn) *admitted {
	pc, why := s.admit(conn)
	if why != "" {
		s.refusals.Warn().Str("peer", conn.RemoteAddr().String()).Str("limit", why).Msg("connection refused before association: closed")
		_ = conn.Close()
		return nil
	}
	return pc
}

// handle serves an admitted connection and gives its place back.
func (s *Server) handle(ctx context.Context, conn net.Conn, pc *admitted) {
	defer s.leave(pc)
	s.serveConn(ctx, conn, func() (int, bool) { return s.establish(pc) })
}

// admitted is one connection's place in the admission counts.
type admitted struct {
	conn        net.Conn
	host        string
	pending     *list.Element // in Server.pendingConns while in Sta2; nil after
	established bool
	evicted     bool
}

// hostOf is the IP address a per-host limit counts by.
func hostOf(addr net.Addr) string {
	if t, ok := addr.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	h, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return h
}

// admit counts a new connection as pending, or says which limit refuses it. With MaxPending
// connections already pending, the oldest of them is closed to make room: a requestor sends its
// A-ASSOCIATE-RQ within milliseconds of connecting, so a flood of silent sockets pushes out only
// its own, while closing the newcomer instead would lock every real requestor out until the
// flood's sockets time out.
func (s *Server) admit(conn net.Conn) (*admitted, string) {
	maxPending := s.MaxPending
	if maxPending <= 0 {
		maxPending = 64
	}
	host := hostOf(conn.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.MaxPerHost > 0 && s.perHost[host] >= s.MaxPerHost {
		return nil, "connections per host"
	}
	for s.pendingConns.Len() >= maxPending {
		old := s.pendingConns.Remove(s.pendingConns.Front()).(*admitted)
		old.pending, old.evicted = nil, true
		_ = old.conn.Close()
		s.refusals.Warn().Str("peer", old.conn.RemoteAddr().String()).Msg("pending connection without A-ASSOCIATE-RQ closed to make room")
	}
	pc := &admitted{conn: conn, host: host}
	pc.pending = s.pendingConns.PushBack(pc)
	s.perHost[host]++
	return pc, ""
}

// establish moves a connection from pending to established, once its A-ASSOCIATE-RQ is in, and
// returns the number of established associations, itself included; false when the connection
// was evicted meanwhile.
func (s *Server) establish(pc *admitted) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pc.evicted {
		return 0, false
	}
	s.pendingConns.Remove(pc.pending)
	pc.pending, pc.established = nil, true
	s.established++
	return s.established, true
}

func (s *Server) leave(pc *admitted) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pc.pending != nil {
		s.pendingConns.Remove(pc.pending)
		pc.pending = nil
	}
	if pc.established {
		s.established--
	}
	if s.perHost[pc.host]--; s.perHost[pc.host] <= 0 {
		delete(s.perHost, pc.host)
	}
}

func (s *Server) track(a *Association) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[a] = struct{}{}
}

func (s *Server) untrack(a *Association) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, a)
}

// serveConn runs one connection from AE-5 to its end. established is called once the
// A-ASSOCIATE-RQ is in; it returns the count of established associations, or false when the
// connection has been closed to make room.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, established func() (int, bool)) {
	log := s.Logger.With().Str("peer", conn.RemoteAddr().String()).Logger()
	a := newAssociation(conn, false, s.Timeouts, log, s.MaxPDULength)
	s.track(a)
	defer s.untrack(a)
	defer a.closeTransport()

	if _, err := a.fire(evt5, eventArgs{}); err != nil { // AE-5: start ARTIM, Sta2
		log.Error().Err(err).Msg("association")
		return
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if err := a.handshake(ctx, tc); err != nil {
			log.Warn().Err(err).Msg("TLS handshake failed: connection closed")
			_, _ = a.fire(evt17, eventArgs{}) // AA-5: the transport never carried a request
			return
		}
		log = a.log
	}
	e, p, err := a.readEvent(a.timeouts.FirstPDU)
	if e != evt6 {
		if e == evt18 {
			log.Info().Msg("no A-ASSOCIATE-RQ in time: closing")
		} else if err != nil && !errors.Is(err, io.EOF) {
			log.Warn().Err(err).Stringer("event", e).Msg("bad association request")
		}
		if _, ferr := a.fire(e, eventArgs{pdu: p, reason: reasonOf(err, AbortReasonUnexpectedPDU)}); ferr == nil && a.currentState() == sta13 {
			a.awaitClose()
		}
		return
	}
	n, ok := established()
	if !ok {
		return
	}
	rq := p.(*AssociateRQ)
	log = log.With().Str("calling_ae", rq.CallingAE).Str("called_ae", rq.CalledAE).Logger()
	a.log = log
	a.CallingAE, a.CalledAE = rq.CallingAE, rq.CalledAE
	a.PeerImplementation = rq.UserInfo.ImplementationVersionName

	// AE-6: the upper layer's own checks decide between Sta3 (the request goes on to the policy
	// below) and an A-ASSOCIATE-RJ already sent, in Sta13.
	if _, err := a.fire(evt6, eventArgs{pdu: rq}); err != nil {
		log.Error().Err(err).Msg("association")
		return
	}
	if a.currentState() == sta13 {
		a.awaitClose()
		return
	}
	if err := validateContextIDs(rq); err != nil {
		_ = a.abortProvider(err)
		return
	}
	policyCtx, cancel := context.WithTimeout(ctx, a.timeouts.ARTIM)
	ac, rj := s.negotiate(policyCtx, rq, Requestor{CallingAE: rq.CallingAE, Addr: conn.RemoteAddr(), TLS: a.tlsState}, n)
	cancel()
	if rj != nil {
		_, _ = a.fire(evt8, eventArgs{pdu: rj}) // AE-8
		log.Info().Stringer("reject", rj).Msg("association rejected")
		a.awaitClose()
		return
	}
	if _, err := a.fire(evt7, eventArgs{pdu: ac}); err != nil { // AE-7
		log.Warn().Err(err).Msg("send A-ASSOCIATE-AC")
		return
	}
	a.maxSend = rq.UserInfo.MaxLength
	a.adoptContexts(rq, ac)
	if w := ac.UserInfo.AsyncOps; w != nil {
		a.window = int(w.MaxPerformed)
	}
	log.Info().Int("contexts", len(a.contexts)).Int("window", max(a.window, 1)).Msg("association accepted")
	s.serveMessages(ctx, a)
}

// validateContextIDs enforces PS3.8 9.3.2.2: IDs are odd and unique within the request.
func validateContextIDs(rq *AssociateRQ) error {
	seen := map[byte]bool{}
	for _, pc := range rq.PresentationContexts {
		if pc.ID%2 == 0 {
			return protoErr(AbortReasonInvalidParameter, "presentation context ID %d is even", pc.ID)
		}
		if seen[pc.ID] {
			return protoErr(AbortReasonInvalidParameter, "presentation context ID %d appears twice", pc.ID)
		}
		seen[pc.ID] = true
	}
	return nil
}

// negotiate is the service user's answer to an A-ASSOCIATE indication (Sta3): the AE titles, the
// association limit and each presentation context.
func (s *Server) negotiate(ctx context.Context, rq *AssociateRQ, peer Requestor, active int) (*AssociateAC, *AssociateRJ) {
	remote := peer.Addr
	pol := s.Policy
	// PS3.8 Table 9-11: sixteen spaces mean no AE title and shall not be used; PS3.5 6.2 (AE):
	// no backslash, no control characters. Such a title names no application entity.
	if err := dcm.CheckAE(rq.CalledAE); err != nil {
		s.Logger.Warn().Str("called_ae", rq.CalledAE).Stringer("peer", remote).Err(err).Msg("called AE title invalid")
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCalledAENotRecognized}
	}
	if err := dcm.CheckAE(rq.CallingAE); err != nil {
		s.Logger.Warn().Str("calling_ae", rq.CallingAE).Stringer("peer", remote).Err(err).Msg("calling AE title invalid")
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCallingAENotRecognized}
	}
	if pol.StrictCalledAE && !strings.EqualFold(strings.TrimSpace(rq.CalledAE), strings.TrimSpace(pol.AETitle)) {
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCalledAENotRecognized}
	}
	if pol.CallerAllowed != nil && !pol.CallerAllowed(ctx, peer) {
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCallingAENotRecognized}
	}
	limit := s.MaxAssociations
	if limit <= 0 {
		limit = 64
	}
	if active > limit {
		return nil, &AssociateRJ{Result: RejectTransient, Source: RejectSourcePresentation, Reason: RejectReasonLocalLimitExceeded}
	}
	maxLen := s.MaxPDULength
	if maxLen == 0 {
		maxLen = DefaultMaxPDULength
	}
	ac := &AssociateAC{
		ProtocolVersion:    1,
		CalledAE:           rq.CalledAE,
		CallingAE:          rq.CallingAE,
		ApplicationContext: ApplicationContextName,
		UserInfo: UserInfo{
			MaxLength:                 maxLen,
			ImplementationClassUID:    s.ImplementationClassUID,
			ImplementationVersionName: s.ImplementationVersionName,
		},
	}
	if w := rq.UserInfo.AsyncOps; w != nil {
		ac.UserInfo.AsyncOps = &AsyncOpsWindow{MaxInvoked: 1, MaxPerformed: performedWindow(w.MaxInvoked, s.MaxOperations)}
	}
	accepted := map[string]bool{}
	scpRole := map[string]bool{}
	for _, r := range rq.UserInfo.RoleSelections {
		scpRole[r.SOPClassUID] = r.SCPRole
	}
	for _, pc := range rq.PresentationContexts {
		res := PresentationContextAC{ID: pc.ID, Result: ResultAbstractSyntaxNotSupported}
		var offered []string
		switch {
		case scpRole[pc.AbstractSyntax] && pol.SendTransferSyntaxes != nil:
			offered = pol.SendTransferSyntaxes(ctx, pc.AbstractSyntax)
		case pol.TransferSyntaxes != nil:
			offered = pol.TransferSyntaxes(ctx, pc.AbstractSyntax)
		}
		if len(offered) > 0 {
			res.Result = ResultTransferSyntaxesNotSupported
		pick:
			for _, ts := range offered {
				for _, p := range pc.TransferSyntaxes {
					if p == ts {
						res.Result, res.TransferSyntax = ResultAcceptance, ts
						accepted[pc.AbstractSyntax] = true
						break pick
					}
				}
			}
		}
		ac.PresentationContexts = append(ac.PresentationContexts, res)
	}
	// SCP/SCU role selection: accept the proposed roles for accepted abstract syntaxes, so that a
	// C-GET requestor can act as Storage SCP on the same association.
	for _, r := range rq.UserInfo.RoleSelections {
		if accepted[r.SOPClassUID] {
			ac.UserInfo.RoleSelections = append(ac.UserInfo.RoleSelections, r)
		}
	}
	return ac, nil
}

// performedWindow is the number of operations an acceptor performs at once for a requestor that
// may invoke invoked of them: the smaller of that and our own limit, never more than the item
// can say, never 0 (which would mean no limit).
func performedWindow(invoked uint16, limit int) uint16 {
	return smallerWindow(invoked, uint16(min(max(limit, 1), math.MaxUint16)))
}

// smallerWindow is the smaller of two limits on outstanding operations, where 0 is no limit
// (PS3.7 D.3.3.3.1): 0 only when both are.
func smallerWindow(a, b uint16) uint16 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// adoptContexts records the accepted contexts and their roles.
func (a *Association) adoptContexts(rq *AssociateRQ, ac *AssociateAC) {
	roles := map[string]RoleSelection{}
	for _, r := range ac.UserInfo.RoleSelections {
		roles[r.SOPClassUID] = r
	}
	abstract := map[byte]string{}
	for _, pc := range rq.PresentationContexts {
		abstract[pc.ID] = pc.AbstractSyntax
	}
	for _, pc := range ac.PresentationContexts {
		if pc.Result != ResultAcceptance {
			continue
		}
		as, ok := abstract[pc.ID]
		if !ok {
			continue
		}
		c := &PresentationContext{ID: pc.ID, AbstractSyntax: as, TransferSyntax: pc.TransferSyntax, RequestorSCU: true}
		if r, ok := roles[as]; ok {
			c.RequestorSCU, c.RequestorSCP = r.SCURole, r.SCPRole
		}
		a.contexts[pc.ID] = c
	}
}

type responseWriter struct {
	a    *Association
	pc   *PresentationContext
	done bool
}

func (w *responseWriter) Respond(rsp Response, data io.Reader) error {
	if w.done {
		return errors.New("respond: the final response was already sent")
	}
	if !rsp.status().IsPending() {
		w.done = true
	}
	return w.a.SendMessage(w.pc, rsp, data)
}

func (s *Server) serveMessages(ctx context.Context, a *Association) {
	ops := newOperations(a.window)
	// Operations still being performed finish (their objects are stored) before the association's
	// goroutine returns and the connection is closed.
	defer ops.wait()
	for {
		if ctx.Err() != nil {
			a.log.Info().Msg("shutting down: aborting association")
			_ = a.Abort()
			return
		}
		ops.acquire()
		pc, msg, data, err := a.ReadMessage(a.timeouts.Idle)
		var unknown *UnknownCommandError
		switch {
		case err == nil:
		case errors.As(err, &unknown):
			// PS3.7 C.4.2: answer an unrecognized operation rather than dropping the association;
			// no response type exists for an unknown command, so the association ends politely.
			a.log.Warn().Err(err).Msg("unrecognized command: aborting association")
			ops.release()
			ops.wait()
			_ = a.Abort()
			return
		case errors.Is(err, ErrReleaseRequested):
			// The responses still owed go out before the A-RELEASE-RP (AR-7, then AR-4).
			ops.release()
			ops.wait()
			if err := a.answerRelease(); err != nil {
				a.log.Warn().Err(err).Msg("release")
			}
			a.log.Info().Msg("association released")
			return
		case ctx.Err() != nil:
			// Shutdown interrupted the wait for the next message.
			ops.release()
			a.log.Info().Msg("shutting down: association aborted")
			_ = a.Abort()
			return
		default:
			ops.release()
			a.logEnd(err)
			return
		}
		d, _ := data.(*dataReader)
		if ops.concurrent() && performedConcurrently(msg) {
			// The handler reads its data set in its own goroutine; the wire is this loop's again
			// once the last fragment is in, while the handler commits and answers.
			var received chan struct{}
			if d != nil {
				received = make(chan struct{})
				d.onEnd = func() { close(received) }
			}
			go func() {
				defer ops.release()
				s.serveRequest(ctx, a, pc, msg, d)
			}()
			if d != nil {
				<-received
				if d.endErr() != nil {
					// The handler has logged it; a release asked for mid-data completes once
					// every operation has been answered.
					ops.wait()
					s.endMidData(a, msg)
					return
				}
			}
			continue
		}
		ops.release()
		ops.wait()
		if !s.serveRequest(ctx, a, pc, msg, d) {
			return
		}
		if a.currentState() != sta6 {
			s.endMidData(a, msg)
			return
		}
	}
}

// performedConcurrently reports whether msg may be performed while others are: a C-STORE or a
// C-ECHO needs the association only for its one response. C-FIND, C-MOVE and C-GET send pending
// responses and read C-CANCEL or sub-operation responses, so they run alone.
func performedConcurrently(msg Message) bool {
	switch msg.(type) {
	case *CStoreRQ, *CEchoRQ:
		return true
	}
	return false
}

// serveRequest runs the handler for one request, drains what it left of the data set and sends
// a failure response if it sent none. It reports whether the association can go on.
func (s *Server) serveRequest(ctx context.Context, a *Association, pc *PresentationContext, msg Message, d *dataReader) bool {
	w := &responseWriter{a: a, pc: pc}
	req := &Request{Association: a, Context: pc, Command: msg}
	if d != nil {
		req.Data = d
	}
	s.Handler.ServeDIMSE(ctx, w, req)
	if d != nil {
		if err := d.drain(); err != nil && !errors.Is(err, ErrReleaseRequested) {
			a.logEnd(err)
			return false
		}
	}
	if st := a.currentState(); !w.done && (st == sta6 || st == sta8) {
		if rsp := FailureResponse(msg, Status{Code: StatusProcessingFailure, ErrorComment: "no response from the service"}); rsp != nil {
			if err := a.SendMessage(pc, rsp, nil); err != nil {
				a.logEnd(err)
				return false
			}
		}
	}
	return true
}

// endMidData ends an association that left Sta6 during an operation. When the peer asked for
// release between the fragments of its data set (or while we waited for its answer to a C-GET
// sub-operation), PS3.8 7.2 lets the acceptor still send P-DATA (AR-7), so the failed operation
// has had its response; now the release completes as the peer asked (AR-4). Otherwise the peer
// or the transport ended it, and there is nothing left to do.
func (s *Server) endMidData(a *Association, msg Message) {
	if a.currentState() != sta8 {
		return
	}
	a.log.Warn().Uint16("command", msg.CommandField()).Msg("A-RELEASE-RQ before the operation completed: operation failed, association released")
	if err := a.answerRelease(); err != nil {
		a.log.Warn().Err(err).Msg("release")
	}
}

// operations bounds the operations an association performs at once: its window, negotiated in
// A-ASSOCIATE-AC. A slot is taken before each message is read, so a requestor that invokes more
// than it may is held back by TCP, not served out of bounds.
type operations struct {
	slots chan struct{}
}

func newOperations(window int) *operations {
	return &operations{slots: make(chan struct{}, max(window, 1))}
}

func (o *operations) acquire()         { o.slots <- struct{}{} }
func (o *operations) release()         { <-o.slots }
func (o *operations) concurrent() bool { return cap(o.slots) > 1 }

// wait returns once no operation is in progress.
func (o *operations) wait() {
	for range cap(o.slots) {
		o.slots <- struct{}{}
	}
	for range cap(o.slots) {
		<-o.slots
	}
}

func (a *Association) logEnd(err error) {
	switch {
	case errors.Is(err, ErrPeerAborted):
		a.log.Info().Err(err).Msg("association aborted by peer")
	case errors.Is(err, ErrClosed):
		a.log.Info().Err(err).Msg("connection closed")
	default:
		a.log.Warn().Err(err).Msg("association ended")
	}
}
