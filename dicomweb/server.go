// Package dicomweb serves DICOMweb (PS3.18) over the node's store: QIDO-RS (search), WADO-RS
// (retrieve: instances, metadata, frames, bulk data, rendered images with the node's SEG drawn
// over them) and STOW-RS (store, through the same durable path as a C-STORE). It takes small
// interfaces, so it knows neither the pipeline nor the DICOM services: a Storer that stores an
// instance durably (the pipeline, which also creates its job) and an Archive to read (the
// store). Every DICOM object it reads or writes goes through dcm. See docs/CONFORMANCE.md.
package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// Storer keeps a received instance: Put returns once it is durable and indexed, as C-STORE
// Success requires. *pipeline.Pipeline implements it (and creates the instance's job in the same
// transaction); *store.Store does without jobs.
type Storer interface {
	Put(ctx context.Context, req store.PutRequest) (store.Instance, error)
}

// Archive is what searching and retrieving read. *store.Store implements it.
type Archive interface {
	Find(ctx context.Context, q store.Query, fn func(store.Record) error) error
	Get(ctx context.Context, sopInstanceUID string) (store.Instance, error)
	// OpenDataSetAt returns an instance's data set (no file meta) from byte offset on, with its
	// index record.
	OpenDataSetAt(ctx context.Context, sopInstanceUID string, offset int64) (io.ReadCloser, store.Instance, error)
}

// Options configure the server. Zero values take the defaults.
type Options struct {
	// Root is the path the services are under; "/dicom-web", the root Orthanc uses, by default.
	Root string
	// PublicURL, when set, is the scheme and authority clients reach the node at
	// ("https://pacs.example.org"), for the URLs in responses (RetrieveURL, BulkDataURI). Empty:
	// taken from each request (its Host header, and TLS or not).
	PublicURL string
	// MaxStoreBytes bounds the body of one STOW-RS request; 4 GiB by default.
	MaxStoreBytes int64
	// MaxResults bounds the matches one QIDO-RS response lists (a client pages with offset);
	// 10,000 by default.
	MaxResults int
	// BulkDataThreshold is the longest value metadata carries inline; a longer one, and pixel
	// data whatever its length, is given by a BulkDataURI. 64 KiB by default.
	BulkDataThreshold int64
	// TransferSyntaxes are those STOW-RS accepts instances in; empty accepts every storable one.
	TransferSyntaxes []string
	// ImplementationClassUID and ImplementationVersionName go into the file meta of the objects
	// WADO-RS sends.
	ImplementationClassUID, ImplementationVersionName string
	Logger                                            zerolog.Logger
}

// Defaults of Options.
const (
	DefaultRoot              = "/dicom-web"
	DefaultMaxStoreBytes     = 4 << 30
	DefaultMaxResults        = 10000
	DefaultBulkDataThreshold = 64 << 10
)

// Server is the DICOMweb origin server; it is an http.Handler for the paths under Root.
type Server struct {
	opts    Options
	storer  Storer
	archive Archive
	mux     *http.ServeMux
	layouts *layoutCache
	syntax  map[string]bool // accepted by STOW-RS; nil: every storable one
}

// New returns the server storing through storer and reading archive.
func New(opts Options, storer Storer, archive Archive) *Server {
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	opts.Root = "/" + strings.Trim(opts.Root, "/")
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	if opts.MaxStoreBytes <= 0 {
		opts.MaxStoreBytes = DefaultMaxStoreBytes
	}
	if opts.MaxResults <= 0 {
		opts.MaxResults = DefaultMaxResults
	}
	if opts.BulkDataThreshold <= 0 {
		opts.BulkDataThreshold = DefaultBulkDataThreshold
	}
	if opts.ImplementationClassUID == "" {
		opts.ImplementationClassUID = store.DefaultImplementationClassUID
	}
	s := &Server{opts: opts, storer: storer, archive: archive, mux: http.NewServeMux(), layouts: newLayoutCache(4096)}
	if len(opts.TransferSyntaxes) > 0 {
		s.syntax = map[string]bool{}
		for _, ts := range opts.TransferSyntaxes {
			s.syntax[ts] = true
		}
	}
	root := opts.Root
	study := root + "/studies/{study}"
	series := study + "/series/{series}"
	instance := series + "/instances/{instance}"
	routes := []struct {
		pattern string
		h       http.HandlerFunc
	}{
		// QIDO-RS (PS3.18 §10.6)
		{"GET " + root + "/studies", s.search(store.StudyLevel)},
		{"GET " + study + "/series", s.search(store.SeriesLevel)},
		{"GET " + root + "/series", s.search(store.SeriesLevel)},
		{"GET " + series + "/instances", s.search(store.ImageLevel)},
		{"GET " + study + "/instances", s.search(store.ImageLevel)},
		{"GET " + root + "/instances", s.search(store.ImageLevel)},
		// WADO-RS (PS3.18 §10.4)
		{"GET " + study, s.retrieve},
		{"GET " + series, s.retrieve},
		{"GET " + instance, s.retrieve},
		{"GET " + study + "/metadata", s.metadata},
		{"GET " + series + "/metadata", s.metadata},
		{"GET " + instance + "/metadata", s.metadata},
		{"GET " + instance + "/frames/{frames}", s.frames},
		{"GET " + instance + "/bulkdata/{path...}", s.bulkdata},
		{"GET " + instance + "/rendered", s.rendered},
		{"GET " + instance + "/frames/{frames}/rendered", s.rendered},
		// STOW-RS (PS3.18 §10.5)
		{"POST " + root + "/studies", s.stow},
		{"POST " + study, s.stow},
	}
	for _, r := range routes {
		s.mux.HandleFunc(r.pattern, r.h)
	}
	return s
}

// Root returns the path the services are under.
func (s *Server) Root() string { return s.opts.Root }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// httpError is an error with the status it is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func statusErr(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// fail answers an error: its own status for an httpError, 404 for what the index does not hold,
// 400 for an invalid UID, else 500 (logged).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrInvalidUID):
		status = http.StatusBadRequest
	case errors.Is(err, context.Canceled):
		return
	}
	if status >= 500 {
		s.opts.Logger.Warn().Err(err).Str("path", r.URL.Path).Msg("DICOMweb request failed")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, err.Error())
}

// uids reads and checks the UIDs of the path: a UID is all a URL can name, and it is checked
// before it reaches the store.
func uids(r *http.Request) (study, series, instance string, err error) {
	for _, p := range []struct {
		name string
		dst  *string
	}{{"study", &study}, {"series", &series}, {"instance", &instance}} {
		v := r.PathValue(p.name)
		if v == "" {
			continue
		}
		if err := dcm.CheckUID(v); err != nil {
			return "", "", "", statusErr(http.StatusBadRequest, "%s UID %q: %v", p.name, v, err)
		}
		*p.dst = v
	}
	return study, series, instance, nil
}

// baseURL is the URL of the root as the client reaches it.
func (s *Server) baseURL(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return s.opts.PublicURL + s.opts.Root
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + s.opts.Root
}

func studyURL(base, study string) string { return base + "/studies/" + study }
func seriesURL(base, study, series string) string {
	return studyURL(base, study) + "/series/" + series
}
func instanceURL(base, study, series, instance string) string {
	return seriesURL(base, study, series) + "/instances/" + instance
}

// accepts returns the request's acceptable media types: the accept query parameter when given
// (PS3.18 §8.3.3.1), else the Accept headers.
func accepts(r *http.Request) ([]mediaRange, error) {
	values := r.Header.Values("Accept")
	if q := r.URL.Query()["accept"]; len(q) > 0 {
		values = q
	}
	ranges, err := parseAccept(values)
	if err != nil {
		return nil, statusErr(http.StatusBadRequest, "%v", err)
	}
	return ranges, nil
}

// target reads what a WADO-RS request names (its path's UIDs, uids) and the media types it
// takes (its Accept header, accepts), the first steps of every retrieve handler.
func target(r *http.Request) (study, series, instance string, ranges []mediaRange, err error) {
	if study, series, instance, err = uids(r); err != nil {
		return "", "", "", nil, err
	}
	ranges, err = accepts(r)
	return study, series, instance, ranges, err
}

// instances resolves a study, series or instance of a WADO-RS path to the instances it holds, in
// the index's order; none is ErrNotFound.
func (s *Server) instances(ctx context.Context, study, series, instance string) ([]store.Instance, error) {
	if instance != "" {
		in, err := s.archive.Get(ctx, instance)
		if err != nil {
			return nil, err
		}
		if in.StudyInstanceUID != study || (series != "" && in.SeriesInstanceUID != series) {
			return nil, fmt.Errorf("instance %s is not in that study and series: %w", instance, store.ErrNotFound)
		}
		return []store.Instance{in}, nil
	}
	q := store.Query{Level: store.ImageLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{study}}}}
	if series != "" {
		q.Matches = append(q.Matches, store.Match{Tag: dcm.SeriesInstanceUID, Values: []string{series}})
	}
	var out []store.Instance
	err := s.archive.Find(ctx, q, func(rec store.Record) error {
		out = append(out, rec.Instance)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no instance in that study or series: %w", store.ErrNotFound)
	}
	return out, nil
}
