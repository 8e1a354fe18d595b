// Package console is the operator console: server-rendered pages under /console/ on the node's
// HTTP address that show what arrived, what was segmented and what failed (dashboard, studies,
// instances with their mask drawn by the node, channels over time, jobs, configuration, recent
// errors), and the actions that fix it (retry and purge jobs). Every asset is embedded. Actions
// are POSTs with CSRF protection (csrf.go); reading a page changes nothing. The console knows
// neither the pipeline nor DICOMweb: it takes small interfaces, and draws images through the
// DICOMweb handler it is given (overlay=seg), so that the node has one renderer.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
)

// Root is the path the console is served under.
const Root = "/console/"

// Index is what the study, series and instance pages read. *store.Store implements it.
type Index interface {
	Find(ctx context.Context, q store.Query, fn func(store.Record) error) error
	Get(ctx context.Context, sopInstanceUID string) (store.Instance, error)
}

// Job is one job of the queue as the jobs page shows it.
type Job struct {
	ID          int64
	Kind        string
	State       string
	Channel     string
	Attempt     int
	MaxAttempts int
	Args        string
	CreatedAt   time.Time
	ScheduledAt time.Time
	LastError   string
}

// JobCount is the number of jobs of a kind in a state.
type JobCount struct {
	Kind, State string
	N           int
}

// Jobs lists and acts on the job queue (the operations of `espnode jobs`).
type Jobs interface {
	// List returns up to limit jobs, newest first, in the states and of the kinds given (all
	// when empty).
	List(ctx context.Context, states, kinds []string, limit int) ([]Job, error)
	Counts(ctx context.Context) ([]JobCount, error)
	Retry(ctx context.Context, ids []int64) error
	// Purge deletes the jobs in the given final states and returns how many it deleted.
	Purge(ctx context.Context, states []string) (int, error)
}

// SEG is one SEG the node made, as the activity recorded it.
type SEG struct {
	At             time.Time
	SEGInstanceUID string
	Sources        []string
	Channel        string
	Provider       string
	Model          string
	Version        string
	Frames         int
	Foreground     float64
	Inference      time.Duration
}

// Destination is what the last deliveries to one destination did.
type Destination struct {
	Name                     string
	LastSuccess, LastErrorAt time.Time
	LastError                string
}

// Activity is what the pipeline keeps in memory since the node started.
type Activity interface {
	PerMinute(now time.Time, n int) []int
	SEGs() []SEG
	Destinations() []Destination
}

// Options configure a Server.
type Options struct {
	Index    Index
	Jobs     Jobs
	Activity Activity
	// Destinations are the configured destinations (AET@HOST:PORT), listed even before a
	// delivery was tried.
	Destinations []string
	// JobStates are the queue's job states, in the order the console lists them.
	JobStates []string
	// Channels are the model's channels, in the catalogue's order.
	Channels []string
	// Provider is the configured execution provider, shown until a SEG says which one ran.
	Provider string
	// Ready reports whether the node takes work (nil) or why not.
	Ready func() error
	// DataDir is the folder whose free space the dashboard shows.
	DataDir string
	// Config is the effective configuration as YAML, secrets already masked.
	Config []byte
	// Log holds the recent warnings and errors; nil shows none.
	Log *LogRing
	// Render is the DICOMweb handler that renders instances (…/rendered?overlay=seg) under
	// DICOMwebRoot; nil: no images.
	Render       http.Handler
	DICOMwebRoot string
	// ViewerURL is where the OHIF viewer is served ("http://host:port"); "" gives no link.
	ViewerURL string
	// Version is the node's version string.
	Version string
	Logger  zerolog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server is the console's http.Handler, for the paths under Root.
type Server struct {
	opts  Options
	pages map[string]*template.Template
	mux   *http.ServeMux
	start time.Time
}

// New returns the console of opts.
func New(opts Options) (*Server, error) {
	if opts.Ready == nil {
		opts.Ready = func() error { return nil }
	}
	opts.DICOMwebRoot = "/" + strings.Trim(opts.DICOMwebRoot, "/")
	opts.ViewerURL = strings.TrimRight(opts.ViewerURL, "/")
	s := &Server{opts: opts, pages: map[string]*template.Template{}, mux: http.NewServeMux(), start: time.Now()}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		s.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	routes := []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET /console/{$}", s.dashboard},
		{"GET /console/studies", s.studies},
		{"GET /console/studies/{study}", s.series},
		{"GET /console/studies/{study}/series/{series}", s.instances},
		{"GET /console/instances/{instance}", s.instance},
		{"GET /console/instances/{instance}/image.png", s.image},
		{"GET /console/channels", s.channels},
		{"GET /console/jobs", s.jobs},
		{"POST /console/jobs/retry", s.retry},
		{"POST /console/jobs/purge", s.purge},
		{"GET /console/config", s.config},
		{"GET /console/log", s.log},
	}
	for _, r := range routes {
		s.mux.HandleFunc(r.pattern, r.h)
	}
	s.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// The console's pages load only what the node serves, and no other site may frame them.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if r.Method == http.MethodPost {
		if err := checkCSRF(r); err != nil {
			http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	CSRF    string
	Version string
	Now     time.Time
	Data    any
	Flash   string
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	t, ok := s.pages[name]
	if !ok {
		s.fail(w, r, fmt.Errorf("console: no page %s", name))
		return
	}
	p := page{Title: title, Nav: name, CSRF: csrfToken(w, r), Version: s.opts.Version, Now: time.Now(), Data: data,
		Flash: flash(r.URL.Query())}
	var buf strings.Builder
	if err := t.Execute(&buf, p); err != nil {
		s.fail(w, r, fmt.Errorf("console: page %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(buf.String()))
}

// flash is the message of the action a page follows, from the codes only this server writes.
func flash(q url.Values) string {
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		return ""
	}
	switch q.Get("done") {
	case "retried":
		return fmt.Sprintf("%d job(s) made available again", n)
	case "purged":
		return fmt.Sprintf("%d job(s) purged", n)
	}
	return ""
}

// badRequest is an error of the request, answered 400.
type badRequest struct{ error }

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var br badRequest
	switch {
	case errors.As(err, &br), errors.Is(err, store.ErrInvalidUID):
		status = http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, context.Canceled):
		return
	}
	if status >= 500 {
		s.opts.Logger.Warn().Err(err).Str("path", r.URL.Path).Msg("console request failed")
	}
	http.Error(w, err.Error(), status)
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) },
	"ms":  func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) },
	"bytes": func(n uint64) string {
		const unit = 1024
		if n < unit {
			return fmt.Sprintf("%d B", n)
		}
		div, exp := uint64(unit), 0
		for m := n / unit; m >= unit; m /= unit {
			div *= unit
			exp++
		}
		return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
	},
	"join": strings.Join,
	// dur writes a bucket width as people do: 10m, 1h.
	"dur": func(d time.Duration) string {
		s := d.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	},
}
