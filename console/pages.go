package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// errEnough stops a Find that has found as many records as a page shows.
var errEnough = errors.New("enough records")

// bar is one bar of a server-drawn SVG chart.
type bar struct {
	X, Y, W, H float64
	Label      string
}

// bars scales values to bars in a chart of width w and height h.
func bars(values []float64, labels []string, w, h float64) []bar {
	top := slices.Max(append([]float64{0}, values...))
	out := make([]bar, len(values))
	bw := w / float64(max(len(values), 1))
	for i, v := range values {
		bh := 0.0
		if top > 0 {
			bh = h * v / top
		}
		out[i] = bar{X: float64(i) * bw, Y: h - bh, W: max(bw-1, 1), H: bh, Label: labels[i]}
	}
	return out
}

type channelStat struct {
	Channel         string
	N               int
	MeanForeground  float64
	MeanInference   time.Duration
	LastAt          time.Time
	Provider, Model string
	Version         string
}

type dashboardData struct {
	Ready        string
	PerMinute    []bar
	LastMinute   int
	LastHour     int
	Queue        int
	DeadLetters  int
	States       []JobCount // summed over kinds, in the queue's order
	ByKind       []JobCount // non-zero counts
	Channels     []channelStat
	Provider     string
	Model        string
	Version      string
	Destinations []Destination
	DiskFree     uint64
	DiskTotal    uint64
	DiskErr      string
	Uptime       time.Duration
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d := dashboardData{Provider: s.opts.Provider, Uptime: time.Since(s.start).Round(time.Second)}
	if err := s.opts.Ready(); err != nil {
		d.Ready = err.Error()
	}
	now := time.Now()
	per := s.opts.Activity.PerMinute(now, 60)
	values := make([]float64, len(per))
	labels := make([]string, len(per))
	for i, n := range per {
		values[i] = float64(n)
		labels[i] = fmt.Sprintf("%s: %d", now.Add(time.Duration(i-len(per)+1)*time.Minute).Format("15:04"), n)
		d.LastHour += n
	}
	d.LastMinute = per[len(per)-1]
	d.PerMinute = bars(values, labels, 600, 80)

	counts, err := s.opts.Jobs.Counts(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	byState := map[string]int{}
	for _, c := range counts {
		byState[c.State] += c.N
		if c.N > 0 {
			d.ByKind = append(d.ByKind, c)
		}
	}
	for _, st := range s.opts.JobStates {
		d.States = append(d.States, JobCount{State: st, N: byState[st]})
	}
	d.Queue = byState["available"] + byState["scheduled"] + byState["retryable"] + byState["running"] + byState["pending"]
	d.DeadLetters = byState["discarded"]

	d.Channels = channelStats(s.opts.Activity.SEGs(), s.opts.Channels)
	for _, c := range d.Channels {
		if c.Provider != "" {
			d.Provider, d.Model, d.Version = c.Provider, c.Model, c.Version
		}
	}
	d.Destinations = s.destinations()
	if d.DiskFree, d.DiskTotal, err = diskFree(s.opts.DataDir); err != nil {
		d.DiskErr = err.Error()
	}
	s.render(w, r, "dashboard", "Dashboard", d)
}

// channelStats sums the SEGs by channel: every configured channel, then any other seen.
func channelStats(segs []SEG, channels []string) []channelStat {
	idx := map[string]int{}
	var out []channelStat
	for _, c := range channels {
		idx[c] = len(out)
		out = append(out, channelStat{Channel: c})
	}
	var infer []time.Duration
	for _, sg := range segs {
		i, ok := idx[sg.Channel]
		if !ok {
			i = len(out)
			idx[sg.Channel] = i
			out = append(out, channelStat{Channel: sg.Channel})
		}
		for len(infer) < len(out) {
			infer = append(infer, 0)
		}
		c := &out[i]
		c.N++
		c.MeanForeground += sg.Foreground
		infer[i] += sg.Inference
		if !sg.At.Before(c.LastAt) {
			c.LastAt, c.Provider, c.Model, c.Version = sg.At, sg.Provider, sg.Model, sg.Version
		}
	}
	for i := range out {
		if out[i].N > 0 {
			out[i].MeanForeground /= float64(out[i].N)
			out[i].MeanInference = infer[i] / time.Duration(out[i].N)
		}
	}
	return out
}

// destinations merges the configured destinations with those delivered to.
func (s *Server) destinations() []Destination {
	seen := s.opts.Activity.Destinations()
	out := make([]Destination, 0, len(s.opts.Destinations)+len(seen))
	for _, name := range s.opts.Destinations {
		out = append(out, Destination{Name: name})
	}
	for _, d := range seen {
		if i := slices.IndexFunc(out, func(x Destination) bool { return x.Name == d.Name }); i >= 0 {
			out[i] = d
			continue
		}
		out = append(out, d)
	}
	return out
}

type studiesData struct {
	Keys    []string
	Values  map[string]string
	Records []store.Record
	More    bool
}

func (s *Server) studies(w http.ResponseWriter, r *http.Request) {
	q, shown, err := parseSearch(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := studiesData{Keys: searchKeys, Values: shown}
	d.Records, d.More, err = s.find(r, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "studies", "Studies", d)
}

// find runs a query, keeping at most maxResults records.
func (s *Server) find(r *http.Request, q store.Query) ([]store.Record, bool, error) {
	var out []store.Record
	more := false
	err := s.opts.Index.Find(r.Context(), q, func(rec store.Record) error {
		if len(out) == maxResults {
			more = true
			return errEnough
		}
		out = append(out, rec)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, false, err
	}
	return out, more, nil
}

// pathUIDs checks the UIDs of the path before they reach the index.
func pathUIDs(r *http.Request, names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		v := r.PathValue(n)
		if err := dcm.CheckUID(v); err != nil {
			return nil, badRequest{fmt.Errorf("%s UID %.70q: %w", n, v, err)}
		}
		out[i] = v
	}
	return out, nil
}

type seriesData struct {
	Study     string
	Records   []store.Record
	More      bool
	ViewerURL string
}

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	u, err := pathUIDs(r, "study")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := seriesData{Study: u[0], ViewerURL: s.viewerURL(u[0])}
	d.Records, d.More, err = s.find(r, store.Query{Level: store.SeriesLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: u}}})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "series", "Series", d)
}

func (s *Server) viewerURL(study string) string {
	if s.opts.ViewerURL == "" {
		return ""
	}
	return s.opts.ViewerURL + "/viewer?StudyInstanceUIDs=" + url.QueryEscape(study)
}

type instancesData struct {
	Study, Series string
	Records       []store.Record
	More          bool
}

func (s *Server) instances(w http.ResponseWriter, r *http.Request) {
	u, err := pathUIDs(r, "study", "series")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := instancesData{Study: u[0], Series: u[1]}
	d.Records, d.More, err = s.find(r, store.Query{Level: store.ImageLevel, Matches: []store.Match{
		{Tag: dcm.StudyInstanceUID, Values: u[:1]}, {Tag: dcm.SeriesInstanceUID, Values: u[1:]}}})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "instances", "Instances", d)
}

type instanceData struct {
	Instance  store.Instance
	SEG       *SEG // the latest SEG made of it since the node started
	SEGs      []store.Record
	Images    bool
	ViewerURL string
}

func (s *Server) instance(w http.ResponseWriter, r *http.Request) {
	u, err := pathUIDs(r, "instance")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in, err := s.opts.Index.Get(r.Context(), u[0])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := instanceData{Instance: in, Images: s.opts.Render != nil, ViewerURL: s.viewerURL(in.StudyInstanceUID)}
	segs := s.opts.Activity.SEGs()
	for i := len(segs) - 1; i >= 0; i-- {
		if slices.Contains(segs[i].Sources, in.SOPInstanceUID) || segs[i].SEGInstanceUID == in.SOPInstanceUID {
			d.SEG = &segs[i]
			break
		}
	}
	d.SEGs, _, err = s.find(r, store.Query{Level: store.ImageLevel, Matches: []store.Match{
		{Tag: dcm.StudyInstanceUID, Values: []string{in.StudyInstanceUID}}, {Tag: dcm.Modality, Values: []string{"SEG"}}}})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "instance", "Instance", d)
}

// image answers an instance's first frame as PNG, with its SEGs drawn over it when
// overlay=seg, from the DICOMweb renderer.
func (s *Server) image(w http.ResponseWriter, r *http.Request) {
	if s.opts.Render == nil {
		http.Error(w, "images need DICOMweb (http.dicomweb: true)", http.StatusNotFound)
		return
	}
	u, err := pathUIDs(r, "instance")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	overlay := r.URL.Query().Get("overlay")
	if overlay != "" && overlay != "seg" {
		s.fail(w, r, badRequest{fmt.Errorf("overlay=%.40q: want seg or nothing", overlay)})
		return
	}
	in, err := s.opts.Index.Get(r.Context(), u[0])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rr := r.Clone(r.Context())
	rr.URL = &url.URL{Path: s.opts.DICOMwebRoot + "/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID +
		"/instances/" + in.SOPInstanceUID + "/rendered"}
	if overlay != "" {
		rr.URL.RawQuery = "overlay=seg"
	}
	rr.RequestURI = rr.URL.RequestURI()
	rr.Header.Set("Accept", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	s.opts.Render.ServeHTTP(w, rr)
}

type channelSeries struct {
	Channel string
	Buckets []channelBucket
	Count   []bar
	FG      []bar
}

type channelBucket struct {
	Start          time.Time
	N              int
	MeanForeground float64
}

type channelsData struct {
	Every   time.Duration
	Choices []time.Duration
	Series  []channelSeries
}

// maxBuckets is how many of the latest buckets the channels page shows.
const maxBuckets = 48

func (s *Server) channels(w http.ResponseWriter, r *http.Request) {
	every, err := parseBucket(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := channelsData{Every: every, Choices: bucketChoices}
	d.Series = channelBuckets(s.opts.Activity.SEGs(), s.opts.Channels, every, time.Now())
	s.render(w, r, "channels", "Channels", d)
}

// channelBuckets groups the SEGs of each channel into buckets of width every, the latest
// maxBuckets up to now.
func channelBuckets(segs []SEG, channels []string, every time.Duration, now time.Time) []channelSeries {
	last := now.Truncate(every)
	first := last.Add(-every * (maxBuckets - 1))
	byChannel := map[string][]channelBucket{}
	order := slices.Clone(channels)
	for _, sg := range segs {
		if sg.At.Before(first) || sg.At.After(now) {
			continue
		}
		b, ok := byChannel[sg.Channel]
		if !ok {
			b = make([]channelBucket, maxBuckets)
			for i := range b {
				b[i].Start = first.Add(every * time.Duration(i))
			}
			byChannel[sg.Channel] = b
			if !slices.Contains(order, sg.Channel) {
				order = append(order, sg.Channel)
			}
		}
		i := int(sg.At.Sub(first) / every)
		b[min(i, maxBuckets-1)].N++
		b[min(i, maxBuckets-1)].MeanForeground += sg.Foreground
	}
	var out []channelSeries
	for _, c := range order {
		b := byChannel[c]
		cs := channelSeries{Channel: c}
		if b == nil {
			out = append(out, cs)
			continue
		}
		counts := make([]float64, len(b))
		fgs := make([]float64, len(b))
		lc := make([]string, len(b))
		lf := make([]string, len(b))
		for i := range b {
			if b[i].N > 0 {
				b[i].MeanForeground /= float64(b[i].N)
			}
			counts[i], fgs[i] = float64(b[i].N), b[i].MeanForeground
			ts := b[i].Start.Local().Format("01-02 15:04")
			lc[i] = fmt.Sprintf("%s: %d SEGs", ts, b[i].N)
			lf[i] = fmt.Sprintf("%s: mean foreground %.2f %%", ts, 100*b[i].MeanForeground)
		}
		cs.Count = bars(counts, lc, 480, 60)
		cs.FG = bars(fgs, lf, 480, 60)
		for i := range b {
			if b[i].N > 0 {
				cs.Buckets = append(cs.Buckets, b[i])
			}
		}
		out = append(out, cs)
	}
	return out
}

type jobsData struct {
	Filter   jobFilter
	States   []string
	Final    []string
	Channels []string
	Jobs     []Job
	More     bool
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request) {
	f, err := parseJobFilter(r.URL.Query(), s.opts.JobStates, s.opts.Channels)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var states []string
	if f.State != "" {
		states = []string{f.State}
	}
	jobs, err := s.opts.Jobs.List(r.Context(), states, nil, maxJobsShown)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := jobsData{Filter: f, States: s.opts.JobStates, Final: finalStates, Channels: s.opts.Channels, More: len(jobs) == maxJobsShown}
	for _, j := range jobs {
		if f.Channel == "" || j.Channel == f.Channel {
			d.Jobs = append(d.Jobs, j)
		}
	}
	s.render(w, r, "jobs", "Jobs", d)
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	ids, err := parseIDs(r.PostForm)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.opts.Jobs.Retry(r.Context(), ids); err != nil {
		s.fail(w, r, err)
		return
	}
	s.opts.Logger.Info().Ints64("jobs", ids).Msg("console: jobs retried")
	s.backToJobs(w, r, "retried", len(ids))
}

func (s *Server) purge(w http.ResponseWriter, r *http.Request) {
	states, err := parsePurge(r.PostForm)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.opts.Jobs.Purge(r.Context(), states)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.opts.Logger.Info().Strs("states", states).Int("jobs", n).Msg("console: jobs purged")
	s.backToJobs(w, r, "purged", n)
}

// backToJobs answers an action with the jobs page (POST, redirect, GET), keeping its filter.
func (s *Server) backToJobs(w http.ResponseWriter, r *http.Request, done string, n int) {
	q := url.Values{"done": {done}, "n": {strconv.Itoa(n)}}
	if f, err := parseJobFilter(url.Values{"state": {r.PostForm.Get("filter_state")}, "channel": {r.PostForm.Get("filter_channel")}},
		s.opts.JobStates, s.opts.Channels); err == nil {
		if f.State != "" {
			q.Set("state", f.State)
		}
		if f.Channel != "" {
			q.Set("channel", f.Channel)
		}
	}
	http.Redirect(w, r, Root+"jobs?"+q.Encode(), http.StatusSeeOther)
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "config", "Configuration", string(s.opts.Config))
}

func (s *Server) log(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "log", "Log", s.opts.Log.Entries())
}
