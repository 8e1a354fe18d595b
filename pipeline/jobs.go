package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/espnode/espnode/seg/segment"
)

// Queues and job kinds. Kinds are stored with every job: never rename one.
const (
	QueueSegment = "segment"
	QueueDeliver = "deliver"

	KindSegment       = "espnode.segment"
	KindSegmentSeries = "espnode.segment_series"
	KindDeliver       = "espnode.deliver"
)

// SegmentArgs is a job that segments one instance.
type SegmentArgs struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	Channel        string `json:"channel"`
	// CallingAE sent the instance: the reply-to-sender destination.
	CallingAE string `json:"calling_ae,omitempty"`
}

// Kind implements river.JobArgs.
func (SegmentArgs) Kind() string { return KindSegment }

// SeriesArgs is a job that segments the instances of a series received so
// far, once none has arrived for the idle window.
type SeriesArgs struct {
	SeriesInstanceUID string `json:"series_instance_uid" river:"unique"`
	Channel           string `json:"channel" river:"unique"`
	CallingAE         string `json:"calling_ae,omitempty"`
}

// Kind implements river.JobArgs.
func (SeriesArgs) Kind() string { return KindSegmentSeries }

// DeliverArgs is a job that sends one SEG to one destination.
type DeliverArgs struct {
	SEGInstanceUID string `json:"seg_instance_uid" river:"unique"`
	// Source is the source SOP Instance UID (instance mode) or Series
	// Instance UID (series mode), for people reading the job list.
	Source   string `json:"source"`
	Channel  string `json:"channel"`
	AETitle  string `json:"ae_title" river:"unique"`
	Host     string `json:"host" river:"unique"`
	Port     int    `json:"port" river:"unique"`
	Revision string `json:"revision" river:"unique"`
	// ReceivedAt is when the last source instance was stored (Unix
	// nanoseconds), the start of the end-to-end latency.
	ReceivedAt int64 `json:"received_at"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return KindDeliver }

// Destination returns the destination as AET@HOST:PORT.
func (a DeliverArgs) Destination() string {
	return Peer{AETitle: a.AETitle, Host: a.Host, Port: a.Port}.String()
}

// SEGInstanceUID is the SOP Instance UID of the SEG that the model (name
// and version) makes on a channel from a source (a SOP Instance UID, or a
// Series Instance UID in series mode). Being a function of these alone, a
// rerun of a job replaces its SEG instead of adding another, and a
// destination that gets it twice holds it once.
func SEGInstanceUID(source, channel, model, version string) string {
	return segment.DerivedUID("espnode-seg", source, channel, model, version)
}

// SEGSeriesUID is the Series Instance UID of the SEGs the model makes for the
// instances of one source series, so that they form one series.
func SEGSeriesUID(sourceSeries, channel, model, version string) string {
	return segment.DerivedUID("espnode-seg-series", sourceSeries, channel, model, version)
}

// revision names what a SEG was made from: a rerun over the same sources
// makes the same revision, which its delivery is unique by; a series SEG
// remade with a late instance is a new revision and is delivered again.
func revision(sources []string) string {
	s := slices.Clone(sources)
	slices.Sort(s)
	h := sha256.Sum256([]byte(strings.Join(s, "\x00")))
	return hex.EncodeToString(h[:8])
}

// Backoff is an exponential backoff with full jitter over its upper half:
// the wait before attempt n+1 is d/2 + rand(d/2) with d = Initial * 2^(n-1)
// capped at Max. The jitter spreads the retries of many jobs whose
// destination came back.
type Backoff struct {
	Initial, Max time.Duration
}

// Delay returns the wait after the attempt-th failure (1-based).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryPolicy applies a Backoff per job kind (river.ClientRetryPolicy).
type retryPolicy struct {
	segment, deliver Backoff
}

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	b := p.deliver
	if job.Kind != KindDeliver {
		b = p.segment
	}
	return time.Now().Add(b.Delay(max(job.Attempt, 1)))
}

// JobStates are River's job states in the order `espnode jobs list` shows
// them. discarded is the dead-letter state: attempts exhausted.
var jobStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
	rivertype.JobStateCancelled, rivertype.JobStatePending,
}

// JobStates returns the job states.
func JobStates() []rivertype.JobState { return slices.Clone(jobStates) }
