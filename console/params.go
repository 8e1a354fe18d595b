package console

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// Bounds on what a request may ask.
const (
	maxValueLen  = 256
	maxRetryIDs  = 1000
	maxResults   = 500
	maxJobsShown = 500
)

// searchKeys are the study search form's fields, in the form's order: keywords the index
// matches at the study level, matched as C-FIND and QIDO-RS match them (store.MatchElement).
var searchKeys = []string{"PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyDescription", "ModalitiesInStudy"}

// parseSearch reads the study search form into a query and the values to show back.
func parseSearch(q url.Values) (store.Query, map[string]string, error) {
	query := store.Query{Level: store.StudyLevel}
	shown := map[string]string{}
	for k := range q {
		if !slices.Contains(searchKeys, k) {
			return query, nil, badRequest{fmt.Errorf("search: %q is not one of %s", k, strings.Join(searchKeys, ", "))}
		}
	}
	for _, k := range searchKeys {
		v := strings.TrimSpace(q.Get(k))
		if v == "" {
			continue
		}
		if len(v) > maxValueLen {
			return query, nil, badRequest{fmt.Errorf("search: %s is longer than %d bytes", k, maxValueLen)}
		}
		shown[k] = v
		tag, ok := dcm.TagByName(k)
		if !ok || !store.Matchable(tag, store.StudyLevel) {
			return query, nil, fmt.Errorf("search: %s is not a study key of the index", k)
		}
		if m, ok := store.MatchElement(dcm.Element{Tag: tag, VR: dcm.VROf(tag), Value: []byte(v)}); ok {
			query.Matches = append(query.Matches, m)
		}
	}
	return query, shown, nil
}

// finalStates are those Purge deletes; the queue refuses any other.
var finalStates = []string{"completed", "discarded", "cancelled"}

// jobFilter is the jobs page's filter.
type jobFilter struct {
	State, Channel string
}

func parseJobFilter(q url.Values, states, channels []string) (jobFilter, error) {
	f := jobFilter{State: q.Get("state"), Channel: q.Get("channel")}
	for k := range q {
		if k != "state" && k != "channel" && k != "done" && k != "n" {
			return f, badRequest{fmt.Errorf("jobs: unknown parameter %q", k)}
		}
	}
	if f.State != "" && !slices.Contains(states, f.State) {
		return f, badRequest{fmt.Errorf("jobs: state %q is not one of %s", f.State, strings.Join(states, ", "))}
	}
	if f.Channel != "" && !slices.Contains(channels, f.Channel) {
		return f, badRequest{fmt.Errorf("jobs: channel %q is not one of %s", f.Channel, strings.Join(channels, ", "))}
	}
	return f, nil
}

// parseIDs reads the job IDs of a retry form.
func parseIDs(form url.Values) ([]int64, error) {
	vals := form["id"]
	if len(vals) == 0 {
		return nil, badRequest{fmt.Errorf("retry: no job id")}
	}
	if len(vals) > maxRetryIDs {
		return nil, badRequest{fmt.Errorf("retry: %d jobs at once, at most %d", len(vals), maxRetryIDs)}
	}
	ids := make([]int64, 0, len(vals))
	for _, v := range vals {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, badRequest{fmt.Errorf("retry: job id %.40q is not a positive integer", v)}
		}
		ids = append(ids, n)
	}
	return ids, nil
}

// parsePurge reads the states of a purge form.
func parsePurge(form url.Values) ([]string, error) {
	vals := form["state"]
	if len(vals) == 0 {
		return nil, badRequest{fmt.Errorf("purge: no state")}
	}
	var states []string
	for _, v := range vals {
		if !slices.Contains(finalStates, v) {
			return nil, badRequest{fmt.Errorf("purge: %.40q is not a final state (%s)", v, strings.Join(finalStates, ", "))}
		}
		if !slices.Contains(states, v) {
			states = append(states, v)
		}
	}
	return states, nil
}

// bucketChoices are the widths the channels page groups SEGs by.
var bucketChoices = []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour}

func parseBucket(q url.Values) (time.Duration, error) {
	v := q.Get("every")
	if v == "" {
		return 10 * time.Minute, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || !slices.Contains(bucketChoices, d) {
		return 0, badRequest{fmt.Errorf("channels: every=%.40q: want 1m, 5m, 10m, 1h or 24h", v)}
	}
	return d, nil
}
