package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/channel"
)

// Duplicate policies for store.duplicates.
const (
	DuplicatesOverwrite = "overwrite"
	DuplicatesKeep      = "keep"
	DuplicatesReject    = "reject"
)

// Log formats for log.format.
const (
	LogFormatAuto    = "auto"
	LogFormatJSON    = "json"
	LogFormatConsole = "console"
)

// LogLevels are the accepted values of log.level, least severe first.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// Validate returns every problem in c joined into one error (nil if none),
// each starting with the key path it concerns, e.g.
// "dicom.port: must be 1..65535, got 0".
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}

	checkAE := func(key, ae string) {
		if dcm.CheckAE(ae) != nil {
			bad(key, "at most 16 characters of the default repertoire, no backslash or control characters, not only spaces, got %q", ae)
		}
	}
	checkPort := func(key string, port int) {
		if port < 1 || port > 65535 {
			bad(key, "must be 1..65535, got %d", port)
		}
	}
	checkDuration := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration (e.g. \"30s\"), got %s", d)
		}
	}

	checkAE("ae_title", c.AETitle)
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}

	d := &c.DICOM
	if strings.ContainsAny(d.Host, " \t\r\n") {
		bad("dicom.host", "must be an IP address or host name, got %q", d.Host)
	}
	checkPort("dicom.port", d.Port)
	for i, cl := range d.AllowedCallers {
		checkAE(fmt.Sprintf("dicom.allowed_callers[%d].ae_title", i), cl.AETitle)
		if strings.ContainsAny(cl.Host, " \t\r\n") {
			bad(fmt.Sprintf("dicom.allowed_callers[%d].host", i), "must be empty, an IP address or a host name, got %q", cl.Host)
		}
	}
	if d.MaxAssociations < 1 {
		bad("dicom.max_associations", "must be at least 1, got %d", d.MaxAssociations)
	}
	if d.MaxPDULength < MinPDULength || d.MaxPDULength > MaxPDULength {
		bad("dicom.max_pdu_length", "must be %d..%d, got %d", MinPDULength, MaxPDULength, d.MaxPDULength)
	}
	if d.MaxOperations < 1 || d.MaxOperations > math.MaxUint16 {
		bad("dicom.max_operations", "must be 1..%d, got %d", math.MaxUint16, d.MaxOperations)
	}
	if len(d.TransferSyntaxes) == 0 {
		bad("dicom.transfer_syntaxes", "must list at least one transfer syntax UID")
	}
	seen := make(map[string]bool)
	for i, ts := range d.TransferSyntaxes {
		key := fmt.Sprintf("dicom.transfer_syntaxes[%d]", i)
		if err := dcm.CheckUID(ts); err != nil {
			bad(key, "%v", err)
		} else if syn, ok := dcm.LookupTransferSyntax(ts); !ok {
			bad(key, "%s is not a transfer syntax PS3.6 lists", ts)
		} else if !syn.Storable {
			bad(key, "%s (%s) does not encode stored objects", ts, syn.Name)
		} else if seen[ts] {
			bad(key, "%s is listed twice", ts)
		}
		seen[ts] = true
	}
	checkDuration("dicom.timeouts.artim", d.Timeouts.ARTIM)
	checkDuration("dicom.timeouts.idle", d.Timeouts.Idle)
	checkDuration("dicom.timeouts.dimse", d.Timeouts.DIMSE)
	checkDuration("dicom.timeouts.first_pdu", d.Timeouts.FirstPDU)
	if d.MaxPending < 1 {
		bad("dicom.max_pending_connections", "must be at least 1, got %d", d.MaxPending)
	}
	if d.MaxPerHost < 0 {
		bad("dicom.max_connections_per_host", "must be 0 (no limit) or more, got %d", d.MaxPerHost)
	}
	c.validateTLS(bad, checkPort)

	switch c.Store.Duplicates {
	case DuplicatesOverwrite, DuplicatesKeep, DuplicatesReject:
	default:
		bad("store.duplicates", "must be overwrite, keep or reject, got %q", c.Store.Duplicates)
	}

	peers := make(map[string]int)
	for i, p := range c.Peers {
		key := fmt.Sprintf("peers[%d]", i)
		checkAE(key+".ae_title", p.AETitle)
		if j, dup := peers[strings.TrimSpace(p.AETitle)]; dup {
			bad(key+".ae_title", "%q is already peers[%d]", p.AETitle, j)
		} else {
			peers[strings.TrimSpace(p.AETitle)] = i
		}
		if strings.TrimSpace(p.Host) == "" || strings.ContainsAny(p.Host, " \t\r\n") {
			bad(key+".host", "must be an IP address or host name, got %q", p.Host)
		}
		checkPort(key+".port", p.Port)
	}

	c.validatePipeline(bad, checkAE, checkPort, checkDuration)
	c.validateEngines(bad)

	if !slices.Contains(logLevels, c.Log.Level) {
		bad("log.level", "must be one of %s, got %q", strings.Join(logLevels, ", "), c.Log.Level)
	}
	switch c.Log.Format {
	case LogFormatAuto, LogFormatJSON, LogFormatConsole:
	default:
		bad("log.format", "must be auto, json or console, got %q", c.Log.Format)
	}
	return errors.Join(errs...)
}

// validateTLS checks dicom.tls and the keys that depend on it.
func (c Config) validateTLS(bad func(key, format string, args ...any), checkPort func(key string, port int)) {
	t := c.DICOM.TLS
	if t.Port != 0 {
		checkPort("dicom.tls.port", t.Port)
		if t.Port == c.DICOM.Port {
			bad("dicom.tls.port", "must differ from dicom.port (%d)", c.DICOM.Port)
		}
		if t.Cert == "" || t.Key == "" {
			bad("dicom.tls", "port %d needs cert and key (PEM files)", t.Port)
		}
	}
	switch t.ClientCerts {
	case ClientCertsNone, ClientCertsOptional, ClientCertsRequired:
	default:
		bad("dicom.tls.client_certs", "must be none, optional or required, got %q", t.ClientCerts)
	}
	if t.ClientCerts != ClientCertsNone && t.Port != 0 && t.CA == "" {
		bad("dicom.tls.ca", "client_certs %s needs a CA (PEM file) to verify them", t.ClientCerts)
	}
	for i, cl := range c.DICOM.AllowedCallers {
		if cl.CertName != "" && (t.Port == 0 || t.ClientCerts == ClientCertsNone) {
			bad(fmt.Sprintf("dicom.allowed_callers[%d].cert_name", i), "needs dicom.tls.port and dicom.tls.client_certs optional or required")
		}
	}
	for i, p := range c.Peers {
		if p.TLS && t.CA == "" {
			bad(fmt.Sprintf("peers[%d].tls", i), "needs dicom.tls.ca to verify the peer's certificate")
		}
	}
	for i, p := range c.Pipeline.Destinations {
		if p.TLS && t.CA == "" {
			bad(fmt.Sprintf("pipeline.destinations[%d].tls", i), "needs dicom.tls.ca to verify the destination's certificate")
		}
	}
}

// Providers are the accepted values of model.provider (seg/onnx's names; repeated here because
// seg/onnx links ONNX Runtime's cgo bindings, which config must not need; a config test checks
// the two lists agree).
var providers = []string{"auto", "cpu", "cuda", "tensorrt", "webgpu"}

// reasonPattern is a not-segmented reason: short, a Prometheus label value anyone can type.
var reasonPattern = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// ChannelNone routes an instance to no channel: stored, not segmented (seg/channel's name for it).
const ChannelNone = channel.None

func (c Config) validatePipeline(bad func(key, format string, args ...any),
	checkAE func(key, ae string), checkPort func(key string, port int), checkDuration func(key string, d time.Duration)) {
	p := &c.Pipeline
	if p.Workers < 0 {
		bad("pipeline.workers", "must be 0 (fit to the machine) or more, got %d", p.Workers)
	}
	checkDuration("pipeline.series_idle", p.SeriesIdle)
	checkDuration("pipeline.poll_interval", p.PollInterval)
	checkDuration("pipeline.delivery_timeout", p.DeliverTimeout)
	checkDuration("pipeline.rescue_after", p.RescueAfter)
	if p.RescueAfter > 0 && p.RescueAfter <= p.DeliverTimeout {
		bad("pipeline.rescue_after", "must be longer than pipeline.delivery_timeout (%s): a delivery still running would be taken for dead, got %s",
			p.DeliverTimeout, p.RescueAfter)
	}
	for _, r := range []struct {
		key string
		r   Retry
	}{{"pipeline.segment_retry", p.SegmentRetry}, {"pipeline.delivery_retry", p.DeliveryRetry}} {
		if r.r.MaxAttempts < 1 {
			bad(r.key+".max_attempts", "must be at least 1, got %d", r.r.MaxAttempts)
		}
		checkDuration(r.key+".initial", r.r.Initial)
		checkDuration(r.key+".max", r.r.Max)
		if r.r.Max < r.r.Initial {
			bad(r.key+".max", "must not be shorter than %s.initial (%s), got %s", r.key, r.r.Initial, r.r.Max)
		}
	}
	for i, r := range p.Routing {
		key := fmt.Sprintf("pipeline.routing[%d]", i)
		if _, known := channel.ByName(r.Channel); !known && r.Channel != ChannelNone {
			bad(key+".channel", "must be one of %s or %s, got %q", strings.Join(channel.Names(), ", "), ChannelNone, r.Channel)
		}
		for j, uid := range r.SOPClassUID {
			if err := dcm.CheckUID(uid); err != nil {
				bad(fmt.Sprintf("%s.sop_class_uid[%d]", key, j), "%v", err)
			}
		}
		for j, code := range r.AnatomicRegion {
			if scheme, value, ok := strings.Cut(code, ":"); code != "" && (!ok || strings.TrimSpace(scheme) == "" || strings.TrimSpace(value) == "") {
				bad(fmt.Sprintf("%s.anatomic_region[%d]", key, j), `must be SCHEME:VALUE (SCT:51185008) or "" (no Anatomic Region Sequence), got %q`, code)
			}
		}
		switch {
		case r.Reason != "" && r.Channel != ChannelNone:
			bad(key+".reason", "is for channel %s rules (why an instance is not segmented), this rule's channel is %q", ChannelNone, r.Channel)
		case r.Reason != "" && !reasonPattern.MatchString(r.Reason):
			bad(key+".reason", "must be 1 to 64 lower-case letters, digits and underscores (a metric label), got %q", r.Reason)
		}
	}
	dests := make(map[string]int)
	for i, d := range p.Destinations {
		key := fmt.Sprintf("pipeline.destinations[%d]", i)
		checkAE(key+".ae_title", d.AETitle)
		if j, dup := dests[d.Addr()]; dup {
			bad(key, "%s is already pipeline.destinations[%d]", d, j)
		} else {
			dests[d.Addr()] = i
		}
		if strings.TrimSpace(d.Host) == "" || strings.ContainsAny(d.Host, " \t\r\n") {
			bad(key+".host", "must be an IP address or host name, got %q", d.Host)
		}
		checkPort(key+".port", d.Port)
	}

	m := &c.Model
	if !slices.Contains(providers, m.Provider) {
		bad("model.provider", "must be one of %s, got %q", strings.Join(providers, ", "), m.Provider)
	}
	if m.Threads < 0 {
		bad("model.threads", "must be 0 (ONNX Runtime chooses) or more, got %d", m.Threads)
	}
	if m.Batch < 0 || m.Batch > 256 {
		bad("model.batch", "must be 0 (fit to the provider) to 256, got %d", m.Batch)
	}
	if m.BatchWait < 0 {
		bad("model.batch_wait", "must not be negative, got %s", m.BatchWait)
	}
	c.validateHTTP(bad)
}

// Loopback reports whether a listen address (HOST:PORT) is reachable from this machine only: an
// address of the loopback network, or localhost. An empty host listens on every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateHTTP checks the http section: a listener another machine can reach needs
// credentials and TLS.
func (c Config) validateHTTP(bad func(key, format string, args ...any)) {
	h := &c.HTTP
	listeners := []struct{ key, addr string }{{"http.addr", h.Addr}, {"http.viewer.addr", h.Viewer.Addr}}
	for _, l := range listeners {
		if l.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(l.addr); err != nil || port == "" {
			bad(l.key, "must be HOST:PORT (e.g. 127.0.0.1:8080) or empty, got %q", l.addr)
			continue
		}
		if Loopback(l.addr) {
			continue
		}
		if len(h.Auth.Tokens) == 0 && len(h.Auth.Users) == 0 {
			bad(l.key, "%s is reachable from other machines: set http.auth.tokens or http.auth.users, or listen on 127.0.0.1", l.addr)
		}
		if h.TLS.Cert == "" {
			bad(l.key, "%s is reachable from other machines: set http.tls.cert and http.tls.key, or listen on 127.0.0.1", l.addr)
		}
	}
	if h.Viewer.Addr != "" {
		if !h.DICOMweb {
			bad("http.viewer.addr", "the viewer reads the node through DICOMweb: needs http.dicomweb true")
		}
		if _, port, _ := net.SplitHostPort(h.Addr); h.Viewer.Addr == h.Addr && port != "0" {
			// Port 0 is a fresh port for each listener.
			bad("http.viewer.addr", "must differ from http.addr (%s): the viewer takes the root of its own port", h.Addr)
		}
	}
	if (h.TLS.Cert == "") != (h.TLS.Key == "") {
		bad("http.tls", "cert and key go together (PEM files)")
	}
	for i, t := range h.Auth.Tokens {
		if len(t) < 16 || strings.ContainsAny(t, " \t\r\n") {
			bad(fmt.Sprintf("http.auth.tokens[%d]", i), "must be at least 16 characters without spaces")
		}
	}
	names := map[string]bool{}
	for i, u := range h.Auth.Users {
		key := fmt.Sprintf("http.auth.users[%d]", i)
		switch {
		case u.Name == "" || strings.ContainsAny(u.Name, ":\r\n"):
			bad(key+".name", "must be non-empty, without a colon, got %q", u.Name)
		case names[u.Name]:
			bad(key+".name", "%q is listed twice", u.Name)
		}
		names[u.Name] = true
		if len(u.Password) < 8 {
			bad(key+".password", "must be at least 8 characters")
		}
	}
	for i, o := range h.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			bad(fmt.Sprintf("http.cors_origins[%d]", i), "must be * or an origin (https://host[:port]), got %q", o)
		}
	}
	if h.PublicURL != "" {
		u, err := url.Parse(h.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			bad("http.public_url", "must be empty or http(s)://host[:port][/path], got %q", h.PublicURL)
		}
	}
	if h.MaxStoreBytes < 1<<20 {
		bad("http.max_store_bytes", "must be at least 1048576 (1 MiB), got %d", h.MaxStoreBytes)
	}
	if h.MaxResults < 1 || h.MaxResults > 1000000 {
		bad("http.max_results", "must be 1..1000000, got %d", h.MaxResults)
	}
	if h.BulkDataThreshold < 1<<10 || h.BulkDataThreshold > 256<<20 {
		bad("http.bulk_data_threshold", "must be 1024..268435456 bytes, got %d", h.BulkDataThreshold)
	}
}

// s3Bucket is an S3 bucket name as the archive accepts it: 3 to 63 lower-case letters, digits,
// dots and hyphens, starting and ending with a letter or digit.
var s3Bucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// S3 bounds of a multipart upload's part (every part but the last).
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
)

// validateEngines checks role, index, archive and s3. Messages never repeat the index URL,
// which may hold a password.
func (c Config) validateEngines(bad func(key, format string, args ...any)) {
	switch c.Role {
	case RoleAll, RoleIngest, RoleWorker:
	default:
		bad("role", "must be %s, %s or %s, got %q", RoleAll, RoleIngest, RoleWorker, c.Role)
	}
	switch {
	case c.Index == IndexSQLite:
		if c.Role == RoleIngest || c.Role == RoleWorker {
			bad("role", "%s needs an index shared with other nodes (index: postgres://...): on SQLite no other node can work this node's queue", c.Role)
		}
	case Postgres(c.Index):
		u, err := url.Parse(c.Index)
		if err != nil || u.Host == "" {
			bad("index", "a PostgreSQL URL is postgres://USER:PASSWORD@HOST:PORT/DATABASE (this one does not parse or has no host)")
		}
	default:
		bad("index", "must be %q or a postgres:// (postgresql://) URL", IndexSQLite)
	}
	switch {
	case c.Archive == ArchiveFile:
	case strings.HasPrefix(c.Archive, "s3://"):
		bucket, _, _ := strings.Cut(strings.TrimPrefix(c.Archive, "s3://"), "/")
		if !s3Bucket.MatchString(bucket) {
			bad("archive", "s3://BUCKET/PREFIX: the bucket must be 3 to 63 lower-case letters, digits, dots and hyphens, got %q", bucket)
		}
	default:
		bad("archive", "must be %q or s3://BUCKET/PREFIX, got %q", ArchiveFile, c.Archive)
	}
	if c.S3.Endpoint != "" {
		if u, err := url.Parse(c.S3.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("s3.endpoint", "must be an http:// or https:// URL, got %q", c.S3.Endpoint)
		}
	}
	if c.S3.PartSize != 0 && (c.S3.PartSize < MinPartSize || c.S3.PartSize > MaxPartSize) {
		bad("s3.part_size", "must be 0 (the default) or %d..%d bytes (S3's bounds), got %d", MinPartSize, MaxPartSize, c.S3.PartSize)
	}
}
