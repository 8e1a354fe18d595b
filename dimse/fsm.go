package dimse

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// The upper layer state machine of PS3.8 9.2, named as the standard names it: states Sta1..Sta13
// (Tables 9-1 to 9-5), events Evt1..Evt19 and the state transition table (Table 9-10), actions
// AE-n, DT-n, AR-n and AA-n (Tables 9-6 to 9-9). stateTable is Table 9-10 cell by cell and each
// action is one function below it, so the code can be read against the standard line by line.
//
// An action does what the standard's action does to the transport (send a PDU, start or stop ARTIM,
// close the connection) and returns the next state. What the standard calls an indication or a
// confirmation to the service user is the caller's: fire reports which action ran, and the caller,
// which knows what it was waiting for, acts on it.

type state uint8

const (
	sta1  state = 1 + iota // Idle
	sta2                   // Transport connection open (awaiting A-ASSOCIATE-RQ PDU)
	sta3                   // Awaiting local A-ASSOCIATE response primitive
	sta4                   // Awaiting transport connection opening to complete
	sta5                   // Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU
	sta6                   // Association established and ready for data transfer
	sta7                   // Awaiting A-RELEASE-RP PDU
	sta8                   // Awaiting local A-RELEASE response primitive
	sta9                   // Release collision requestor side; awaiting A-RELEASE response
	sta10                  // Release collision acceptor side; awaiting A-RELEASE-RP PDU
	sta11                  // Release collision requestor side; awaiting A-RELEASE-RP PDU
	sta12                  // Release collision acceptor side; awaiting A-RELEASE response primitive
	sta13                  // Awaiting transport connection close indication
)

func (s state) String() string { return fmt.Sprintf("Sta%d", uint8(s)) }

type event uint8

const (
	evt1  event = 1 + iota // A-ASSOCIATE request (local user)
	evt2                   // Transport connect confirmation (local transport service)
	evt3                   // A-ASSOCIATE-AC PDU received
	evt4                   // A-ASSOCIATE-RJ PDU received
	evt5                   // Transport connection indication
	evt6                   // A-ASSOCIATE-RQ PDU received
	evt7                   // A-ASSOCIATE response primitive (accept)
	evt8                   // A-ASSOCIATE response primitive (reject)
	evt9                   // P-DATA request primitive
	evt10                  // P-DATA-TF PDU received
	evt11                  // A-RELEASE request primitive
	evt12                  // A-RELEASE-RQ PDU received
	evt13                  // A-RELEASE-RP PDU received
	evt14                  // A-RELEASE response primitive
	evt15                  // A-ABORT request primitive
	evt16                  // A-ABORT PDU received
	evt17                  // Transport connection closed indication
	evt18                  // ARTIM timer expired
	evt19                  // Unrecognized or invalid PDU received
)

func (e event) String() string { return fmt.Sprintf("Evt%d", uint8(e)) }

// eventForPDU maps a received PDU type to its event.
func eventForPDU(t PDUType) event {
	switch t {
	case TypeAssociateAC:
		return evt3
	case TypeAssociateRJ:
		return evt4
	case TypeAssociateRQ:
		return evt6
	case TypePDataTF:
		return evt10
	case TypeReleaseRQ:
		return evt12
	case TypeReleaseRP:
		return evt13
	case TypeAbort:
		return evt16
	}
	return evt19
}

type action uint8

const (
	___ action = iota // a blank cell: the event cannot happen in the state
	ae1
	ae2
	ae3
	ae4
	ae5
	ae6
	ae7
	ae8
	dt1
	dt2
	ar1
	ar2
	ar3
	ar4
	ar5
	ar6
	ar7
	ar8
	ar9
	ar10
	aa1
	aa2
	aa3
	aa4
	aa5
	aa6
	aa7
	aa8
)

// stateTable is PS3.8 Table 9-10: the action for each event (row) in each state (column).
// It is read-only.
var stateTable = [evt19 + 1][sta13 + 1]action{
	// state:     1    2    3    4    5    6    7    8    9    10   11   12   13
	evt1:  {sta1: ae1, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___},
	evt2:  {sta1: ___, ___, ___, ae2, ___, ___, ___, ___, ___, ___, ___, ___, ___},
	evt3:  {sta1: ___, aa1, aa8, ___, ae3, aa8, aa8, aa8, aa8, aa8, aa8, aa8, aa6},
	evt4:  {sta1: ___, aa1, aa8, ___, ae4, aa8, aa8, aa8, aa8, aa8, aa8, aa8, aa6},
	evt5:  {sta1: ae5, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___},
	evt6:  {sta1: ___, ae6, aa8, ___, aa8, aa8, aa8, aa8, aa8, aa8, aa8, aa8, aa7},
	evt7:  {sta1: ___, ___, ae7, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___},
	evt8:  {sta1: ___, ___, ae8, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___},
	evt9:  {sta1: ___, ___, ___, ___, ___, dt1, ___, ar7, ___, ___, ___, ___, ___},
	evt10: {sta1: ___, aa1, aa8, ___, aa8, dt2, ar6, aa8, aa8, aa8, aa8, aa8, aa6},
	evt11: {sta1: ___, ___, ___, ___, ___, ar1, ___, ___, ___, ___, ___, ___, ___},
	evt12: {sta1: ___, aa1, aa8, ___, aa8, ar2, ar8, aa8, aa8, aa8, aa8, aa8, aa6},
	evt13: {sta1: ___, aa1, aa8, ___, aa8, aa8, ar3, aa8, aa8, ar10, ar3, aa8, aa6},
	evt14: {sta1: ___, ___, ___, ___, ___, ___, ___, ar4, ar9, ___, ___, ar4, ___},
	evt15: {sta1: ___, ___, aa1, aa2, aa1, aa1, aa1, aa1, aa1, aa1, aa1, aa1, ___},
	evt16: {sta1: ___, aa2, aa3, ___, aa3, aa3, aa3, aa3, aa3, aa3, aa3, aa3, aa2},
	evt17: {sta1: ___, aa5, aa4, aa4, aa4, aa4, aa4, aa4, aa4, aa4, aa4, aa4, ar5},
	evt18: {sta1: ___, aa2, ___, ___, ___, ___, ___, ___, ___, ___, ___, ___, aa2},
	evt19: {sta1: ___, aa1, aa8, ___, aa8, aa8, aa8, aa8, aa8, aa8, aa8, aa8, aa7},
}

// transition is one cell of Table 9-10.
func transition(e event, s state) action { return stateTable[e][s] }

// eventArgs is what an event brings to its action.
type eventArgs struct {
	pdu    PDU         // the PDU to send (AE-2, AE-7, AE-8, AR-1, AR-4, AR-9) or the one received (AE-6)
	pdata  []byte      // one encoded P-DATA-TF PDU (DT-1, AR-7)
	reason AbortReason // the reason AA-8 sends
}

// actionFunc performs an action and returns the next state, the right-hand column of Tables 9-6
// to 9-9. The next state is returned even with an error: the error is the transport's, and the
// machine has moved all the same.
type actionFunc func(a *Association, in eventArgs) (state, error)

// actions names each action as the standard does and gives its function. It is read-only.
var actions = [...]struct {
	name string
	run  actionFunc
}{
	___:  {"none", nil},
	ae1:  {"AE-1", issueTransportConnect},
	ae2:  {"AE-2", sendAssociateRQ},
	ae3:  {"AE-3", confirmAssociateAccept},
	ae4:  {"AE-4", confirmAssociateReject},
	ae5:  {"AE-5", acceptTransportConnection},
	ae6:  {"AE-6", examineAssociateRQ},
	ae7:  {"AE-7", sendAssociateAC},
	ae8:  {"AE-8", sendAssociateRJ},
	dt1:  {"DT-1", sendPData},
	dt2:  {"DT-2", indicatePData},
	ar1:  {"AR-1", sendReleaseRQ},
	ar2:  {"AR-2", indicateRelease},
	ar3:  {"AR-3", confirmRelease},
	ar4:  {"AR-4", sendReleaseRP},
	ar5:  {"AR-5", releaseClosed},
	ar6:  {"AR-6", indicatePDataWhileReleasing},
	ar7:  {"AR-7", sendPDataWhileReleasing},
	ar8:  {"AR-8", indicateReleaseCollision},
	ar9:  {"AR-9", sendCollisionReleaseRP},
	ar10: {"AR-10", confirmCollisionRelease},
	aa1:  {"AA-1", sendUserAbort},
	aa2:  {"AA-2", stopAndClose},
	aa3:  {"AA-3", indicateAbort},
	aa4:  {"AA-4", indicateProviderAbort},
	aa5:  {"AA-5", closedBeforeAssociateRQ},
	aa6:  {"AA-6", ignorePDU},
	aa7:  {"AA-7", answerWithAbort},
	aa8:  {"AA-8", sendProviderAbort},
}

func (a action) String() string { return actions[a].name }

// fire applies the state machine to an event: it looks the action up in Table 9-10, runs it and
// moves to the state it returns. An event that is blank in the current state is an error.
func (a *Association) fire(e event, in eventArgs) (action, error) {
	a.fsmMu.Lock()
	defer a.fsmMu.Unlock()
	act := transition(e, a.state)
	if act == ___ {
		return act, fmt.Errorf("state machine: %s is not valid in %s", e, a.state)
	}
	from := a.state
	next, err := actions[act].run(a, in)
	a.state = next
	if a.log.GetLevel() <= zerolog.TraceLevel {
		a.log.Trace().Stringer("state", from).Stringer("event", e).Stringer("action", act).Stringer("next", next).Msg("fsm")
	}
	return act, err
}

// ARTIM, the association request/reject/release timer (PS3.8 9.1.5), is a deadline on the reads
// the machine makes while it runs (in Sta2 and Sta13).

func (a *Association) startARTIM() { a.artim = time.Now().Add(a.timeouts.ARTIM) }
func (a *Association) stopARTIM()  { a.artim = time.Time{} }

// readDeadline is the deadline for the next read: timeout from now, or ARTIM's expiry when sooner.
func (a *Association) readDeadline(timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if !a.artim.IsZero() && a.artim.Before(d) {
		return a.artim
	}
	return d
}

// sendAbort sends an A-ABORT, best effort: a transport that cannot take it is ending anyway. From
// then on the association only waits for the close (awaitClose): nothing more the peer sends is
// read as a PDU.
func (a *Association) sendAbort(p *Abort) {
	_ = a.send(p)
	a.abortSent = true
}

// sendOrClose sends a PDU an action owes the peer; a transport that cannot take it is closed.
func (a *Association) sendOrClose(p PDU) error {
	if err := a.send(p); err != nil {
		a.closeTransport()
		return err
	}
	return nil
}

// Association establishment related actions (PS3.8 Table 9-6).

// AE-1: issue TRANSPORT CONNECT request primitive to local transport service. Dial has connected
// before the association exists (in Go the request and its confirmation are one call).
func issueTransportConnect(a *Association, _ eventArgs) (state, error) { return sta4, nil }

// AE-2: send A-ASSOCIATE-RQ PDU.
func sendAssociateRQ(a *Association, in eventArgs) (state, error) {
	return sta5, a.sendOrClose(in.pdu)
}

// AE-3: issue A-ASSOCIATE confirmation (accept) primitive.
func confirmAssociateAccept(a *Association, _ eventArgs) (state, error) { return sta6, nil }

// AE-4: issue A-ASSOCIATE confirmation (reject) primitive and close transport connection.
func confirmAssociateReject(a *Association, _ eventArgs) (state, error) {
	a.closeTransport()
	return sta1, nil
}

// AE-5: issue transport connection response primitive; start ARTIM timer. This run of ARTIM
// lasts Timeouts.FirstPDU.
func acceptTransportConnection(a *Association, _ eventArgs) (state, error) {
	a.artim = time.Now().Add(a.timeouts.FirstPDU)
	return sta2, nil
}

// AE-6: stop ARTIM timer and if A-ASSOCIATE-RQ acceptable by service-provider: issue A-ASSOCIATE
// indication primitive (Sta3); otherwise issue A-ASSOCIATE-RJ-PDU and start ARTIM timer (Sta13).
// What the service provider itself can judge is the protocol version and the application context;
// AE titles and presentation contexts are the service user's, in Sta3.
func examineAssociateRQ(a *Association, in eventArgs) (state, error) {
	a.stopARTIM()
	rq, _ := in.pdu.(*AssociateRQ)
	if rq == nil {
		return sta3, nil
	}
	rj := providerCheck(rq)
	if rj == nil {
		return sta3, nil
	}
	_ = a.send(rj)
	a.startARTIM()
	a.log.Warn().Stringer("reject", rj).Uint16("protocol_version", rq.ProtocolVersion).Str("application_context", rq.ApplicationContext).
		Strs("missing", rq.missingItems()).Msg("association rejected by the upper layer")
	return sta13, nil
}

// providerCheck is the part of AE-6 that belongs to the upper layer itself.
func providerCheck(rq *AssociateRQ) *AssociateRJ {
	if rq.ProtocolVersion&1 == 0 {
		return &AssociateRJ{Result: RejectPermanent, Source: RejectSourceACSE, Reason: RejectReasonProtocolVersionNotSupp}
	}
	if rq.ApplicationContext != ApplicationContextName {
		return &AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonAppContextNotSupported}
	}
	// A request without an item PS3.8 9.3.2 makes mandatory decodes, but no association can be
	// built on it: no presentation context to carry data, no maximum length to fragment to.
	// It is the provider's to refuse, and PS3.8 9.3.4 has no reason more precise than none given.
	if len(rq.missingItems()) > 0 {
		return &AssociateRJ{Result: RejectPermanent, Source: RejectSourceACSE, Reason: RejectReasonACSENoReason}
	}
	return nil
}

// AE-7: send A-ASSOCIATE-AC PDU.
func sendAssociateAC(a *Association, in eventArgs) (state, error) {
	return sta6, a.sendOrClose(in.pdu)
}

// AE-8: send A-ASSOCIATE-RJ PDU and start ARTIM timer.
func sendAssociateRJ(a *Association, in eventArgs) (state, error) {
	err := a.sendOrClose(in.pdu)
	a.startARTIM()
	return sta13, err
}

// Data transfer related actions (PS3.8 Table 9-7).

// DT-1: send P-DATA-TF PDU. A write that fails is the transport gone under us: the association
// ends there (Sta1) rather than waiting for the close indication.
func sendPData(a *Association, in eventArgs) (state, error) {
	if err := a.writePData(in.pdata); err != nil {
		return sta1, err
	}
	return sta6, nil
}

// DT-2: send P-DATA indication primitive. The caller streams the PDVs.
func indicatePData(a *Association, _ eventArgs) (state, error) { return sta6, nil }

// Association release related actions (PS3.8 Table 9-8).

// AR-1: send A-RELEASE-RQ PDU.
func sendReleaseRQ(a *Association, in eventArgs) (state, error) {
	return sta7, a.sendOrClose(in.pdu)
}

// AR-2: issue A-RELEASE indication primitive.
func indicateRelease(a *Association, _ eventArgs) (state, error) { return sta8, nil }

// AR-3: issue A-RELEASE confirmation primitive, and close transport connection.
func confirmRelease(a *Association, _ eventArgs) (state, error) {
	a.closeTransport()
	return sta1, nil
}

// AR-4: issue A-RELEASE-RP PDU and start ARTIM timer.
func sendReleaseRP(a *Association, in eventArgs) (state, error) {
	err := a.sendOrClose(in.pdu)
	a.startARTIM()
	return sta13, err
}

// AR-5: stop ARTIM timer. The peer has closed; our side of the connection goes too.
func releaseClosed(a *Association, _ eventArgs) (state, error) {
	a.stopARTIM()
	a.closeTransport()
	return sta1, nil
}

// AR-6: issue P-DATA indication.
func indicatePDataWhileReleasing(a *Association, _ eventArgs) (state, error) { return sta7, nil }

// AR-7: issue P-DATA-TF PDU.
func sendPDataWhileReleasing(a *Association, in eventArgs) (state, error) {
	if err := a.writePData(in.pdata); err != nil {
		return sta1, err
	}
	return sta8, nil
}

// AR-8: issue A-RELEASE indication (release collision): if association-requestor, next state is
// Sta9, if not next state is Sta10.
func indicateReleaseCollision(a *Association, _ eventArgs) (state, error) {
	if a.requestor {
		return sta9, nil
	}
	return sta10, nil
}

// AR-9: send A-RELEASE-RP PDU.
func sendCollisionReleaseRP(a *Association, in eventArgs) (state, error) {
	return sta11, a.sendOrClose(in.pdu)
}

// AR-10: issue A-RELEASE confirmation primitive.
func confirmCollisionRelease(a *Association, _ eventArgs) (state, error) { return sta12, nil }

// Association abort related actions (PS3.8 Table 9-9).

// AA-1: send A-ABORT PDU (service-user source) and start (or restart if already started) ARTIM
// timer. The abort is best effort: a transport that cannot take it is ending anyway.
func sendUserAbort(a *Association, _ eventArgs) (state, error) {
	a.sendAbort(&Abort{Source: AbortSourceUser, Reason: AbortReasonNotSpecified})
	a.startARTIM()
	return sta13, nil
}

// AA-2: stop ARTIM timer if running. Close transport connection.
func stopAndClose(a *Association, _ eventArgs) (state, error) {
	a.stopARTIM()
	a.closeTransport()
	return sta1, nil
}

// AA-3: if (service-user initiated abort) issue A-ABORT indication and close transport connection,
// otherwise (service-provider initiated abort) issue A-P-ABORT indication and close transport
// connection. The caller tells the two apart by the A-ABORT's source.
func indicateAbort(a *Association, _ eventArgs) (state, error) {
	a.closeTransport()
	return sta1, nil
}

// AA-4: issue A-P-ABORT indication primitive. The peer has closed; our side goes too.
func indicateProviderAbort(a *Association, _ eventArgs) (state, error) {
	a.closeTransport()
	return sta1, nil
}

// AA-5: stop ARTIM timer. The peer closed before asking for an association.
func closedBeforeAssociateRQ(a *Association, _ eventArgs) (state, error) {
	a.stopARTIM()
	a.closeTransport()
	return sta1, nil
}

// AA-6: ignore PDU.
func ignorePDU(a *Association, _ eventArgs) (state, error) { return sta13, nil }

// AA-7: send A-ABORT PDU.
func answerWithAbort(a *Association, _ eventArgs) (state, error) {
	a.sendAbort(&Abort{Source: AbortSourceUser, Reason: AbortReasonNotSpecified})
	return sta13, nil
}

// AA-8: send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and start ARTIM
// timer.
func sendProviderAbort(a *Association, in eventArgs) (state, error) {
	a.sendAbort(&Abort{Source: AbortSourceProvider, Reason: in.reason})
	a.startARTIM()
	return sta13, nil
}
