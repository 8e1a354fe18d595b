package dimse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const ctImage = "1.2.840.10008.5.1.4.1.1.2"

// testServer runs a Server on loopback that answers C-ECHO and stores C-STORE data sets in memory.
type testServer struct {
	addr   string
	mu     sync.Mutex
	stored map[string][32]byte // SOP instance UID -> sha256 of the data set
	cancel context.CancelFunc
	done   chan error
}

func startServer(t testing.TB, configure func(*Server)) *testServer {
	t.Helper()
	return startServerOn(t, configure, nil)
}

// startServerOn is startServer on a listener wrap makes of the loopback one (TLS), when not nil.
func startServerOn(t testing.TB, configure func(*Server), wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	ts := &testServer{stored: map[string][32]byte{}, done: make(chan error, 1)}
	mux := NewServeMux()
	mux.HandleFunc(VerificationSOPClass, FieldCEchoRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
		rq := r.Command.(*CEchoRQ)
		_ = w.Respond(&CEchoRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID}, nil)
	})
	mux.HandleFunc("", FieldCStoreRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
		rq := r.Command.(*CStoreRQ)
		h := sha256.New()
		status := Status{Code: StatusSuccess}
		if _, err := io.Copy(h, r.Data); err != nil {
			return // the association is gone; nothing to answer
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		ts.mu.Lock()
		ts.stored[rq.AffectedSOPInstanceUID] = sum
		ts.mu.Unlock()
		_ = w.Respond(&CStoreRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID, AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID, Status: status}, nil)
	})
	srv := &Server{
		Policy: Policy{
			AETitle: "ESPNODE",
			TransferSyntaxes: func(_ context.Context, as string) []string {
				switch as {
				case VerificationSOPClass:
					return []string{ImplicitVRLittleEndian}
				case ctImage:
					return []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}
				}
				return nil
			},
		},
		Handler:       mux,
		Timeouts:      Timeouts{ARTIM: 500 * time.Millisecond, Idle: 5 * time.Second, DIMSE: 2 * time.Second},
		ShutdownGrace: time.Second,
		Logger:        zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	if configure != nil {
		configure(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(5 * time.Second):
			t.Error("server did not shut down within 5 s")
		}
	})
	return ts
}

func clientConfig(contexts ...PresentationContextRQ) ClientConfig {
	if len(contexts) == 0 {
		contexts = []PresentationContextRQ{
			{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{AbstractSyntax: ctImage, TransferSyntaxes: []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}},
		}
	}
	return ClientConfig{CallingAE: "TESTSCU", CalledAE: "ESPNODE", Contexts: contexts,
		Timeouts: Timeouts{ARTIM: 2 * time.Second, DIMSE: 5 * time.Second}}
}

func TestEchoAndStoreLoopback(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.MaxPDULength = 16 << 10 })
	ctx := context.Background()
	cfg := clientConfig()
	cfg.MaxPDULength = 8 << 10
	c, err := Dial(ctx, ts.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Echo(ctx)
	if err != nil || st.Code != StatusSuccess {
		t.Fatalf("echo: %v %v", st, err)
	}
	// The server prefers explicit VR LE even though the client listed implicit first.
	pc, ok := c.FindContext(ctImage, "")
	if !ok || pc.TransferSyntax != ExplicitVRLittleEndian {
		t.Fatalf("CT context %+v, want explicit VR little endian", pc)
	}
	// Sizes around fragment boundaries, and one that spans many PDUs.
	for i, size := range []int{0, 1, 16<<10 - 6, 16<<10 - 5, 3 << 20} {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rand.IntN(256))
		}
		uid := fmt.Sprintf("1.2.3.%d", i+1)
		st, err := c.Store(ctx, ctImage, uid, ExplicitVRLittleEndian, bytes.NewReader(data))
		if err != nil || st.Code != StatusSuccess {
			t.Fatalf("store %d bytes: %v %v", size, st, err)
		}
		ts.mu.Lock()
		got := ts.stored[uid]
		ts.mu.Unlock()
		if got != sha256.Sum256(data) {
			t.Fatalf("store %d bytes: the server received different bytes", size)
		}
	}
	if err := c.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
}

func TestNegotiationResults(t *testing.T) {
	ts := startServer(t, nil)
	c, err := Dial(context.Background(), ts.addr, clientConfig(
		PresentationContextRQ{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		PresentationContextRQ{AbstractSyntax: "1.2.3.4.5.6", TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		PresentationContextRQ{AbstractSyntax: ctImage, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.50"}},
	))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(context.Background())
	if got := len(c.Association().Contexts()); got != 1 {
		t.Fatalf("%d contexts accepted, want 1 (verification)", got)
	}
	if _, ok := c.Association().Context(1); !ok {
		t.Fatal("verification context 1 not accepted")
	}
}

func TestAssociationRejections(t *testing.T) {
	ctx := context.Background()
	strict := startServer(t, func(s *Server) {
		s.Policy.StrictCalledAE = true
		s.Policy.CallerAllowed = func(_ context.Context, r Requestor) bool { return r.CallingAE == "TESTSCU" }
	})
	tests := []struct {
		name           string
		called, caller string
		want           AssociateRJ
	}{
		{"wrong called AE", "OTHER", "TESTSCU", AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCalledAENotRecognized}},
		{"calling AE not allowed", "ESPNODE", "STRANGER", AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectReasonCallingAENotRecognized}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig()
			cfg.CalledAE, cfg.CallingAE = tt.called, tt.caller
			_, err := Dial(ctx, strict.addr, cfg)
			var rj *RejectError
			if !errors.As(err, &rj) || rj.AssociateRJ != tt.want {
				t.Fatalf("error %v, want reject %v", err, tt.want)
			}
		})
	}
	t.Run("case-insensitive called AE is accepted", func(t *testing.T) {
		cfg := clientConfig()
		cfg.CalledAE = "espnode"
		c, err := Dial(ctx, strict.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Release(ctx)
	})
	t.Run("too many associations", func(t *testing.T) {
		one := startServer(t, func(s *Server) { s.MaxAssociations = 1 })
		held, err := Dial(ctx, one.addr, clientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release(ctx)
		_, err = Dial(ctx, one.addr, clientConfig())
		var rj *RejectError
		want := AssociateRJ{Result: RejectTransient, Source: RejectSourcePresentation, Reason: RejectReasonLocalLimitExceeded}
		if !errors.As(err, &rj) || rj.AssociateRJ != want {
			t.Fatalf("error %v, want transient reject %v", err, want)
		}
	})
}

// rawPeer speaks bytes to the server, for peers that break the protocol.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn}
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// read returns the next PDU, or nil when the server closed the connection.
func (p *rawPeer) read(timeout time.Duration) PDU {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	pdu, err := ReadPDU(p.conn, 1<<20)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p.t.Fatalf("server neither answered nor closed within %v", timeout)
		}
		if op := (*net.OpError)(nil); errors.As(err, &op) {
			return nil // connection reset
		}
		p.t.Fatalf("read PDU: %v", err)
	}
	return pdu
}

func (p *rawPeer) associate(contexts ...PresentationContextRQ) {
	p.t.Helper()
	if len(contexts) == 0 {
		contexts = []PresentationContextRQ{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	}
	p.write(EncodePDU(&AssociateRQ{ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "RAW", ApplicationContext: ApplicationContextName,
		PresentationContexts: contexts, UserInfo: UserInfo{MaxLength: 16384}}))
	if _, ok := p.read(2 * time.Second).(*AssociateAC); !ok {
		p.t.Fatal("association not accepted")
	}
}

// expectAbort reads until the server's A-ABORT and then the close.
func (p *rawPeer) expectAbort(source AbortSource, reason AbortReason) {
	p.t.Helper()
	pdu := p.read(3 * time.Second)
	ab, ok := pdu.(*Abort)
	if !ok {
		p.t.Fatalf("got %T, want A-ABORT", pdu)
	}
	if ab.Source != source || ab.Reason != reason {
		p.t.Fatalf("A-ABORT %v, want source %d reason %d", ab, source, reason)
	}
	// Closing our side is what the server waits for in Sta13.
	p.conn.Close()
}

func (p *rawPeer) expectClosed(within time.Duration) {
	p.t.Helper()
	if pdu := p.read(within); pdu != nil {
		p.t.Fatalf("got %T, want the connection closed", pdu)
	}
}

func TestBadPeers(t *testing.T) {
	ts := startServer(t, nil)
	echoCmd := EncodeCommand(&CEchoRQ{MessageID: 1, AffectedSOPClassUID: VerificationSOPClass})

	t.Run("never speaks", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.expectClosed(3 * time.Second) // ARTIM is 500 ms
	})
	t.Run("partial PDU then silence", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.write([]byte{0x01, 0x00, 0x00})
		p.expectClosed(3 * time.Second)
	})
	t.Run("length 0xFFFFFFFF", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.write([]byte{0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF})
		// AA-1 in Sta2: A-ABORT with service-user source (PS3.8 Table 9-9).
		p.expectAbort(AbortSourceUser, AbortReasonNotSpecified)
	})
	t.Run("length 0xFFFFFFFF after association", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.associate()
		p.write([]byte{0x04, 0x00, 0xFF, 0xFF, 0xFF, 0xFF})
		p.expectAbort(AbortSourceProvider, AbortReasonInvalidParameter)
	})
	t.Run("unknown PDU type", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.associate()
		p.write([]byte{0x0A, 0x00, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0})
		p.expectAbort(AbortSourceProvider, AbortReasonUnrecognizedPDU)
	})
	t.Run("data on a context that was not accepted", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.associate()
		p.write(EncodePDU(&PDataTF{Items: []PDV{{ContextID: 3, Command: true, Last: true, Data: echoCmd}}}))
		p.expectAbort(AbortSourceProvider, AbortReasonInvalidParameter)
	})
	t.Run("data set PDV where a command belongs", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.associate()
		p.write(EncodePDU(&PDataTF{Items: []PDV{{ContextID: 1, Command: false, Last: true, Data: []byte{1, 2}}}}))
		p.expectAbort(AbortSourceProvider, AbortReasonUnexpectedParameter)
	})
	t.Run("even context ID", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.write(EncodePDU(&AssociateRQ{ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "RAW", ApplicationContext: ApplicationContextName,
			PresentationContexts: []PresentationContextRQ{{ID: 2, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}}))
		p.expectAbort(AbortSourceProvider, AbortReasonInvalidParameter)
	})
	t.Run("duplicate context ID", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		pc := PresentationContextRQ{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}
		p.write(EncodePDU(&AssociateRQ{ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "RAW", ApplicationContext: ApplicationContextName,
			PresentationContexts: []PresentationContextRQ{pc, pc}}))
		p.expectAbort(AbortSourceProvider, AbortReasonInvalidParameter)
	})
	t.Run("wrong application context", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.write(EncodePDU(&AssociateRQ{ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "RAW", ApplicationContext: "1.2.3"}))
		pdu := p.read(2 * time.Second)
		rj, ok := pdu.(*AssociateRJ)
		if !ok || rj.Source != RejectSourceUser || rj.Reason != RejectReasonAppContextNotSupported {
			t.Fatalf("got %#v, want A-ASSOCIATE-RJ application context not supported", pdu)
		}
	})
	t.Run("A-ASSOCIATE-RQ twice", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.associate()
		p.write(EncodePDU(&AssociateRQ{ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "RAW", ApplicationContext: ApplicationContextName}))
		p.expectAbort(AbortSourceProvider, AbortReasonUnexpectedPDU)
	})
	t.Run("idle association", func(t *testing.T) {
		idle := startServer(t, func(s *Server) { s.Timeouts.Idle = 300 * time.Millisecond })
		p := dialRaw(t, idle.addr)
		p.associate()
		p.expectAbort(AbortSourceUser, AbortReasonNotSpecified)
	})
	t.Run("stall mid-PDU after association", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		p.associate()
		p.write([]byte{0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}) // 256-byte P-DATA, 2 bytes sent
		// The DIMSE timeout (2 s) cuts the stalled peer off with an abort.
		p.expectAbort(AbortSourceUser, AbortReasonNotSpecified)
	})
	// After all of that the server still serves.
	c, err := Dial(context.Background(), ts.addr, clientConfig())
	if err != nil {
		t.Fatalf("server no longer serves: %v", err)
	}
	if st, err := c.Echo(context.Background()); err != nil || st.Code != StatusSuccess {
		t.Fatalf("echo after bad peers: %v %v", st, err)
	}
	_ = c.Release(context.Background())
}

// TestStalledPeerDelaysNoOne: 100 associations echo while one peer sits mid-PDU.
func TestStalledPeerDelaysNoOne(t *testing.T) {
	ts := startServer(t, func(s *Server) {
		s.MaxAssociations = 200
		s.MaxPending = 200             // 100 connect at once: none is pushed out before its request is in
		s.Timeouts.DIMSE = time.Minute // the stall outlasts the test
	})
	stalled := dialRaw(t, ts.addr)
	stalled.associate()
	stalled.write([]byte{0x04, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(ctx, ts.addr, clientConfig())
			if err != nil {
				errs <- err
				return
			}
			defer c.Release(ctx)
			if st, err := c.Echo(ctx); err != nil || st.Code != StatusSuccess {
				errs <- fmt.Errorf("echo: %v %v", st, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReleaseCollision plays an acceptor that answers our A-RELEASE-RQ with its own A-RELEASE-RQ:
// the requestor must answer A-RELEASE-RP (AR-9) and then accept the acceptor's A-RELEASE-RP.
func TestReleaseCollision(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			peerErr <- err
			return
		}
		defer conn.Close()
		p, err := ReadPDU(conn, 1<<20)
		if err != nil {
			peerErr <- err
			return
		}
		rq := p.(*AssociateRQ)
		conn.Write(EncodePDU(&AssociateAC{ProtocolVersion: 1, CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, ApplicationContext: ApplicationContextName,
			PresentationContexts: []PresentationContextAC{{ID: 1, Result: ResultAcceptance, TransferSyntax: ImplicitVRLittleEndian}}}))
		if p, err = ReadPDU(conn, 1<<20); err != nil || p.Type() != TypeReleaseRQ {
			peerErr <- fmt.Errorf("want A-RELEASE-RQ, got %v %v", p, err)
			return
		}
		conn.Write(EncodePDU(&ReleaseRQ{}))
		if p, err = ReadPDU(conn, 1<<20); err != nil || p.Type() != TypeReleaseRP {
			peerErr <- fmt.Errorf("want A-RELEASE-RP from the requestor, got %v %v", p, err)
			return
		}
		conn.Write(EncodePDU(&ReleaseRP{}))
		peerErr <- nil
	}()
	c, err := Dial(context.Background(), ln.Addr().String(), clientConfig(
		PresentationContextRQ{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(context.Background()); err != nil {
		t.Fatalf("release with collision: %v", err)
	}
	if err := <-peerErr; err != nil {
		t.Fatal(err)
	}
}

func TestShutdownEndsIdleAssociations(t *testing.T) {
	ts := startServer(t, nil)
	c, err := Dial(context.Background(), ts.addr, clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after cancel with an idle association open")
	}
	if _, err := c.Echo(context.Background()); err == nil {
		t.Fatal("echo succeeded on an association the server shut down")
	}
}

// patternReader yields n bytes without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = byte(i)
	}
	p.left -= int64(len(b))
	return len(b), nil
}

// TestLargeDataSetIsStreamed sends 512 MiB through client and server in this process and checks
// that far less than that was allocated: neither side holds the data set.
func TestLargeDataSetIsStreamed(t *testing.T) {
	const size = 512 << 20
	var received atomic.Int64
	srv := startServer(t, func(s *Server) {
		mux := NewServeMux()
		mux.HandleFunc("", FieldCStoreRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
			rq := r.Command.(*CStoreRQ)
			n, err := io.Copy(io.Discard, r.Data)
			if err != nil {
				return
			}
			received.Store(n)
			_ = w.Respond(&CStoreRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID, AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID}, nil)
		})
		s.Handler = mux
	})
	c, err := Dial(context.Background(), srv.addr, clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(context.Background())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := c.Store(context.Background(), ctImage, "1.2.3", ExplicitVRLittleEndian, &patternReader{left: size})
	runtime.ReadMemStats(&after)
	if err != nil || st.Code != StatusSuccess || received.Load() != size {
		t.Fatalf("store: %v %v, received %d of %d bytes", st, err, received.Load(), size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("sending and receiving %d MiB allocated %d MiB: the data set is being buffered", size>>20, alloc>>20)
	}
}

// A title or name longer than its PDU field is refused before anything is sent, not cut.
func TestDialRefusesWhatThePDUCannotCarry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tests := []struct {
		name   string
		mutate func(*ClientConfig)
		want   string
	}{
		{"called AE of 17 characters", func(c *ClientConfig) { c.CalledAE = "ESPNODE-ARCHIVE-1" }, "called AE title"},
		{"empty calling AE", func(c *ClientConfig) { c.CallingAE = "  " }, "calling AE title"},
		{"calling AE with a backslash", func(c *ClientConfig) { c.CallingAE = `A\B` }, "calling AE title"},
		{"implementation class UID", func(c *ClientConfig) { c.ImplementationClassUID = "1.2.abc" }, "implementation class UID"},
		{"implementation version name", func(c *ClientConfig) { c.ImplementationVersionName = "ESPNODE_2026_12_02" }, "implementation version name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig()
			tt.mutate(&cfg)
			_, err := Dial(context.Background(), ln.Addr().String(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial: %v, want an error about the %s", err, tt.want)
			}
		})
	}
}
