package dimse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Timeouts bound every wait on a peer.
type Timeouts struct {
	// ARTIM bounds the wait for the peer to close after a reject, release or abort (PS3.8 9.1.5),
	// and the service user's answer to an A-ASSOCIATE indication.
	ARTIM time.Duration
	// FirstPDU is ARTIM's run in Sta2 (AE-5): from the transport connection to the last byte of
	// the A-ASSOCIATE-RQ, the TLS handshake included. PS3.8 leaves ARTIM's value to the
	// implementation; a real requestor sends its request at once, so a connection that stays
	// silent is let go long before the 30 s of ARTIM's other uses.
	FirstPDU time.Duration
	// Idle bounds the wait for the next message on an established association.
	Idle time.Duration
	// DIMSE bounds the wait for a response, and each read or write within a message: a peer that
	// stalls mid-PDU is cut off after this.
	DIMSE time.Duration
}

// DefaultTimeouts are DCMTK-like: 30 s ARTIM and DIMSE, five minutes idle; 10 s for the
// A-ASSOCIATE-RQ after connect.
func DefaultTimeouts() Timeouts {
	return Timeouts{ARTIM: 30 * time.Second, FirstPDU: 10 * time.Second, Idle: 5 * time.Minute, DIMSE: 30 * time.Second}
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	if t.ARTIM <= 0 {
		t.ARTIM = d.ARTIM
	}
	if t.FirstPDU <= 0 {
		t.FirstPDU = min(d.FirstPDU, t.ARTIM)
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	if t.DIMSE <= 0 {
		t.DIMSE = d.DIMSE
	}
	return t
}

// PresentationContext is one accepted presentation context.
type PresentationContext struct {
	ID             byte
	AbstractSyntax string
	TransferSyntax string
	// Roles after SCP/SCU role selection; both default to the standard's (requestor SCU, acceptor SCP).
	RequestorSCU, RequestorSCP bool
}

// Errors that end an association; callers tell them apart with errors.Is.
var (
	ErrReleased    = errors.New("association released")
	ErrAborted     = errors.New("association aborted")
	ErrPeerAborted = errors.New("association aborted by peer")
	ErrRejected    = errors.New("association rejected")
	ErrClosed      = errors.New("transport connection closed")
	// ErrReleaseRequested: the peer sent A-RELEASE-RQ (PS3.8 7.2), possibly in the middle of a
	// message, whose data then ends with this error. The operation in progress cannot complete;
	// its response may still be sent (Sta8, AR-7), after which the server answers the release.
	ErrReleaseRequested = errors.New("peer requested release")
)

// IsAssociationGone reports whether err ended the association (aborted by either side, or the
// connection closed): there is no one left to answer.
func IsAssociationGone(err error) bool {
	return errors.Is(err, ErrAborted) || errors.Is(err, ErrPeerAborted) || errors.Is(err, ErrClosed)
}

// AbortError is an abort received from the peer, with its source and reason.
type AbortError struct{ Abort }

func (e *AbortError) Error() string  { return "association aborted by peer: " + e.Abort.String() }
func (e *AbortError) Unwrap() error  { return ErrPeerAborted }
func (e *RejectError) Unwrap() error { return ErrRejected }

// RejectError is an A-ASSOCIATE-RJ received by a requestor.
type RejectError struct{ AssociateRJ }

func (e *RejectError) Error() string { return "association rejected: " + e.AssociateRJ.String() }

// Association is one DICOM association, in either role. One goroutine at a time reads from it
// (ReadMessage and the data it returns); SendMessage may be called from other goroutines at the
// same time, which is how an asynchronous operations window above 1 (PS3.7 D.3.3.3) answers
// several operations at once: fsmMu orders the state machine's transitions and the writes they
// make, sendMu keeps each message's fragments together.
type Association struct {
	conn      net.Conn
	r         *bufio.Reader
	w         *bufio.Writer
	requestor bool
	// fsmMu guards state, w and what the state machine's actions touch; fire holds it.
	fsmMu sync.Mutex
	state state
	// sendMu is held for the whole of one SendMessage: its buffers, and its PDUs in a row.
	sendMu   sync.Mutex
	timeouts Timeouts
	log      zerolog.Logger

	// maxRecv is the maximum P-DATA-TF length we announced; maxSend the peer's (0: unlimited).
	maxRecv, maxSend uint32
	// window is how many operations the acceptor performs at once, as A-ASSOCIATE-AC's
	// asynchronous operations window says (0 when it has none: one).
	window int

	CallingAE, CalledAE string
	PeerImplementation  string
	contexts            map[byte]*PresentationContext
	// tlsState is the TLS connection's state once its handshake is done; nil on plain TCP.
	tlsState *tls.ConnectionState

	// artim is when the ARTIM timer expires; zero while it is stopped.
	artim time.Time
	// abortSent is set once this side has sent an A-ABORT: the association then only waits for
	// the peer to close.
	abortSent bool

	// pdus reads PDU headers and the bodies of PDUs other than P-DATA-TF into a reused buffer.
	pdus *PDUReader
	// Reading state of the P-DATA-TF PDU in progress: bytes of its body not yet consumed.
	pduLeft uint32
	// idle is set while waiting for the first PDU of the next message; shutdown interrupts only then.
	idle atomic.Bool

	nextID uint16
	// Buffers reused from message to message: the PDU being sent, the P-DATA-TF fragment being
	// sent, the look-ahead over what is being fragmented, and the command set received and sent.
	pduBuf    []byte
	sendBuf   []byte
	src       *bufio.Reader
	cmdBuf    []byte
	cmdOut    []byte
	cmdDec    commandReader
	cmdEnc    commandEncoder
	cmdReader bytes.Reader
}

func newAssociation(conn net.Conn, requestor bool, t Timeouts, log zerolog.Logger, maxRecv uint32) *Association {
	if maxRecv == 0 {
		maxRecv = DefaultMaxPDULength
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	return &Association{
		conn:      conn,
		r:         r,
		w:         bufio.NewWriterSize(conn, 64<<10),
		requestor: requestor,
		state:     sta1,
		timeouts:  t.withDefaults(),
		log:       log,
		maxRecv:   maxRecv,
		contexts:  map[byte]*PresentationContext{},
		pdus:      NewPDUReader(r, maxRecv),
	}
}

// Context returns an accepted presentation context by ID.
func (a *Association) Context(id byte) (*PresentationContext, bool) {
	pc, ok := a.contexts[id]
	return pc, ok
}

// Contexts returns the accepted presentation contexts.
func (a *Association) Contexts() []*PresentationContext {
	out := make([]*PresentationContext, 0, len(a.contexts))
	for id := 1; id < 256; id += 2 {
		if pc, ok := a.contexts[byte(id)]; ok {
			out = append(out, pc)
		}
	}
	return out
}

// Window is how many operations the requestor may have outstanding at once: the acceptor's
// maximum-number-operations-performed in A-ASSOCIATE-AC (PS3.7 D.3.3.3), 1 when the window was
// not negotiated. A requestor that uses more than 1 sends its requests from one goroutine and
// reads the responses (in any order; MessageIDBeingRespondedTo tells which) from another.
func (a *Association) Window() int { return max(a.window, 1) }

// RemoteAddr is the peer's network address.
func (a *Association) RemoteAddr() net.Addr { return a.conn.RemoteAddr() }

func (a *Association) send(p PDU) error {
	_ = a.conn.SetWriteDeadline(time.Now().Add(a.timeouts.DIMSE))
	if a.pduBuf == nil {
		a.pduBuf = make([]byte, 0, 1024) // an A-ASSOCIATE-AC with a few contexts, in one go
	}
	var err error
	a.pduBuf, err = writePDU(a.w, a.pduBuf, p)
	return err
}

// writePData writes one encoded P-DATA-TF PDU. It is not flushed: a message's last fragment is.
func (a *Association) writePData(pdu []byte) error {
	_ = a.conn.SetWriteDeadline(time.Now().Add(a.timeouts.DIMSE))
	if _, err := a.w.Write(pdu); err != nil {
		return a.writeFailed(err)
	}
	return nil
}

func (a *Association) closeTransport() {
	_ = a.conn.Close()
}

// awaitClose is Sta13: the peer is expected to close the connection; ARTIM bounds the wait.
// After an A-RELEASE-RP or A-ASSOCIATE-RJ a PDU that still arrives is ignored (AA-6) or answered
// with an abort (AA-7). Once an A-ABORT has gone out, nothing more is read into the state machine:
// whatever follows a PDU bad enough to abort on cannot even be split into PDUs reliably, and
// answering each piece would be one abort per six bytes of garbage. The bytes are read and
// dropped only to see the close.
func (a *Association) awaitClose() {
	deadline := a.readDeadline(a.timeouts.ARTIM)
	for a.currentState() == sta13 {
		_ = a.conn.SetReadDeadline(deadline)
		if a.abortSent {
			a.drainUntilClosed()
			return
		}
		h, err := a.pdus.ReadHeader()
		var pe *ProtocolError
		switch {
		case errors.As(err, &pe):
			if _, err := a.fire(evt19, eventArgs{reason: pe.Reason}); err != nil {
				a.closeTransport()
				return
			}
			continue
		case err != nil:
			a.closedOrExpired(err)
			return
		}
		if _, err := io.CopyN(io.Discard, a.r, int64(h.Length)); err != nil {
			a.closedOrExpired(err)
			return
		}
		if _, err := a.fire(eventForPDU(h.Type), eventArgs{reason: AbortReasonUnexpectedPDU}); err != nil {
			a.closeTransport()
			return
		}
	}
	a.closeTransport()
}

// drainUntilClosed reads and drops what the peer sends until it closes (Evt17, AR-5) or ARTIM
// expires (Evt18, AA-2), under the read deadline already set.
func (a *Association) drainUntilClosed() {
	_, err := io.Copy(io.Discard, a.r)
	if err == nil {
		err = io.EOF
	}
	a.closedOrExpired(err)
	a.closeTransport()
}

// closedOrExpired fires the event a failed read in Sta13 stands for: ARTIM's expiry or the close.
func (a *Association) closedOrExpired(err error) {
	if isTimeout(err) {
		_, _ = a.fire(evt18, eventArgs{})
	} else {
		_, _ = a.fire(evt17, eventArgs{})
	}
}

// abortProvider ends the association after a protocol error on our side of the wire (AA-8).
func (a *Association) abortProvider(cause error) error {
	reason := AbortReasonNotSpecified
	var pe *ProtocolError
	if errors.As(cause, &pe) {
		reason = pe.Reason
	}
	a.log.Warn().Err(cause).Uint8("abort_reason", uint8(reason)).Msg("protocol error: aborting association")
	if _, err := a.fire(evt19, eventArgs{reason: reason}); err != nil {
		a.closeTransport()
	}
	a.awaitClose()
	return fmt.Errorf("%w: %v", ErrAborted, cause)
}

// Abort sends an A-ABORT (service-user source) and closes the transport (AA-1).
func (a *Association) Abort() error {
	if a.currentState() == sta1 {
		return nil
	}
	if _, err := a.fire(evt15, eventArgs{}); err != nil {
		a.closeTransport()
		return err
	}
	a.closeTransport()
	a.setState(sta1)
	return nil
}

// currentState reads the state where a sender may be firing events at the same time.
func (a *Association) currentState() state {
	a.fsmMu.Lock()
	defer a.fsmMu.Unlock()
	return a.state
}

// setState moves to s outside an action of the state machine (a local abort, a dead transport).
func (a *Association) setState(s state) {
	a.fsmMu.Lock()
	a.state = s
	a.fsmMu.Unlock()
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// readEvent reads the next PDU header with the given timeout and turns it into an event.
// For P-DATA-TF only the header is consumed (its PDVs are streamed by the caller); other PDUs are
// read and decoded whole (they are small and bounded).
func (a *Association) readEvent(timeout time.Duration) (event, PDU, error) {
	_ = a.conn.SetReadDeadline(a.readDeadline(timeout))
	h, err := a.pdus.ReadHeader()
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		return evt19, nil, err
	case isTimeout(err):
		return evt18, nil, err
	case err != nil:
		return evt17, nil, err
	}
	if h.Type == TypePDataTF {
		a.pduLeft = h.Length
		return evt10, nil, nil
	}
	// The whole PDU, not only its header, is within ARTIM where ARTIM runs (Sta2: a requestor
	// that trickles its A-ASSOCIATE-RQ byte by byte still has to finish in time).
	_ = a.conn.SetReadDeadline(a.readDeadline(a.timeouts.DIMSE))
	p, err := a.pdus.ReadBody(h)
	switch {
	case errors.As(err, &pe):
		return evt19, nil, err
	case isTimeout(err):
		return evt18, nil, err
	case err != nil:
		return evt17, nil, err
	}
	return eventForPDU(h.Type), p, nil
}

// pdvHeader is the header of the next PDV in the current P-DATA-TF.
type pdvHeader struct {
	length    uint32 // of the data fragment
	contextID byte
	command   bool
	last      bool
}

// nextPDV positions the reader at the next PDV, reading a new P-DATA-TF PDU when the current one is
// used up. A PDU that is not P-DATA-TF ends the message: release, abort or a protocol error.
func (a *Association) nextPDV(timeout time.Duration) (pdvHeader, error) {
	for a.pduLeft == 0 {
		e, p, err := a.readEvent(timeout)
		if e == evt10 {
			if _, ferr := a.fire(e, eventArgs{}); ferr != nil {
				return pdvHeader{}, ferr
			}
			if st := a.currentState(); st == sta13 {
				return pdvHeader{}, a.endAfterAbort(fmt.Errorf("P-DATA-TF in state %s", st))
			}
			continue
		}
		return pdvHeader{}, a.handleNonData(e, p, err)
	}
	if a.pduLeft < pdvHeaderLength {
		return pdvHeader{}, a.abortProvider(protoErr(AbortReasonInvalidParameter, "truncated PDV item header"))
	}
	var h [pdvHeaderLength]byte
	_ = a.conn.SetReadDeadline(time.Now().Add(a.timeouts.DIMSE))
	if _, err := io.ReadFull(a.r, h[:]); err != nil {
		return pdvHeader{}, a.transportError(err)
	}
	n := binary.BigEndian.Uint32(h[:])
	if n < 2 || n > a.pduLeft-4 {
		return pdvHeader{}, a.abortProvider(protoErr(AbortReasonInvalidParameter, "PDV item length %d exceeds the PDU", n))
	}
	a.pduLeft -= 4 + n
	v := pdvHeader{length: n - 2, contextID: h[4], command: h[5]&1 != 0, last: h[5]&2 != 0}
	if _, ok := a.contexts[v.contextID]; !ok {
		return pdvHeader{}, a.abortProvider(protoErr(AbortReasonInvalidParameter, "PDV on presentation context %d, which was not accepted", v.contextID))
	}
	return v, nil
}

// handleNonData applies the state machine to a non-P-DATA event met while waiting for data.
func (a *Association) handleNonData(e event, p PDU, cause error) error {
	if st := a.currentState(); e == evt18 && st != sta2 && st != sta13 {
		// Not ARTIM but our idle or DIMSE timer: giving up on the peer is a local A-ABORT request.
		a.log.Debug().Err(cause).Stringer("state", st).Msg("timeout: aborting association")
		_, _ = a.fire(evt15, eventArgs{})
		a.closeTransport()
		a.setState(sta1)
		return fmt.Errorf("%w: timeout: %v", ErrAborted, cause)
	}
	act, err := a.fire(e, eventArgs{pdu: p, reason: reasonOf(cause, AbortReasonUnexpectedPDU)})
	if err != nil {
		a.closeTransport()
		return err
	}
	switch act {
	case ar2: // A-RELEASE-RQ in Sta6: the caller answers with A-RELEASE-RP.
		return ErrReleaseRequested
	case aa3:
		if ab, ok := p.(*Abort); ok {
			return &AbortError{*ab}
		}
		return ErrPeerAborted
	case aa4, aa5, aa2:
		if cause != nil && isTimeout(cause) {
			return fmt.Errorf("%w: %v", ErrClosed, cause)
		}
		return ErrClosed
	case aa1, aa7, aa8:
		a.log.Warn().Err(cause).Stringer("event", e).Msg("aborting association")
		a.awaitClose()
		if cause == nil {
			cause = fmt.Errorf("unexpected %s", e)
		}
		return fmt.Errorf("%w: %v", ErrAborted, cause)
	case ar3: // A-RELEASE-RP while we were awaiting it.
		return ErrReleased
	}
	return fmt.Errorf("%w: unexpected %s (%s)", ErrAborted, e, act)
}

func reasonOf(err error, fallback AbortReason) AbortReason {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return fallback
}

func (a *Association) endAfterAbort(cause error) error {
	a.awaitClose()
	return fmt.Errorf("%w: %v", ErrAborted, cause)
}

func (a *Association) transportError(err error) error {
	if isTimeout(err) {
		a.log.Warn().Msg("peer stalled mid-PDU: aborting association")
		_, _ = a.fire(evt15, eventArgs{}) // AA-1: we give up on the peer
		a.closeTransport()
		a.setState(sta1)
		return fmt.Errorf("%w: peer stalled: %v", ErrAborted, err)
	}
	_, _ = a.fire(evt17, eventArgs{})
	return fmt.Errorf("%w: %v", ErrClosed, noEOF(err))
}

// ReadMessage reads the next DIMSE message. When the message carries a data set, data streams it
// from the wire: it must be read to EOF (or drained) before the next call.
// A timeout of zero means the DIMSE timeout.
func (a *Association) ReadMessage(timeout time.Duration) (pc *PresentationContext, msg Message, data io.Reader, err error) {
	if timeout <= 0 {
		timeout = a.timeouts.DIMSE
	}
	a.cmdBuf = a.cmdBuf[:0]
	first := true
	var ctxID byte
	for {
		if first && a.pduLeft == 0 {
			a.idle.Store(true)
		}
		h, err := a.nextPDV(timeout)
		a.idle.Store(false)
		if err != nil {
			return nil, nil, nil, err
		}
		if !h.command {
			return nil, nil, nil, a.abortProvider(protoErr(AbortReasonUnexpectedParameter, "data PDV where a command was expected"))
		}
		if !first && h.contextID != ctxID {
			return nil, nil, nil, a.abortProvider(protoErr(AbortReasonUnexpectedParameter, "command fragments on contexts %d and %d", ctxID, h.contextID))
		}
		first, ctxID = false, h.contextID
		if len(a.cmdBuf)+int(h.length) > maxCommandSetLength {
			return nil, nil, nil, a.abortProvider(protoErr(AbortReasonInvalidParameter, "command set longer than %d bytes", maxCommandSetLength))
		}
		start := len(a.cmdBuf)
		a.cmdBuf = slices.Grow(a.cmdBuf, int(h.length))[:start+int(h.length)]
		_ = a.conn.SetReadDeadline(time.Now().Add(a.timeouts.DIMSE))
		if _, err := io.ReadFull(a.r, a.cmdBuf[start:]); err != nil {
			return nil, nil, nil, a.transportError(err)
		}
		if h.last {
			break
		}
	}
	msg, err = a.cmdDec.decode(a.cmdBuf)
	if err != nil {
		var unknown *UnknownCommandError
		if errors.As(err, &unknown) {
			return a.contexts[ctxID], nil, nil, err
		}
		return nil, nil, nil, a.abortProvider(protoErr(AbortReasonInvalidParameter, "%v", err))
	}
	pc = a.contexts[ctxID]
	if msg.HasData() {
		data = &dataReader{a: a, contextID: ctxID}
	}
	return pc, msg, data, nil
}

// dataReader streams one data set's PDVs; memory use is independent of the data set's size.
type dataReader struct {
	a         *Association
	contextID byte
	left      uint32 // bytes left in the current PDV
	last      bool   // the current PDV is the last fragment
	started   bool
	err       error
	// onEnd, when set, is called once, when the last fragment has been read or reading failed:
	// from then on the association's reads belong to its next message.
	onEnd func()
	ended bool
}

// end records the end of the data set, err nil when its last fragment is in. From then on the
// reader only returns d.err: the goroutine that reads the association's next message may be
// looking at it.
func (d *dataReader) end(err error) {
	if d.ended {
		return
	}
	if err == nil {
		err = io.EOF
	}
	d.err, d.ended = err, true
	if d.onEnd != nil {
		d.onEnd()
	}
}

// endErr is why reading the data set failed; nil once it was read to its end.
func (d *dataReader) endErr() error {
	if d.err == nil || d.err == io.EOF {
		return nil
	}
	return d.err
}

func (d *dataReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	for d.left == 0 {
		if d.started && d.last {
			d.end(nil)
			return 0, io.EOF
		}
		h, err := d.a.nextPDV(d.a.timeouts.DIMSE)
		if err != nil {
			d.end(err)
			return 0, err
		}
		if h.command || h.contextID != d.contextID {
			d.end(d.a.abortProvider(protoErr(AbortReasonUnexpectedParameter, "PDV (context %d, command %v) inside a data set on context %d", h.contextID, h.command, d.contextID)))
			return 0, d.err
		}
		d.started, d.left, d.last = true, h.length, h.last
		if d.left == 0 && d.last {
			d.end(nil)
		}
	}
	if uint32(len(p)) > d.left {
		p = p[:d.left]
	}
	_ = d.a.conn.SetReadDeadline(time.Now().Add(d.a.timeouts.DIMSE))
	n, err := d.a.r.Read(p)
	d.left -= uint32(n)
	if err != nil {
		d.end(d.a.transportError(err))
		return n, d.err
	}
	if d.left == 0 && d.last {
		d.end(nil)
	}
	return n, nil
}

// drain discards what the handler left unread so the next message starts in step.
func (d *dataReader) drain() error {
	if d.err == io.EOF {
		return nil
	}
	_, err := io.Copy(io.Discard, d)
	return err
}

// SendMessage sends a command and, when data is not nil, the data set read from data, fragmented
// to the peer's maximum PDU length.
func (a *Association) SendMessage(pc *PresentationContext, msg Message, data io.Reader) error {
	if (data != nil) != msg.HasData() {
		return fmt.Errorf("send command 0x%04X: data set presence does not match the command", msg.CommandField())
	}
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if st := a.currentState(); st != sta6 && !(st == sta8 && transition(evt9, st) == ar7) {
		return fmt.Errorf("send command 0x%04X: association not established (%s)", msg.CommandField(), st)
	}
	var err error
	if a.cmdOut, err = appendCommand(a.cmdOut[:0], msg, &a.cmdEnc); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	a.cmdReader.Reset(a.cmdOut)
	if err := a.sendFragments(pc.ID, true, &a.cmdReader); err != nil {
		return err
	}
	if data != nil {
		return a.sendFragments(pc.ID, false, data)
	}
	return nil
}

// pdataOverhead is what a P-DATA-TF PDU of one PDV adds to the fragment: the PDU and PDV headers.
const pdataOverhead = pduHeaderLength + pdvHeaderLength

// sendFragments sends src as PDVs, one PDV per P-DATA-TF PDU, each as large as the peer allows.
func (a *Association) sendFragments(contextID byte, command bool, src io.Reader) error {
	maxData := uint32(DefaultMaxPDULength)
	if a.maxSend != 0 && a.maxSend < maxData+pdvHeaderLength {
		maxData = a.maxSend - pdvHeaderLength
	}
	if a.maxSend != 0 && a.maxSend <= pdvHeaderLength {
		maxData = 1
	}
	if cap(a.sendBuf) < int(maxData)+pdataOverhead {
		a.sendBuf = make([]byte, int(maxData)+pdataOverhead)
	}
	buf := a.sendBuf[:int(maxData)+pdataOverhead]
	// One byte of look-ahead tells whether a full fragment is the last.
	br, ok := src.(*bufio.Reader)
	if !ok {
		if a.src == nil {
			a.src = bufio.NewReaderSize(src, 64<<10)
		} else {
			a.src.Reset(src)
		}
		defer a.src.Reset(nil) // hold on to the buffer, not to the caller's reader
		br = a.src
	}
	for {
		n, err := io.ReadFull(br, buf[pdataOverhead:])
		last := false
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			last = true
		case err != nil:
			return fmt.Errorf("read data set: %w", err)
		default:
			if _, perr := br.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				return fmt.Errorf("read data set: %w", perr)
			}
		}
		pdv := PDV{ContextID: contextID, Command: command, Last: last}
		buf[0], buf[1] = byte(TypePDataTF), 0
		binary.BigEndian.PutUint32(buf[2:], uint32(n+pdvHeaderLength))
		binary.BigEndian.PutUint32(buf[6:], uint32(n+2))
		buf[10] = contextID
		buf[11] = pdv.control()
		if _, err := a.fire(evt9, eventArgs{pdata: buf[:pdataOverhead+n]}); err != nil { // DT-1 or AR-7
			return err
		}
		if last {
			break
		}
	}
	a.fsmMu.Lock()
	defer a.fsmMu.Unlock()
	if err := a.w.Flush(); err != nil {
		return a.writeFailed(err)
	}
	return nil
}

// writeFailed ends the association after a failed write; fsmMu is held.
func (a *Association) writeFailed(err error) error {
	a.closeTransport()
	a.state = sta1
	return fmt.Errorf("%w: write P-DATA-TF: %v", ErrClosed, err)
}

// answerRelease answers a peer's A-RELEASE-RQ (AR-4) and waits for the peer to close.
func (a *Association) answerRelease() error {
	if _, err := a.fire(evt14, eventArgs{pdu: &ReleaseRP{}}); err != nil {
		a.closeTransport()
		return err
	}
	a.awaitClose()
	return nil
}

// Release asks the peer to release the association and waits for its answer, handling a release
// collision as PS3.8 7.2.2 describes (Sta9 to Sta12 of Table 9-10).
func (a *Association) Release(ctx context.Context) error {
	if _, err := a.fire(evt11, eventArgs{pdu: &ReleaseRQ{}}); err != nil {
		return err
	}
	for {
		e, p, err := a.readEvent(a.timeouts.ARTIM)
		if e == evt10 {
			// AR-6: data still arriving for us while we wait; it has no reader any more.
			if _, ferr := a.fire(e, eventArgs{}); ferr != nil {
				return ferr
			}
			if _, err := io.CopyN(io.Discard, a.r, int64(a.pduLeft)); err != nil {
				return a.transportError(err)
			}
			a.pduLeft = 0
			continue
		}
		act, ferr := a.fire(e, eventArgs{pdu: p, reason: reasonOf(err, AbortReasonUnexpectedPDU)})
		if ferr != nil {
			a.closeTransport()
			return ferr
		}
		switch act {
		case ar3:
			return nil
		case ar8: // collision: both sides asked; the requestor answers first (AR-9), then waits.
			if a.requestor {
				if _, err := a.fire(evt14, eventArgs{pdu: &ReleaseRP{}}); err != nil {
					return err
				}
			}
			continue
		case ar10: // acceptor side of a collision: now answer.
			return a.answerRelease()
		case aa3:
			if ab, ok := p.(*Abort); ok {
				return &AbortError{*ab}
			}
			return ErrPeerAborted
		case aa8, aa1:
			a.awaitClose()
			return fmt.Errorf("%w: unexpected %s while releasing", ErrAborted, e)
		default:
			a.closeTransport()
			if err != nil {
				return fmt.Errorf("release: %w", err)
			}
			return fmt.Errorf("release: unexpected %s (%s)", e, act)
		}
	}
}
