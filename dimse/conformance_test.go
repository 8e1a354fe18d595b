package dimse

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"
)

// Association-level conformance against raw-socket peers: strict A-ASSOCIATE-RQ checks, what
// follows an A-ABORT, A-RELEASE-RQ in the middle of a message, and the admission of connections
// that have not asked for an association yet.

// rawAssociateRQ lays out an A-ASSOCIATE-RQ by hand, so that a test can send one the encoder
// would never write: AE title fields as given (16 bytes, not padded or trimmed), and userInfo as
// the raw user information item (nil for none).
func rawAssociateRQ(called, calling string, contexts []PresentationContextRQ, userInfo []byte) []byte {
	field := func(s string) []byte {
		f := []byte("                ")
		copy(f, s)
		return f
	}
	b := []byte{byte(TypeAssociateRQ), 0, 0, 0, 0, 0, 0, 1, 0, 0}
	b = append(b, field(called)...)
	b = append(b, field(calling)...)
	b = append(b, make([]byte, 32)...)
	b = appendUIDItem(b, itemApplicationContext, ApplicationContextName)
	for i := range contexts {
		b = contexts[i].appendItem(b)
	}
	b = append(b, userInfo...)
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)-6))
	return b
}

var (
	verificationPC = []PresentationContextRQ{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	// userInfoMaxLength is a user information item with only its maximum length sub-item (16384).
	userInfoMaxLength = []byte{itemUserInformation, 0, 0, 8, itemMaximumLength, 0, 0, 4, 0, 0, 0x40, 0}
	// userInfoNoMaxLength has an implementation class UID but no maximum length sub-item.
	userInfoNoMaxLength = appendUIDItem([]byte{itemUserInformation, 0, 0, 9}, itemImplementationClass, "1.2.3")
)

// strictRQCases are the requests PS3.8 9.3.2 and PS3.5 (AE) do not allow, with the answer each
// gets. The fuzz corpus holds each of them too (FuzzServeConn).
var strictRQCases = []struct {
	name string
	pdu  []byte
	want AssociateRJ
}{
	{"no presentation context", rawAssociateRQ("ESPNODE", "RAW", nil, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceACSE, Reason: RejectReasonACSENoReason}},
	{"no user information item", rawAssociateRQ("ESPNODE", "RAW", verificationPC, nil),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceACSE, Reason: RejectReasonACSENoReason}},
	{"no maximum length sub-item", rawAssociateRQ("ESPNODE", "RAW", verificationPC, userInfoNoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceACSE, Reason: RejectReasonACSENoReason}},
	{"called AE of only spaces", rawAssociateRQ("", "RAW", verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCalledAENotRecognized}},
	{"control character in called AE", rawAssociateRQ("ESP\x01NODE", "RAW", verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCalledAENotRecognized}},
	{"leading tab in called AE", rawAssociateRQ("\tESPNODE", "RAW", verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCalledAENotRecognized}},
	{"backslash in called AE", rawAssociateRQ(`ESP\NODE`, "RAW", verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCalledAENotRecognized}},
	{"calling AE of only spaces", rawAssociateRQ("ESPNODE", "", verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCallingAENotRecognized}},
	{"control character in calling AE", rawAssociateRQ("ESPNODE", "RAW\x7f", verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCallingAENotRecognized}},
	{"NUL inside calling AE", rawAssociateRQ("ESPNODE", "R\x00AW", verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCallingAENotRecognized}},
	{"backslash in calling AE", rawAssociateRQ("ESPNODE", `RAW\1`, verificationPC, userInfoMaxLength),
		AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCallingAENotRecognized}},
}

func TestStrictAssociateRQ(t *testing.T) {
	ts := startServer(t, nil)
	for _, tt := range strictRQCases {
		t.Run(tt.name, func(t *testing.T) {
			p := dialRaw(t, ts.addr)
			p.write(tt.pdu)
			pdu := p.read(2 * time.Second)
			rj, ok := pdu.(*AssociateRJ)
			if !ok || *rj != tt.want {
				t.Fatalf("got %#v, want A-ASSOCIATE-RJ %v", pdu, tt.want)
			}
			p.conn.Close()
		})
	}
	for _, calling := range []string{"RAW", "  RAW", "RAW\x00\x00\x00"} {
		t.Run("accepted: calling AE "+strconv.Quote(calling), func(t *testing.T) {
			p := dialRaw(t, ts.addr)
			p.write(rawAssociateRQ("ESPNODE", calling, verificationPC, userInfoMaxLength))
			if pdu := p.read(2 * time.Second); pdu == nil || pdu.Type() != TypeAssociateAC {
				t.Fatalf("got %#v, want A-ASSOCIATE-AC", pdu)
			}
		})
	}
}

// readAll reads PDUs until the server closes, failing if that takes longer than within.
func (p *rawPeer) readAll(within time.Duration) []PDU {
	p.t.Helper()
	deadline := time.Now().Add(within)
	var out []PDU
	for {
		pdu := p.read(time.Until(deadline))
		if pdu == nil {
			return out
		}
		out = append(out, pdu)
	}
}

// TestOneAbortForGarbage: after the PDU that made the server abort, 4 KB of garbage are read into
// nothing (Sta13): exactly one A-ABORT comes back, then the close when ARTIM expires.
func TestOneAbortForGarbage(t *testing.T) {
	ts := startServer(t, nil) // ARTIM 500 ms
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
	}
	tests := []struct {
		name      string
		associate bool
		bad       []byte
		want      Abort
	}{
		{"unknown PDU type on an association", true, []byte{0x0A, 0, 0, 0, 0, 4, 0, 0, 0, 0},
			Abort{Source: AbortSourceProvider, Reason: AbortReasonUnrecognizedPDU}},
		{"P-DATA-TF longer than announced", true, []byte{0x04, 0, 0xFF, 0xFF, 0xFF, 0xFF},
			Abort{Source: AbortSourceProvider, Reason: AbortReasonInvalidParameter}},
		{"garbage instead of A-ASSOCIATE-RQ", false, []byte{0x01, 0, 0xFF, 0xFF, 0xFF, 0xFF},
			Abort{Source: AbortSourceUser, Reason: AbortReasonNotSpecified}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := dialRaw(t, ts.addr)
			if tt.associate {
				p.associate()
			}
			p.write(append(append([]byte{}, tt.bad...), garbage...))
			got := p.readAll(5 * time.Second)
			if len(got) != 1 {
				t.Fatalf("the server sent %d PDUs (%v), want one A-ABORT", len(got), got)
			}
			if ab, ok := got[0].(*Abort); !ok || *ab != tt.want {
				t.Fatalf("got %#v, want A-ABORT %v", got[0], tt.want)
			}
		})
	}
}

// pdataCommand reads the command set of a P-DATA-TF the server sent.
func pdataCommand(t *testing.T, pdu PDU) Message {
	t.Helper()
	pd, ok := pdu.(*PDataTF)
	if !ok || len(pd.Items) != 1 || !pd.Items[0].Command || !pd.Items[0].Last {
		t.Fatalf("got %#v, want a P-DATA-TF with one whole command", pdu)
	}
	msg, err := DecodeCommand(pd.Items[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestReleaseDuringStore: A-RELEASE-RQ between the fragments of a C-STORE data set. The state
// table allows it (Evt12 in Sta6: AR-2) and lets the acceptor still send P-DATA (AR-7): the
// C-STORE fails with a response, then the release completes with A-RELEASE-RP (AR-4), and
// nothing is stored.
func TestReleaseDuringStore(t *testing.T) {
	ts := startServer(t, nil)
	p := dialRaw(t, ts.addr)
	p.associate(PresentationContextRQ{ID: 1, AbstractSyntax: ctImage, TransferSyntaxes: []string{ExplicitVRLittleEndian}})
	const uid = "1.2.3.4.5"
	cmd := EncodeCommand(&CStoreRQ{MessageID: 9, AffectedSOPClassUID: ctImage, AffectedSOPInstanceUID: uid})
	p.write(EncodePDU(&PDataTF{Items: []PDV{{ContextID: 1, Command: true, Last: true, Data: cmd}}}))
	p.write(EncodePDU(&PDataTF{Items: []PDV{{ContextID: 1, Data: make([]byte, 100)}}})) // not the last fragment
	p.write(EncodePDU(&ReleaseRQ{}))

	rsp, ok := pdataCommand(t, p.read(3*time.Second)).(*CStoreRSP)
	if !ok || rsp.MessageIDBeingRespondedTo != 9 || rsp.Status.Code == StatusSuccess || rsp.Status.IsPending() {
		t.Fatalf("got %#v, want a failed C-STORE-RSP to message 9", rsp)
	}
	if pdu := p.read(3 * time.Second); pdu == nil || pdu.Type() != TypeReleaseRP {
		t.Fatalf("got %#v, want A-RELEASE-RP", pdu)
	}
	p.conn.Close()
	ts.mu.Lock()
	_, stored := ts.stored[uid]
	ts.mu.Unlock()
	if stored {
		t.Fatal("an incomplete data set was stored")
	}
}

// TestReleaseBetweenCommandFragments: the command set itself is cut short by the release; there is
// nothing to answer, and the release completes.
func TestReleaseBetweenCommandFragments(t *testing.T) {
	ts := startServer(t, nil)
	p := dialRaw(t, ts.addr)
	p.associate()
	cmd := EncodeCommand(&CEchoRQ{MessageID: 1, AffectedSOPClassUID: VerificationSOPClass})
	p.write(EncodePDU(&PDataTF{Items: []PDV{{ContextID: 1, Command: true, Data: cmd[:10]}}}))
	p.write(EncodePDU(&ReleaseRQ{}))
	if pdu := p.read(3 * time.Second); pdu == nil || pdu.Type() != TypeReleaseRP {
		t.Fatalf("got %#v, want A-RELEASE-RP", pdu)
	}
}

// dialRawFrom connects from a given loopback address, to play another host.
func dialRawFrom(t *testing.T, local, addr string) *rawPeer {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn}
}

// closedWithin reports whether the server closes the connection within d without sending anything.
func (p *rawPeer) closedWithin(d time.Duration) bool {
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := p.conn.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestSilentConnections: connections that never send an A-ASSOCIATE-RQ have their own bound,
// pushed out oldest first, and do not take the slots of established associations.
func TestSilentConnections(t *testing.T) {
	ctx := context.Background()
	t.Run("a flood of silent sockets locks no one out", func(t *testing.T) {
		ts := startServer(t, func(s *Server) {
			s.MaxAssociations = 2
			s.MaxPending = 4
			s.Timeouts.FirstPDU = time.Minute // eviction, not the deadline, must make room
			s.Timeouts.ARTIM = time.Minute
		})
		var silent []*rawPeer
		for range 20 {
			silent = append(silent, dialRaw(t, ts.addr))
		}
		for i := range 2 {
			c, err := Dial(ctx, ts.addr, clientConfig())
			if err != nil {
				t.Fatalf("association %d with 20 silent sockets open: %v", i+1, err)
			}
			defer c.Release(ctx)
		}
		if !silent[0].closedWithin(2 * time.Second) {
			t.Error("the oldest silent socket is still open")
		}
		// The established associations keep their own limit.
		_, err := Dial(ctx, ts.addr, clientConfig())
		var rj *RejectError
		want := AssociateRJ{Result: RejectTransient, Source: RejectSourcePresentation, Reason: RejectReasonLocalLimitExceeded}
		if !errors.As(err, &rj) || rj.AssociateRJ != want {
			t.Fatalf("third association: %v, want transient reject %v", err, want)
		}
	})
	t.Run("first-PDU deadline", func(t *testing.T) {
		ts := startServer(t, func(s *Server) {
			s.Timeouts.FirstPDU = 300 * time.Millisecond
			s.Timeouts.ARTIM = time.Minute
		})
		silent := dialRaw(t, ts.addr)
		if !silent.closedWithin(3 * time.Second) {
			t.Error("a silent connection outlived the first-PDU deadline")
		}
		// A request trickled a few bytes at a time is bound by the same deadline as a silent one.
		slow := dialRaw(t, ts.addr)
		rq := rawAssociateRQ("ESPNODE", "SLOW", verificationPC, userInfoMaxLength)
		for _, b := range rq {
			if _, err := slow.conn.Write([]byte{b}); err != nil {
				break // closed under us, as it should be
			}
			time.Sleep(20 * time.Millisecond) // the whole request takes over 3 s
		}
		if pdu := slow.read(3 * time.Second); pdu != nil {
			t.Fatalf("the server answered a request trickled past the first-PDU deadline with %T", pdu)
		}
	})
	t.Run("per-host limit", func(t *testing.T) {
		ts := startServer(t, func(s *Server) { s.MaxPerHost = 2 })
		a := dialRaw(t, ts.addr)
		a.associate()
		dialRaw(t, ts.addr) // silent: counts too
		time.Sleep(100 * time.Millisecond)
		third := dialRaw(t, ts.addr)
		if !third.closedWithin(2 * time.Second) {
			t.Fatal("a third connection from the host was not closed")
		}
		other := dialRawFrom(t, "127.0.0.2", ts.addr)
		other.associate()
	})
}
