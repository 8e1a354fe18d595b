package console

import (
	"net/url"
	"testing"

	"github.com/rs/zerolog"
)

// FuzzParams feeds the decoders of the console's query strings and forms: whatever the input,
// they return a value or an error, and what they accept is within their bounds.
func FuzzParams(f *testing.F) {
	f.Add("PatientName=DOE*&StudyDate=20240101-20241231&ModalitiesInStudy=CT%5CMR")
	f.Add("state=discarded&channel=ct&id=1&id=2")
	f.Add("every=1h&state=completed&state=cancelled")
	f.Add("id=9223372036854775808&AccessionNumber=%00&StudyDate=-")
	states := []string{"available", "completed", "discarded"}
	channels := []string{"ct", "mr"}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if query, shown, err := parseSearch(q); err == nil {
			if len(query.Matches) > len(searchKeys) {
				t.Fatalf("%d matches from %d keys", len(query.Matches), len(searchKeys))
			}
			for k, v := range shown {
				if len(v) > maxValueLen {
					t.Fatalf("%s of %d bytes accepted", k, len(v))
				}
			}
		}
		if _, err := parseJobFilter(q, states, channels); err != nil {
			var br badRequest
			if !asBadRequest(err, &br) {
				t.Fatalf("job filter error is not a bad request: %v", err)
			}
		}
		if ids, err := parseIDs(q); err == nil {
			for _, id := range ids {
				if id < 1 {
					t.Fatalf("id %d accepted", id)
				}
			}
			if len(ids) > maxRetryIDs {
				t.Fatalf("%d ids accepted", len(ids))
			}
		}
		if st, err := parsePurge(q); err == nil && len(st) > len(finalStates) {
			t.Fatalf("purge states %v", st)
		}
		_, _ = parseBucket(q)
		_ = flash(q)
	})
}

func asBadRequest(err error, br *badRequest) bool {
	b, ok := err.(badRequest)
	*br = b
	return ok
}

// FuzzLogLine feeds the log ring lines as zerolog writes them, and anything else: each is kept
// as one bounded entry.
func FuzzLogLine(f *testing.F) {
	f.Add([]byte(`{"level":"warn","time":"2026-12-02T03:00:00Z","component":"pipeline","error":"refused","message":"delivery failed"}`))
	f.Add([]byte(`{"message":["not","a","string"],"time":7}`))
	f.Add([]byte("plain text\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		l := NewLogRing(2)
		if _, err := l.WriteLevel(zerolog.ErrorLevel, line); err != nil {
			t.Fatal(err)
		}
		e := l.Entries()
		if len(e) != 1 || len(e[0].Message)+len(e[0].Error)+len(e[0].Component) > 2*len(line)+maxLogLine {
			t.Fatalf("entries %d, message of %d bytes from a line of %d", len(e), len(e[0].Message), len(line))
		}
	})
}
