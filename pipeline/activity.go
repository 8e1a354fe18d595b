package pipeline

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/espnode/espnode/seg/segment"
)

// Activity is what the operator console shows that Prometheus counters cannot answer: instances
// received per minute over the last hour, the latest SEGs with their foreground fraction and
// inference time, and each destination's last success and last error. It lives in memory and
// is bounded; a restart empties it (the queue and the index keep the durable state).
type Activity struct {
	mu      sync.Mutex
	minutes [activityMinutes]minuteCount
	segs    []SEGRecord // ring of the latest activitySEGs
	next    int         // where the ring writes next once full
	dests   map[string]DestinationStatus
}

// Bounds of Activity.
const (
	activityMinutes = 60
	activitySEGs    = 4096
	maxErrorText    = 1024
)

type minuteCount struct {
	minute int64 // Unix minute the count is for
	n      int
}

// SEGRecord is one SEG the pipeline stored.
type SEGRecord struct {
	At             time.Time
	SEGInstanceUID string
	// Sources are the SOP Instance UIDs the SEG was made from.
	Sources  []string
	Channel  string
	Provider string
	Model    string
	Version  string
	Frames   int
	// Foreground is the fraction of the segmented pixels inside the mask (0..1).
	Foreground float64
	Inference  time.Duration
}

// DestinationStatus is what the last deliveries to one destination (AET@HOST:PORT) did.
type DestinationStatus struct {
	Destination string
	LastSuccess time.Time
	LastErrorAt time.Time
	LastError   string
}

// NewActivity returns an empty Activity.
func NewActivity() *Activity { return &Activity{dests: map[string]DestinationStatus{}} }

// Received counts an instance stored at t.
func (a *Activity) Received(t time.Time) {
	m := t.Unix() / 60
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &a.minutes[m%activityMinutes]
	if c.minute != m {
		*c = minuteCount{minute: m}
	}
	c.n++
}

// PerMinute returns the instances received in each of the last n minutes (n at most 60) up to
// now, oldest first; the last is the current, partial, minute.
func (a *Activity) PerMinute(now time.Time, n int) []int {
	n = min(max(n, 1), activityMinutes)
	m := now.Unix() / 60
	out := make([]int, n)
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range n {
		want := m - int64(n-1-i)
		if c := a.minutes[((want%activityMinutes)+activityMinutes)%activityMinutes]; c.minute == want {
			out[i] = c.n
		}
	}
	return out
}

// Segmented records a stored SEG, dropping the oldest record once activitySEGs are kept.
func (a *Activity) Segmented(r SEGRecord) {
	r.Sources = slices.Clone(r.Sources)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.segs) < activitySEGs {
		a.segs = append(a.segs, r)
		return
	}
	a.segs[a.next] = r
	a.next = (a.next + 1) % activitySEGs
}

// SEGs returns the records kept, oldest first.
func (a *Activity) SEGs() []SEGRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]SEGRecord, 0, len(a.segs))
	out = append(out, a.segs[a.next:]...)
	return append(out, a.segs[:a.next]...)
}

// Delivered records the outcome of a delivery to dest: err nil is a success.
func (a *Activity) Delivered(dest string, at time.Time, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.dests[dest]
	s.Destination = dest
	if err == nil {
		s.LastSuccess = at
	} else {
		msg := err.Error()
		if len(msg) > maxErrorText {
			msg = msg[:maxErrorText] + "..."
		}
		s.LastErrorAt, s.LastError = at, msg
	}
	a.dests[dest] = s
}

// Destinations returns the status of every destination delivered to, by name.
func (a *Activity) Destinations() []DestinationStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]DestinationStatus, 0, len(a.dests))
	for _, s := range a.dests {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y DestinationStatus) int { return strings.Compare(x.Destination, y.Destination) })
	return out
}

// foregroundFraction is the share of the sources' pixels (every frame) that fg pixels make.
func foregroundFraction(fg int, pixels int64) float64 {
	if pixels <= 0 {
		return 0
	}
	return min(float64(fg)/float64(pixels), 1)
}

// recordSEG adds a finished segmentation to the activity.
func (p *Pipeline) recordSEG(segUID string, sources []string, s segmentation, res *segment.Result, model, version string) {
	var pixels int64
	for _, in := range s.instances {
		pixels += int64(in.Rows) * int64(in.Columns) * int64(max(in.NumberOfFrames, 1))
	}
	p.metrics.Activity.Segmented(SEGRecord{
		At: time.Now(), SEGInstanceUID: segUID, Sources: sources, Channel: s.channel,
		Provider: res.Provider, Model: model, Version: version, Frames: res.Frames,
		Foreground: foregroundFraction(res.Foreground, pixels), Inference: res.Timing.Infer,
	})
}
