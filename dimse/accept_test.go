package dimse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// scriptedListener is a real listener whose Accept first fails as the script says: true is a
// temporary error (EMFILE, as when the process is out of file descriptors), false a real accept.
// After the script, every Accept is real, or fails with final when it is set.
type scriptedListener struct {
	net.Listener
	mu     sync.Mutex
	script []bool
	final  error
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	fail := false
	if len(l.script) > 0 {
		fail, l.script = l.script[0], l.script[1:]
	} else if l.final != nil {
		l.mu.Unlock()
		return nil, l.final
	}
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) retries(t *testing.T) []string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b.b.Bytes()))
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			RetryIn string `json:"retry_in"`
			Error   string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line.Message == "accept failed" {
			if line.Error == "" {
				t.Errorf("accept failure logged without its error")
			}
			out = append(out, line.RetryIn)
		}
	}
	return out
}

func serveOn(t *testing.T, ln net.Listener, log zerolog.Logger) (stop func() error) {
	t.Helper()
	mux := NewServeMux()
	mux.HandleFunc(VerificationSOPClass, FieldCEchoRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
		rq := r.Command.(*CEchoRQ)
		_ = w.Respond(&CEchoRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID}, nil)
	})
	srv := &Server{
		Policy: Policy{AETitle: "ESPNODE", TransferSyntaxes: func(context.Context, string) []string {
			return []string{ImplicitVRLittleEndian}
		}},
		Handler:       mux,
		ShutdownGrace: time.Second,
		Logger:        log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				err = errors.New("Serve did not return within 5 s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func echoOnce(t *testing.T, addr string) {
	t.Helper()
	ctx := context.Background()
	c, err := Dial(ctx, addr, clientConfig(PresentationContextRQ{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if st, err := c.Echo(ctx); err != nil || st.Code != StatusSuccess {
		t.Fatalf("echo: %v %v", st, err)
	}
	_ = c.Release(ctx)
}

// TestAcceptBacksOff: temporary accept errors are logged and retried after 5 ms, doubling; a
// connection accepted resets the pause, and the server goes on serving throughout.
func TestAcceptBacksOff(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &scriptedListener{Listener: inner, script: []bool{true, true, true, true, false, true, true, false}}
	logs := &lockedBuffer{}
	stop := serveOn(t, ln, zerolog.New(logs))
	echoOnce(t, inner.Addr().String())
	echoOnce(t, inner.Addr().String())
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	want := []string{"5ms", "10ms", "20ms", "40ms", "5ms", "10ms"}
	if got := logs.retries(t); len(got) != len(want) || !equalStrings(got, want) {
		t.Fatalf("retried after %v, want %v", got, want)
	}
}

// TestAcceptFailsForGood: an accept error that is not temporary ends Serve with that error.
func TestAcceptFailsForGood(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	broken := errors.New("listener broken")
	ln := &scriptedListener{Listener: inner, script: []bool{true}, final: broken}
	logs := &lockedBuffer{}
	srv := &Server{Policy: Policy{AETitle: "ESPNODE"}, Handler: NewServeMux(), Logger: zerolog.New(logs)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	select {
	case err := <-done:
		if !errors.Is(err, broken) {
			t.Fatalf("Serve returned %v, want the listener's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after a permanent accept error")
	}
	if got := logs.retries(t); !equalStrings(got, []string{"5ms"}) {
		t.Fatalf("retried after %v, want once after 5ms", got)
	}
}

func TestNextAcceptDelay(t *testing.T) {
	tests := []struct{ prev, want time.Duration }{
		{0, 5 * time.Millisecond},
		{5 * time.Millisecond, 10 * time.Millisecond},
		{320 * time.Millisecond, 640 * time.Millisecond},
		{640 * time.Millisecond, time.Second},
		{time.Second, time.Second},
	}
	for _, tt := range tests {
		if got := nextAcceptDelay(tt.prev); got != tt.want {
			t.Errorf("after %v: %v, want %v", tt.prev, got, tt.want)
		}
	}
}

func TestIsTemporary(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EMFILE", &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{"ENFILE", &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{"ECONNRESET", &net.OpError{Op: "accept", Err: syscall.ECONNRESET}, true},
		{"deadline", &net.OpError{Op: "accept", Err: os.ErrDeadlineExceeded}, true},
		{"closed listener", &net.OpError{Op: "accept", Err: net.ErrClosed}, false},
		{"other", errors.New("broken"), false},
	}
	for _, tt := range tests {
		if got := isTemporary(tt.err); got != tt.want {
			t.Errorf("%s: temporary %v, want %v", tt.name, got, tt.want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
