package dimse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// FuzzReadPDU: any bytes give a PDU or an error, never a panic or an allocation beyond the limits;
// a decoded PDU re-encodes to something that decodes to the same PDU.
func FuzzReadPDU(f *testing.F) {
	for _, p := range samplePDUs() {
		f.Add(EncodePDU(p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPDU(bytes.NewReader(b), 64<<10)
		if err != nil {
			return
		}
		again, err := ReadPDU(bytes.NewReader(EncodePDU(p)), 64<<10)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", p, err)
		}
		if !bytes.Equal(EncodePDU(again), EncodePDU(p)) {
			t.Fatalf("%T changes on a second round trip", p)
		}
	})
}

// FuzzDecodeCommand: any command set decodes or fails cleanly; decoded messages round-trip.
func FuzzDecodeCommand(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(EncodeCommand(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeCommand(b)
		if err != nil {
			var u *UnknownCommandError
			_ = errors.As(err, &u)
			return
		}
		m2, err := DecodeCommand(EncodeCommand(m))
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", m, err)
		}
		if !bytes.Equal(EncodeCommand(m2), EncodeCommand(m)) {
			t.Fatalf("%T changes on a second round trip", m)
		}
	})
}

// memConn is a connection whose peer sent in and then closed; what the server writes is kept.
type memConn struct {
	in  *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 104} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzServer answers C-ECHO and C-STORE (reading the data set to its end) on Verification and CT.
func fuzzServer() *Server {
	mux := NewServeMux()
	mux.HandleFunc(VerificationSOPClass, FieldCEchoRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
		rq := r.Command.(*CEchoRQ)
		_ = w.Respond(&CEchoRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID}, nil)
	})
	mux.HandleFunc("", FieldCStoreRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
		rq := r.Command.(*CStoreRQ)
		if _, err := io.Copy(io.Discard, r.Data); err != nil {
			return
		}
		_ = w.Respond(&CStoreRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID, AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID}, nil)
	})
	s := &Server{
		Policy: Policy{AETitle: "ESPNODE", TransferSyntaxes: func(_ context.Context, as string) []string {
			if as == VerificationSOPClass || as == ctImage {
				return []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}
			}
			return nil
		}},
		Handler: mux,
		Logger:  zerolog.Nop(),
	}
	s.init()
	return s
}

// FuzzServeConn plays any byte stream as a requestor's side of a connection against the server.
// Whatever the bytes, the server ends the connection, and what it sent is a sequence of whole
// PDUs with at most one A-ABORT, which is the last: after an abort nothing more is read into the
// state machine (Sta13), so garbage cannot be answered piece by piece.
func FuzzServeConn(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := fuzzServer()
		conn := &memConn{in: bytes.NewReader(in)}
		pc := s.admitOrRefuse(conn)
		if pc == nil {
			t.Fatal("the fuzz server refused a connection")
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.handle(context.Background(), conn, pc)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not end the connection")
		}
		r := bytes.NewReader(conn.out.Bytes())
		aborted := false
		for r.Len() > 0 {
			p, err := ReadPDU(r, 16<<20)
			if err != nil {
				t.Fatalf("the server sent something that is not a PDU: %v", err)
			}
			if aborted {
				t.Fatalf("the server sent %s after its A-ABORT", p.Type())
			}
			aborted = p.Type() == TypeAbort
		}
	})
}
