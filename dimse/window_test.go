package dimse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

func TestWindowNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		server     int
		proposed   *AsyncOpsWindow
		wantWindow int
	}{
		{"no window proposed", 8, nil, 1},
		{"server performs one at a time", 0, &AsyncOpsWindow{MaxInvoked: 8, MaxPerformed: 1}, 1},
		{"server's limit is smaller", 4, &AsyncOpsWindow{MaxInvoked: 8, MaxPerformed: 1}, 4},
		{"requestor's is smaller", 4, &AsyncOpsWindow{MaxInvoked: 2, MaxPerformed: 1}, 2},
		{"requestor without a limit", 4, &AsyncOpsWindow{MaxInvoked: 0, MaxPerformed: 1}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(s *Server) { s.MaxOperations = tc.server })
			cfg := clientConfig()
			cfg.AsyncOps = tc.proposed
			c, err := Dial(context.Background(), ts.addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release(context.Background())
			if got := c.Association().Window(); got != tc.wantWindow {
				t.Fatalf("window %d, want %d", got, tc.wantWindow)
			}
		})
	}
}

// barrier lets n handlers through once all n are waiting in it at the same time.
type barrier struct {
	mu      sync.Mutex
	waiting int
	open    chan struct{}
}

func (b *barrier) wait(n int, timeout time.Duration) bool {
	b.mu.Lock()
	b.waiting++
	if b.waiting == n {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
		return true
	case <-time.After(timeout):
		return false
	}
}

// pipeline stores the data sets with StoreMany and returns the results in the order the
// responses came.
func pipeline(t *testing.T, c *Client, uids []string, data [][]byte) []StoreResult {
	t.Helper()
	var reqs []StoreRequest
	for i, uid := range uids {
		reqs = append(reqs, StoreRequest{SOPClassUID: ctImage, SOPInstanceUID: uid, TransferSyntaxUID: ExplicitVRLittleEndian,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data[i])), nil }})
	}
	var got []StoreResult
	if err := c.StoreMany(context.Background(), reqs, func(r StoreResult) { got = append(got, r) }); err != nil {
		t.Fatalf("store: %v", err)
	}
	return got
}

// With a window of 4 the server has four C-STOREs in its handler at once, and each one's
// response goes out when that one is done, not in the order they came.
func TestWindowPerformsStoresConcurrently(t *testing.T) {
	const n = 4
	b := &barrier{open: make(chan struct{})}
	var mu sync.Mutex
	received := map[string][]byte{}
	ts := startServer(t, func(s *Server) {
		s.MaxOperations = n
		mux := NewServeMux()
		mux.HandleFunc("", FieldCStoreRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
			rq := r.Command.(*CStoreRQ)
			body, err := io.ReadAll(r.Data)
			if err != nil {
				return
			}
			mu.Lock()
			received[rq.AffectedSOPInstanceUID] = body
			mu.Unlock()
			st := Status{Code: StatusSuccess}
			if !b.wait(n, 3*time.Second) {
				st = Status{Code: StatusProcessingFailure, ErrorComment: "performed one at a time"}
			}
			// The first request is answered last.
			time.Sleep(time.Duration(n-int(rq.MessageID)) * 20 * time.Millisecond)
			_ = w.Respond(&CStoreRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
				AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID, Status: st}, nil)
		})
		s.Handler = mux
	})
	cfg := clientConfig()
	cfg.MaxPDULength = 16 << 10
	cfg.AsyncOps = &AsyncOpsWindow{MaxInvoked: n, MaxPerformed: 1}
	c, err := Dial(context.Background(), ts.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Association().Window() != n {
		t.Fatalf("window %d, want %d", c.Association().Window(), n)
	}
	var uids []string
	var data [][]byte
	for i, size := range []int{0, 100, 300 << 10, 5000} { // one spans many PDUs
		uids = append(uids, fmt.Sprintf("1.2.3.%d", i+1))
		data = append(data, bytes.Repeat([]byte{byte(i + 1)}, size))
	}
	results := pipeline(t, c, uids, data)
	if len(results) != n {
		t.Fatalf("%d responses, want %d", len(results), n)
	}
	for i, r := range results {
		if r.Status.Code != StatusSuccess {
			t.Fatalf("%s: %v", uids[r.Index], r.Status)
		}
		if want := n - 1 - i; r.Index != want {
			t.Errorf("response %d answers request %d, want %d (the first, slowest, is answered last)", i, r.Index, want)
		}
	}
	for i, uid := range uids {
		if !bytes.Equal(received[uid], data[i]) {
			t.Errorf("%s: the handler read %d bytes, want the %d sent", uid, len(received[uid]), len(data[i]))
		}
	}
	if err := c.Release(context.Background()); err != nil {
		t.Fatalf("release: %v", err)
	}
}

// A requestor that asks for release while operations are outstanding gets their responses
// first, then the A-RELEASE-RP.
func TestWindowReleaseAfterResponses(t *testing.T) {
	const n = 3
	var mu sync.Mutex
	done := 0
	ts := startServer(t, func(s *Server) {
		s.MaxOperations = 8
		mux := NewServeMux()
		mux.HandleFunc("", FieldCStoreRQ, func(ctx context.Context, w ResponseWriter, r *Request) {
			rq := r.Command.(*CStoreRQ)
			if _, err := io.Copy(io.Discard, r.Data); err != nil {
				return
			}
			time.Sleep(150 * time.Millisecond)
			mu.Lock()
			done++
			mu.Unlock()
			_ = w.Respond(&CStoreRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
				AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID, Status: Status{Code: StatusSuccess}}, nil)
		})
		s.Handler = mux
	})
	cfg := clientConfig()
	cfg.AsyncOps = &AsyncOpsWindow{MaxInvoked: n, MaxPerformed: 1}
	c, err := Dial(context.Background(), ts.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Association()
	pc, _ := c.FindContext(ctImage, ExplicitVRLittleEndian)
	for i := range n {
		rq := &CStoreRQ{MessageID: uint16(i + 1), AffectedSOPClassUID: ctImage, AffectedSOPInstanceUID: fmt.Sprintf("1.2.3.%d", i+1)}
		if err := a.SendMessage(pc, rq, bytes.NewReader(make([]byte, 1000))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.fire(evt11, eventArgs{pdu: &ReleaseRQ{}}); err != nil {
		t.Fatal(err)
	}
	var pdata int
	for {
		e, _, err := a.readEvent(3 * time.Second)
		if err != nil {
			t.Fatalf("after %d P-DATA-TF: %v", pdata, err)
		}
		if e == evt10 {
			pdata++
			if _, err := io.CopyN(io.Discard, a.r, int64(a.pduLeft)); err != nil {
				t.Fatal(err)
			}
			a.pduLeft = 0
			continue
		}
		if e != evt13 {
			t.Fatalf("%s after %d P-DATA-TF, want A-RELEASE-RP", e, pdata)
		}
		break
	}
	a.closeTransport()
	if pdata != n {
		t.Fatalf("%d P-DATA-TF (one per response) before A-RELEASE-RP, want %d", pdata, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if done != n {
		t.Fatalf("%d handlers finished, want %d", done, n)
	}
}
