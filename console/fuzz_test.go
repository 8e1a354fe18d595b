package console

import (
	"net/url"
	"testing"
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
