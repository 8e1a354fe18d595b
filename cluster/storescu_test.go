package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// storeResponses reads DCMTK storescu's verbose log and calls onResponse with each file sent and
// the status its C-STORE-RSP carried ("Success", "Warning: ...", "Refused: Out of Resources"...).
// A file whose response never came (the association broke) gets no call.
func storeResponses(r io.Reader, onResponse func(file, status string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	current := ""
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "I: Sending file: "); ok {
			current = f
			continue
		}
		if s, ok := strings.CutPrefix(line, "I: Received Store Response ("); ok && current != "" {
			onResponse(current, strings.TrimSuffix(s, ")"))
			current = ""
		}
	}
	return sc.Err()
}

// acknowledged says whether a C-STORE status means the node took the instance: Success, or a
// Warning (which PS3.4 counts as stored).
func acknowledged(status string) bool {
	return status == "Success" || strings.HasPrefix(status, "Warning")
}

func TestStoreResponses(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []string // file=status
	}{
		{"all stored", `I: Requesting Association
I: Association Accepted (Max Send PDV: 16372)
I: Sending file: a.dcm
I: Converting transfer syntax: Little Endian Explicit -> Little Endian Explicit
I: Sending Store Request (MsgID 1, SC)
I: Received Store Response (Success)
I: Sending file: b.dcm
I: Sending Store Request (MsgID 2, SC)
I: Received Store Response (Warning: Coercion of Data Elements)
I: Releasing Association
`, []string{"a.dcm=Success", "b.dcm=Warning: Coercion of Data Elements"}},
		{"refused then aborted", `I: Sending file: a.dcm
I: Received Store Response (Refused: Out of Resources)
I: Sending file: b.dcm
I: Sending Store Request (MsgID 2, SC)
E: Store Failed, file: b.dcm:
E: 0006:0317 Peer aborted Association (or never connected)
`, []string{"a.dcm=Refused: Out of Resources"}},
		{"no association", "F: Association Request Failed: 0006:031c TCP Initialization Error: Connection refused\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if err := storeResponses(strings.NewReader(tt.log), func(f, s string) { got = append(got, f+"="+s) }); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	for status, want := range map[string]bool{"Success": true, "Warning: Elements Discarded": true,
		"Refused: Out of Resources": false, "Error: Cannot understand": false, "Failed: Unable to process": false} {
		if acknowledged(status) != want {
			t.Errorf("acknowledged(%q) = %v, want %v", status, !want, want)
		}
	}
}

// sender sends files to a node with storescu as a modality does: one association per run, and
// whatever was not answered Success sent again in a new one, until every file was or the
// context ends. TCP_NODELAY=1: Debian's DCMTK keeps Nagle's algorithm on otherwise.
type sender struct {
	addr      string
	callingAE string
	log       io.Writer
	// onAck is called once for each file a node acknowledged (from the sender's goroutine).
	onAck func(file string)
	// runs counts the associations; refused the C-STORE responses that were not acknowledged,
	// by status.
	runs    int
	refused map[string]int
}

func (s *sender) send(ctx context.Context, files []string) error {
	pending := files
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %d of %d files not acknowledged after %d associations: %w", s.callingAE, len(pending), len(files), s.runs, err)
		}
		if s.runs > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		s.runs++
		acked := map[string]bool{}
		if err := s.run(ctx, pending, func(f, status string) {
			if acknowledged(status) {
				acked[f] = true
				s.onAck(f)
			} else {
				if s.refused == nil {
					s.refused = map[string]int{}
				}
				s.refused[status]++
			}
		}); err != nil {
			return err
		}
		var rest []string
		for _, f := range pending {
			if !acked[f] {
				rest = append(rest, f)
			}
		}
		pending = rest
	}
	return nil
}

// run is one storescu association; its exit status is not an error (a broken association is
// what the caller retries), a storescu that cannot be run is.
func (s *sender) run(ctx context.Context, files []string, onResponse func(file, status string)) error {
	bin, err := exec.LookPath("storescu")
	if err != nil {
		return fmt.Errorf("storescu not found: install Debian's dcmtk (scripts/deps.sh test does)")
	}
	host, port, _ := strings.Cut(s.addr, ":")
	args := append([]string{"-v", "-aet", s.callingAE, "-aec", "ESPNODE", "-to", "5", "-ta", "10", "-td", "60", host, port}, files...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	cmd.Stdout = io.Discard
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(pw, s.log)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start storescu: %w", err)
	}
	parsed := make(chan error, 1)
	go func() { parsed <- storeResponses(pr, onResponse); _, _ = io.Copy(io.Discard, pr) }()
	_ = cmd.Wait()
	pw.Close()
	return <-parsed
}

// startSenders starts one sender per file list (one association each at a time, as that many
// modalities would) and returns what waits for them all; ctx bounds their retries. onAck is
// called from the senders' goroutines.
func startSenders(ctx context.Context, addr string, lists [][]string, log io.Writer, onAck func(string)) (wait func() ([]*sender, []error)) {
	senders := make([]*sender, len(lists))
	errs := make(chan error, len(lists))
	for i, files := range lists {
		senders[i] = &sender{addr: addr, callingAE: fmt.Sprintf("MODALITY%d", i+1), log: log, onAck: onAck}
		go func() { errs <- senders[i].send(ctx, files) }()
	}
	return func() ([]*sender, []error) {
		var out []error
		for range lists {
			if err := <-errs; err != nil {
				out = append(out, err)
			}
		}
		return senders, out
	}
}
