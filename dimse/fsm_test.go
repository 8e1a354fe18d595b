package dimse

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// table9_10 is PS3.8 Table 9-10 as the standard prints it, transcribed from the standard apart from
// stateTable: one line per event, one column per state, "-" for a blank cell.
const table9_10 = `
        Sta1 Sta2 Sta3 Sta4 Sta5 Sta6 Sta7 Sta8 Sta9 Sta10 Sta11 Sta12 Sta13
Evt1    AE-1 -    -    -    -    -    -    -    -    -     -     -     -
Evt2    -    -    -    AE-2 -    -    -    -    -    -     -     -     -
Evt3    -    AA-1 AA-8 -    AE-3 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt4    -    AA-1 AA-8 -    AE-4 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt5    AE-5 -    -    -    -    -    -    -    -    -     -     -     -
Evt6    -    AE-6 AA-8 -    AA-8 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-7
Evt7    -    -    AE-7 -    -    -    -    -    -    -     -     -     -
Evt8    -    -    AE-8 -    -    -    -    -    -    -     -     -     -
Evt9    -    -    -    -    -    DT-1 -    AR-7 -    -     -     -     -
Evt10   -    AA-1 AA-8 -    AA-8 DT-2 AR-6 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt11   -    -    -    -    -    AR-1 -    -    -    -     -     -     -
Evt12   -    AA-1 AA-8 -    AA-8 AR-2 AR-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt13   -    AA-1 AA-8 -    AA-8 AA-8 AR-3 AA-8 AA-8 AR-10 AR-3  AA-8  AA-6
Evt14   -    -    -    -    -    -    -    AR-4 AR-9 -     -     AR-4  -
Evt15   -    -    AA-1 AA-2 AA-1 AA-1 AA-1 AA-1 AA-1 AA-1  AA-1  AA-1  -
Evt16   -    AA-2 AA-3 -    AA-3 AA-3 AA-3 AA-3 AA-3 AA-3  AA-3  AA-3  AA-2
Evt17   -    AA-5 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4  AA-4  AA-4  AR-5
Evt18   -    AA-2 -    -    -    -    -    -    -    -     -     -     AA-2
Evt19   -    AA-1 AA-8 -    AA-8 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-7
`

// TestStateTableIsTable9_10 checks every cell of stateTable against the transcription.
func TestStateTableIsTable9_10(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(table9_10), "\n")
	header := strings.Fields(lines[0])
	if len(header) != 13 || len(lines) != 1+19 {
		t.Fatalf("transcription has %d states and %d events, want 13 and 19", len(header), len(lines)-1)
	}
	for i, s := range header {
		if want := fmt.Sprintf("Sta%d", i+1); s != want {
			t.Fatalf("column %d is %s, want %s", i+1, s, want)
		}
	}
	cells := 0
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		e := event(i + 1)
		if len(f) != 14 || f[0] != e.String() {
			t.Fatalf("row %q: want %s and 13 cells", line, e)
		}
		for j, want := range f[1:] {
			s := state(j + 1)
			got := stateTable[e][s].String()
			if want == "-" {
				want = "none"
			}
			if got != want {
				t.Errorf("%s in %s: %s, Table 9-10 says %s", e, s, got, want)
			}
			cells++
		}
	}
	if cells != 19*13 {
		t.Fatalf("checked %d cells, want %d", cells, 19*13)
	}
	// Nothing outside Evt1..Evt19 x Sta1..Sta13.
	for s := range stateTable[0] {
		if stateTable[0][s] != ___ {
			t.Errorf("row 0 has an action in column %d", s)
		}
	}
	for e := range stateTable {
		if stateTable[e][0] != ___ {
			t.Errorf("column 0 has an action in row %d", e)
		}
	}
}

func TestTransitionTable(t *testing.T) {
	// Spot checks against PS3.8 Table 9-10, including every cell the node relies on.
	tests := []struct {
		e    event
		s    state
		want action
	}{
		{evt5, sta1, ae5}, {evt6, sta2, ae6}, {evt7, sta3, ae7}, {evt8, sta3, ae8},
		{evt1, sta1, ae1}, {evt2, sta4, ae2}, {evt3, sta5, ae3}, {evt4, sta5, ae4},
		{evt9, sta6, dt1}, {evt10, sta6, dt2}, {evt11, sta6, ar1}, {evt12, sta6, ar2},
		{evt13, sta7, ar3}, {evt10, sta7, ar6}, {evt9, sta8, ar7}, {evt12, sta7, ar8},
		{evt14, sta8, ar4}, {evt14, sta9, ar9}, {evt13, sta10, ar10}, {evt13, sta11, ar3}, {evt14, sta12, ar4},
		{evt15, sta6, aa1}, {evt15, sta4, aa2}, {evt16, sta6, aa3}, {evt16, sta13, aa2}, {evt17, sta6, aa4},
		{evt17, sta2, aa5}, {evt17, sta13, ar5}, {evt18, sta2, aa2}, {evt18, sta13, aa2},
		{evt19, sta2, aa1}, {evt19, sta6, aa8}, {evt19, sta13, aa7}, {evt6, sta13, aa7},
		{evt10, sta13, aa6}, {evt3, sta2, aa1}, {evt3, sta6, aa8}, {evt6, sta6, aa8},
		{evt9, sta1, ___}, {evt11, sta7, ___},
	}
	for _, tt := range tests {
		if got := transition(tt.e, tt.s); got != tt.want {
			t.Errorf("%s in %s: %s, want %s", tt.e, tt.s, got, tt.want)
		}
	}
	// Every received-PDU event has an answer in every state where the transport is open and we read.
	for _, s := range []state{sta2, sta3, sta5, sta6, sta7, sta8, sta9, sta10, sta11, sta12, sta13} {
		for _, e := range []event{evt3, evt4, evt6, evt10, evt12, evt13, evt16, evt17, evt19} {
			if transition(e, s) == ___ {
				t.Errorf("%s in %s has no action", e, s)
			}
		}
	}
	if next, _ := indicateReleaseCollision(&Association{requestor: true}, eventArgs{}); next != sta9 {
		t.Error("AR-8 must lead to Sta9 for the requestor and Sta10 for the acceptor")
	}
	if next, _ := indicateReleaseCollision(&Association{requestor: false}, eventArgs{}); next != sta10 {
		t.Error("AR-8 must lead to Sta9 for the requestor and Sta10 for the acceptor")
	}
}

// wire is the transport under an Association in the tests below: it keeps what is sent and
// whether the connection was closed, and has nothing to read.
type wire struct {
	out    bytes.Buffer
	closed bool
}

func (w *wire) Read([]byte) (int, error) { return 0, io.EOF }
func (w *wire) Write(p []byte) (int, error) {
	if w.closed {
		return 0, net.ErrClosed
	}
	return w.out.Write(p)
}
func (w *wire) Close() error                     { w.closed = true; return nil }
func (w *wire) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 104} }
func (w *wire) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func (w *wire) SetDeadline(time.Time) error      { return nil }
func (w *wire) SetReadDeadline(time.Time) error  { return nil }
func (w *wire) SetWriteDeadline(time.Time) error { return nil }

// sent decodes what the association wrote, flushing what it buffered first.
func (w *wire) sent(t *testing.T, a *Association) []PDU {
	t.Helper()
	_ = a.w.Flush()
	var out []PDU
	r := bytes.NewReader(w.out.Bytes())
	for r.Len() > 0 {
		p, err := ReadPDU(r, 1<<20)
		if err != nil {
			t.Fatalf("the association wrote an undecodable PDU: %v", err)
		}
		out = append(out, p)
	}
	w.out.Reset()
	return out
}

func newWiredAssociation(requestor bool) (*Association, *wire) {
	w := &wire{}
	return newAssociation(w, requestor, Timeouts{ARTIM: time.Minute, Idle: time.Minute, DIMSE: time.Minute}, zerolog.Nop(), 0), w
}

// argsFor is what each event brings in these tests: the PDU a local request sends, an acceptable
// A-ASSOCIATE-RQ, or the reason an abort would give.
func argsFor(e event) eventArgs {
	in := eventArgs{reason: AbortReasonUnexpectedPDU}
	switch e {
	case evt2:
		in.pdu = samplePDUs()["associate-rq"]
	case evt6:
		in.pdu = &AssociateRQ{ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "PEER", ApplicationContext: ApplicationContextName,
			PresentationContexts: []PresentationContextRQ{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}},
			UserInfo:             UserInfo{MaxLength: 16384, hasMaxLength: true}, hasUserInfo: true}
	case evt7:
		in.pdu = samplePDUs()["associate-ac"]
	case evt8:
		in.pdu = samplePDUs()["associate-rj"]
	case evt9:
		in.pdata = EncodePDU(&PDataTF{Items: []PDV{{ContextID: 1, Command: true, Last: true, Data: []byte{1, 2}}}})
	case evt11:
		in.pdu = &ReleaseRQ{}
	case evt14:
		in.pdu = &ReleaseRP{}
	}
	return in
}

type artimEffect uint8

const (
	artimKept artimEffect = iota
	artimStarted
	artimStopped
)

// effect is what an action does, from the action tables of PS3.8 (9-6 to 9-9).
type effect struct {
	next   state   // for AR-8, the acceptor's; the requestor's is Sta9
	sends  PDUType // 0: nothing
	source AbortSource
	closes bool
	artim  artimEffect
}

var standardEffects = map[string]effect{
	"AE-1":  {next: sta4},
	"AE-2":  {next: sta5, sends: TypeAssociateRQ},
	"AE-3":  {next: sta6},
	"AE-4":  {next: sta1, closes: true},
	"AE-5":  {next: sta2, artim: artimStarted},
	"AE-6":  {next: sta3, artim: artimStopped}, // the request is acceptable
	"AE-7":  {next: sta6, sends: TypeAssociateAC},
	"AE-8":  {next: sta13, sends: TypeAssociateRJ, artim: artimStarted},
	"DT-1":  {next: sta6, sends: TypePDataTF},
	"DT-2":  {next: sta6},
	"AR-1":  {next: sta7, sends: TypeReleaseRQ},
	"AR-2":  {next: sta8},
	"AR-3":  {next: sta1, closes: true},
	"AR-4":  {next: sta13, sends: TypeReleaseRP, artim: artimStarted},
	"AR-5":  {next: sta1, closes: true, artim: artimStopped},
	"AR-6":  {next: sta7},
	"AR-7":  {next: sta8, sends: TypePDataTF},
	"AR-8":  {next: sta10},
	"AR-9":  {next: sta11, sends: TypeReleaseRP},
	"AR-10": {next: sta12},
	"AA-1":  {next: sta13, sends: TypeAbort, source: AbortSourceUser, artim: artimStarted},
	"AA-2":  {next: sta1, closes: true, artim: artimStopped},
	"AA-3":  {next: sta1, closes: true},
	"AA-4":  {next: sta1, closes: true},
	"AA-5":  {next: sta1, closes: true, artim: artimStopped},
	"AA-6":  {next: sta13},
	"AA-7":  {next: sta13, sends: TypeAbort, source: AbortSourceUser},
	"AA-8":  {next: sta13, sends: TypeAbort, source: AbortSourceProvider, artim: artimStarted},
}

// TestEveryCell fires every event in every state, in both roles, and checks the action's effect on
// the transport, ARTIM and the state against the action tables; blank cells must change nothing.
func TestEveryCell(t *testing.T) {
	ran := map[string]bool{}
	for e := evt1; e <= evt19; e++ {
		for s := sta1; s <= sta13; s++ {
			for _, requestor := range []bool{false, true} {
				a, w := newWiredAssociation(requestor)
				a.state = s
				earlier := time.Now().Add(time.Hour) // a running ARTIM that no action would set
				a.artim = earlier
				act, err := a.fire(e, argsFor(e))
				sent := w.sent(t, a)
				if transition(e, s) == ___ {
					if err == nil || a.state != s || len(sent) != 0 || w.closed || !a.artim.Equal(earlier) {
						t.Errorf("%s in %s (blank): err %v, state %s, %d PDUs sent, closed %v", e, s, err, a.state, len(sent), w.closed)
					}
					continue
				}
				name := act.String()
				ran[name] = true
				want, ok := standardEffects[name]
				if !ok {
					t.Fatalf("%s in %s ran %s, which has no expected effect", e, s, name)
				}
				if name == "AR-8" && requestor {
					want.next = sta9
				}
				where := fmt.Sprintf("%s in %s (%s, requestor %v)", e, s, name, requestor)
				if err != nil {
					t.Errorf("%s: %v", where, err)
				}
				if a.state != want.next {
					t.Errorf("%s: next state %s, want %s", where, a.state, want.next)
				}
				if w.closed != want.closes {
					t.Errorf("%s: transport closed %v, want %v", where, w.closed, want.closes)
				}
				switch {
				case want.sends == 0 && len(sent) != 0:
					t.Errorf("%s: sent %d PDUs, want none", where, len(sent))
				case want.sends != 0 && (len(sent) != 1 || sent[0].Type() != want.sends):
					t.Errorf("%s: sent %v, want one %s", where, sent, want.sends)
				case want.sends == TypeAbort:
					ab := sent[0].(*Abort)
					if ab.Source != want.source {
						t.Errorf("%s: A-ABORT source %d, want %d", where, ab.Source, want.source)
					}
					if ab.Source == AbortSourceProvider && ab.Reason != AbortReasonUnexpectedPDU {
						t.Errorf("%s: A-ABORT reason %d, want the event's (%d)", where, ab.Reason, AbortReasonUnexpectedPDU)
					}
				}
				switch want.artim {
				case artimKept:
					if !a.artim.Equal(earlier) {
						t.Errorf("%s: ARTIM changed", where)
					}
				case artimStopped:
					if !a.artim.IsZero() {
						t.Errorf("%s: ARTIM still running", where)
					}
				case artimStarted:
					if a.artim.IsZero() || !a.artim.Before(earlier) {
						t.Errorf("%s: ARTIM not (re)started", where)
					}
				}
			}
		}
	}
	for name := range standardEffects {
		if !ran[name] {
			t.Errorf("%s never ran", name)
		}
	}
}

// TestAE6Rejects: AE-6 answers a request the service provider cannot accept with A-ASSOCIATE-RJ,
// starts ARTIM and goes to Sta13.
func TestAE6Rejects(t *testing.T) {
	tests := []struct {
		name string
		rq   *AssociateRQ
		want AssociateRJ
	}{
		{"protocol version", &AssociateRQ{ProtocolVersion: 2, ApplicationContext: ApplicationContextName},
			AssociateRJ{Result: RejectPermanent, Source: RejectSourceACSE, Reason: RejectReasonProtocolVersionNotSupp}},
		{"application context", &AssociateRQ{ProtocolVersion: 1, ApplicationContext: "1.2.3"},
			AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonAppContextNotSupported}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, w := newWiredAssociation(false)
			a.state = sta2
			if act, err := a.fire(evt6, eventArgs{pdu: tt.rq}); act != ae6 || err != nil {
				t.Fatalf("Evt6 in Sta2: %s, %v", act, err)
			}
			sent := w.sent(t, a)
			if a.state != sta13 || a.artim.IsZero() || len(sent) != 1 {
				t.Fatalf("state %s, ARTIM %v, sent %v; want Sta13, ARTIM running, one A-ASSOCIATE-RJ", a.state, a.artim, sent)
			}
			if rj, ok := sent[0].(*AssociateRJ); !ok || *rj != tt.want {
				t.Fatalf("sent %#v, want %#v", sent[0], tt.want)
			}
		})
	}
}

// TestActionSendFails: when the transport refuses what an action sends, the machine still moves
// and the caller gets the error.
func TestActionSendFails(t *testing.T) {
	a, w := newWiredAssociation(true)
	a.state = sta4
	w.closed = true
	if _, err := a.fire(evt2, argsFor(evt2)); err == nil || a.state != sta5 {
		t.Fatalf("AE-2 on a closed transport: err %v, state %s; want an error and Sta5", err, a.state)
	}
	a, w = newWiredAssociation(true)
	a.state = sta6
	w.closed = true
	big := argsFor(evt9)
	big.pdata = make([]byte, 128<<10) // more than the write buffer holds: written at once
	_, err := a.fire(evt9, big)
	if !IsAssociationGone(err) || a.state != sta1 {
		t.Fatalf("DT-1 on a closed transport: err %v, state %s; want ErrClosed and Sta1", err, a.state)
	}
}

// step is one event of a path through the machine and what it must lead to.
type step struct {
	e    event
	act  action
	next state
}

// TestPaths drives the machine through each way an association goes, in both roles, and checks
// the actions, the states and the PDUs that reached the wire.
func TestPaths(t *testing.T) {
	establishRequestor := []step{{evt1, ae1, sta4}, {evt2, ae2, sta5}, {evt3, ae3, sta6}}
	establishAcceptor := []step{{evt5, ae5, sta2}, {evt6, ae6, sta3}, {evt7, ae7, sta6}}
	then := func(a []step, b ...step) []step { return append(append([]step{}, a...), b...) }
	tests := []struct {
		name      string
		requestor bool
		steps     []step
		wire      []PDUType
		closed    bool
	}{
		{"requestor: data, release", true, then(establishRequestor,
			step{evt9, dt1, sta6}, step{evt10, dt2, sta6}, step{evt11, ar1, sta7}, step{evt10, ar6, sta7}, step{evt13, ar3, sta1}),
			[]PDUType{TypeAssociateRQ, TypePDataTF, TypeReleaseRQ}, true},
		{"requestor: rejected", true, []step{{evt1, ae1, sta4}, {evt2, ae2, sta5}, {evt4, ae4, sta1}},
			[]PDUType{TypeAssociateRQ}, true},
		{"requestor: aborted while waiting for the answer", true, []step{{evt1, ae1, sta4}, {evt2, ae2, sta5}, {evt16, aa3, sta1}},
			[]PDUType{TypeAssociateRQ}, true},
		{"requestor: gives up on connecting", true, []step{{evt1, ae1, sta4}, {evt15, aa2, sta1}}, nil, true},
		{"requestor: connection lost while connecting", true, []step{{evt1, ae1, sta4}, {evt17, aa4, sta1}}, nil, true},
		{"requestor: release collision", true, then(establishRequestor,
			step{evt11, ar1, sta7}, step{evt12, ar8, sta9}, step{evt14, ar9, sta11}, step{evt13, ar3, sta1}),
			[]PDUType{TypeAssociateRQ, TypeReleaseRQ, TypeReleaseRP}, true},
		{"acceptor: data, release by the peer", false, then(establishAcceptor,
			step{evt10, dt2, sta6}, step{evt9, dt1, sta6}, step{evt12, ar2, sta8}, step{evt9, ar7, sta8}, step{evt14, ar4, sta13}, step{evt17, ar5, sta1}),
			[]PDUType{TypeAssociateAC, TypePDataTF, TypePDataTF, TypeReleaseRP}, true},
		{"acceptor: release collision", false, then(establishAcceptor,
			step{evt11, ar1, sta7}, step{evt12, ar8, sta10}, step{evt13, ar10, sta12}, step{evt14, ar4, sta13}, step{evt17, ar5, sta1}),
			[]PDUType{TypeAssociateAC, TypeReleaseRQ, TypeReleaseRP}, true},
		{"acceptor: rejects, the peer never closes", false, []step{{evt5, ae5, sta2}, {evt6, ae6, sta3}, {evt8, ae8, sta13}, {evt18, aa2, sta1}},
			[]PDUType{TypeAssociateRJ}, true},
		{"acceptor: no request before ARTIM", false, []step{{evt5, ae5, sta2}, {evt18, aa2, sta1}}, nil, true},
		{"acceptor: closed before a request", false, []step{{evt5, ae5, sta2}, {evt17, aa5, sta1}}, nil, true},
		{"acceptor: garbage first, then more", false, []step{{evt5, ae5, sta2}, {evt19, aa1, sta13}, {evt10, aa6, sta13}, {evt6, aa7, sta13}, {evt16, aa2, sta1}},
			[]PDUType{TypeAbort, TypeAbort}, true},
		{"acceptor: a PDU before the request", false, []step{{evt5, ae5, sta2}, {evt10, aa1, sta13}, {evt17, ar5, sta1}},
			[]PDUType{TypeAbort}, true},
		{"acceptor: aborted by the peer before answering", false, []step{{evt5, ae5, sta2}, {evt6, ae6, sta3}, {evt16, aa3, sta1}}, nil, true},
		{"established: local abort", false, then(establishAcceptor, step{evt15, aa1, sta13}, step{evt17, ar5, sta1}),
			[]PDUType{TypeAssociateAC, TypeAbort}, true},
		{"established: invalid PDU", false, then(establishAcceptor, step{evt19, aa8, sta13}, step{evt16, aa2, sta1}),
			[]PDUType{TypeAssociateAC, TypeAbort}, true},
		{"established: second A-ASSOCIATE-RQ", false, then(establishAcceptor, step{evt6, aa8, sta13}, step{evt18, aa2, sta1}),
			[]PDUType{TypeAssociateAC, TypeAbort}, true},
		{"established: aborted by the peer", true, then(establishRequestor, step{evt16, aa3, sta1}),
			[]PDUType{TypeAssociateRQ}, true},
		{"established: connection lost", true, then(establishRequestor, step{evt17, aa4, sta1}),
			[]PDUType{TypeAssociateRQ}, true},
		{"releasing: aborted by the peer", true, then(establishRequestor, step{evt11, ar1, sta7}, step{evt16, aa3, sta1}),
			[]PDUType{TypeAssociateRQ, TypeReleaseRQ}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, w := newWiredAssociation(tt.requestor)
			for i, st := range tt.steps {
				from := a.state
				act, err := a.fire(st.e, argsFor(st.e))
				if err != nil || act != st.act || a.state != st.next {
					t.Fatalf("step %d: %s in %s: %s to %s (%v), want %s to %s", i+1, st.e, from, act, a.state, err, st.act, st.next)
				}
			}
			var got []PDUType
			for _, p := range w.sent(t, a) {
				got = append(got, p.Type())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wire) {
				t.Errorf("wire %v, want %v", got, tt.wire)
			}
			if w.closed != tt.closed {
				t.Errorf("transport closed %v, want %v", w.closed, tt.closed)
			}
		})
	}
}
