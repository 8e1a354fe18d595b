// Package config is the node's one typed configuration: built-in defaults
// (default.yaml, which also documents every key), an optional YAML file,
// ESPNODE_* environment variables, then flags applied by the caller, with
// validation whose messages name the offending key.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// defaultYAML holds the defaults and is the reference documentation of the keys.
//
//go:embed default.yaml
var defaultYAML []byte

// Default returns the built-in configuration.
func Default() Config {
	var c Config
	if err := decodeYAML(defaultYAML, &c); err != nil {
		// default.yaml is part of the binary: a decoding error is a build defect.
		panic("config: default.yaml: " + err.Error())
	}
	return c
}

// DefaultYAML returns the commented default configuration, e.g. for an
// "espnode config" command that prints a starting point.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole configuration. Field tags are the YAML keys; the key
// paths (dicom.port) are what error messages and environment variables use.
type Config struct {
	AETitle string `yaml:"ae_title"`
	DataDir string `yaml:"data_dir"`
	// Role is what this node runs (RoleAll, RoleIngest, RoleWorker).
	Role string `yaml:"role"`
	// Index is IndexSQLite or a postgres:// (postgresql://) URL: where the index and the job
	// queue live.
	Index string `yaml:"index"`
	// Archive is ArchiveFile or s3://BUCKET/PREFIX: where the objects live.
	Archive  string   `yaml:"archive"`
	S3       S3       `yaml:"s3"`
	DICOM    DICOM    `yaml:"dicom"`
	Store    Store    `yaml:"store"`
	Peers    []Peer   `yaml:"peers"`
	Pipeline Pipeline `yaml:"pipeline"`
	Model    Model    `yaml:"model"`
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
}

// Roles, for role.
const (
	// RoleAll receives, answers queries and retrievals, serves DICOMweb and the console, and
	// runs the job workers.
	RoleAll = "all"
	// RoleIngest does all of that but run jobs: it receives and enqueues.
	RoleIngest = "ingest"
	// RoleWorker runs the job workers only, with /metrics (and the health probes) on
	// http.addr: no DICOM listener, no DICOMweb, no console.
	RoleWorker = "worker"
)

// Engines, for index and archive.
const (
	IndexSQLite = "sqlite"
	ArchiveFile = "file"
)

// S3 configures the object store of an s3:// archive. An empty value takes the standard AWS
// variable (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
type S3 struct {
	Endpoint        string `yaml:"endpoint"`
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	// PathStyle addresses buckets as ENDPOINT/BUCKET rather than BUCKET.ENDPOINT (local
	// servers).
	PathStyle bool `yaml:"path_style"`
	// PartSize is the size of a multipart upload's parts in bytes; 0 is the archive's default.
	PartSize int `yaml:"part_size"`
}

// Postgres reports whether index names a PostgreSQL database.
func Postgres(index string) bool {
	return strings.HasPrefix(index, "postgres://") || strings.HasPrefix(index, "postgresql://")
}

// Pipeline configures what happens to a stored instance: routing to a
// channel, segmentation jobs and the delivery of their SEGs.
type Pipeline struct {
	// Workers is how many segmentation jobs run at once; 0 fits it to the
	// machine and the execution provider.
	Workers        int           `yaml:"workers"`
	SeriesMode     bool          `yaml:"series_mode"`
	SeriesIdle     time.Duration `yaml:"series_idle"`
	SegmentRetry   Retry         `yaml:"segment_retry"`
	PollInterval   time.Duration `yaml:"poll_interval"`
	Routing        []Route       `yaml:"routing"`
	Destinations   []Peer        `yaml:"destinations"`
	ReplyToSender  bool          `yaml:"reply_to_sender"`
	DeliveryRetry  Retry         `yaml:"delivery_retry"`
	DeliverTimeout time.Duration `yaml:"delivery_timeout"`
	// RescueAfter is how long a job may stay running before a shared queue's rescuer takes it
	// for dead and makes it available again (its node died).
	RescueAfter time.Duration `yaml:"rescue_after"`
}

// Route is one routing rule: an instance matching every non-empty list (each
// list matches when one of its values does) goes to Channel; the first
// matching rule wins. pipeline.Route says how each list matches.
type Route struct {
	Channel          string   `yaml:"channel"`
	Modality         []string `yaml:"modality"`
	SOPClassUID      []string `yaml:"sop_class_uid"`
	BodyPartExamined []string `yaml:"body_part_examined"`
	AnatomicRegion   []string `yaml:"anatomic_region"`
	ViewPosition     []string `yaml:"view_position"`
	Description      []string `yaml:"description"`
	ImageType        []string `yaml:"image_type"`
	CallingAE        []string `yaml:"calling_ae"`
	// Reason labels what a channel-none rule keeps from segmentation (a metric label).
	Reason string `yaml:"reason"`
}

// Retry is an exponential backoff with jitter and a bound on attempts.
type Retry struct {
	MaxAttempts int           `yaml:"max_attempts"`
	Initial     time.Duration `yaml:"initial"`
	Max         time.Duration `yaml:"max"`
}

// Model configures the segmentation model and ONNX Runtime.
type Model struct {
	Path        string        `yaml:"path"`
	Provider    string        `yaml:"provider"`
	ONNXRuntime string        `yaml:"onnxruntime"`
	Threads     int           `yaml:"threads"`
	Batch       int           `yaml:"batch"`
	BatchWait   time.Duration `yaml:"batch_wait"`
	// RejectImplausible withholds the SEG of an instance whose masks are outside the
	// channel's plausibility bounds in the model's metadata.
	RejectImplausible bool `yaml:"reject_implausible"`
}

// HTTP configures the node's HTTP listeners: health, metrics and DICOMweb on addr, the OHIF
// viewer on its own port, and the security both share.
type HTTP struct {
	Addr string `yaml:"addr"`
	// DICOMweb serves PS3.18 under /dicom-web on addr and on the viewer's port.
	DICOMweb bool `yaml:"dicomweb"`
	// Console serves the operator console under /console/ on addr (docs/CONSOLE.md).
	Console bool `yaml:"console"`
	// PublicURL is the scheme and authority (and any path prefix) clients reach the node at,
	// for the URLs in DICOMweb responses; "" takes them from each request.
	PublicURL   string     `yaml:"public_url"`
	Viewer      HTTPViewer `yaml:"viewer"`
	Auth        HTTPAuth   `yaml:"auth"`
	TLS         HTTPTLS    `yaml:"tls"`
	CORSOrigins []string   `yaml:"cors_origins"`
	// MaxStoreBytes bounds one STOW-RS request body (every request body).
	MaxStoreBytes int `yaml:"max_store_bytes"`
	// MaxResults bounds the matches of one QIDO-RS response.
	MaxResults int `yaml:"max_results"`
	// BulkDataThreshold is the longest value DICOMweb metadata carries inline.
	BulkDataThreshold int `yaml:"bulk_data_threshold"`
}

// HTTPViewer configures the OHIF viewer's listener.
type HTTPViewer struct {
	Addr string `yaml:"addr"`
	// Dir is the viewer's static site; "" looks for third_party/ohif beside the binary's folder,
	// then in the working directory.
	Dir string `yaml:"dir"`
}

// HTTPAuth holds the credentials HTTP requests must carry; with none, every request is served
// (allowed on loopback only).
type HTTPAuth struct {
	Tokens []string   `yaml:"tokens"`
	Users  []HTTPUser `yaml:"users"`
}

// HTTPUser is an HTTP basic account.
type HTTPUser struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
}

// HTTPTLS holds the HTTPS certificate (chain) and key, PEM files.
type HTTPTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// DICOM configures the DICOM listener and association policy.
type DICOM struct {
	Host             string   `yaml:"host"`
	Port             int      `yaml:"port"`
	StrictCalledAE   bool     `yaml:"strict_called_ae"`
	AllowedCallers   []Caller `yaml:"allowed_callers"`
	MaxAssociations  int      `yaml:"max_associations"`
	MaxPDULength     int      `yaml:"max_pdu_length"`
	TransferSyntaxes []string `yaml:"transfer_syntaxes"`
	Timeouts         Timeouts `yaml:"timeouts"`
	// MaxPending bounds connections that have not yet sent an A-ASSOCIATE-RQ.
	MaxPending int `yaml:"max_pending_connections"`
	// MaxPerHost bounds the connections from one IP address; 0 is no limit.
	MaxPerHost int `yaml:"max_connections_per_host"`
	// MaxOperations is the most operations of one association performed at once, for a
	// requestor that proposes an asynchronous operations window.
	MaxOperations int `yaml:"max_operations"`
	TLS           TLS `yaml:"tls"`
}

// TLS configures DICOM over TLS (PS3.15 Annex B): the TLS listener and the
// node's certificate for it, the CA that verifies peers, and client
// certificates.
type TLS struct {
	// Port of the TLS listener; 0: none.
	Port int    `yaml:"port"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
	// ClientCerts: none, optional or required.
	ClientCerts string `yaml:"client_certs"`
}

// Client certificate policies for dicom.tls.client_certs.
const (
	ClientCertsNone     = "none"
	ClientCertsOptional = "optional"
	ClientCertsRequired = "required"
)

// Addr is the TLS listen address in net.Listen's form.
func (d DICOM) TLSAddr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.TLS.Port)) }

// Addr is the listen address in net.Listen's form.
func (d DICOM) Addr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// Caller is one entry of the calling-AE allow list; an empty Host matches any host.
type Caller struct {
	AETitle string `yaml:"ae_title"`
	Host    string `yaml:"host"`
	// CertName, when set, must name the caller's TLS client certificate.
	CertName string `yaml:"cert_name"`
}

// Timeouts bound how long a peer can hold an association without progress.
type Timeouts struct {
	ARTIM    time.Duration `yaml:"artim"`
	Idle     time.Duration `yaml:"idle"`
	DIMSE    time.Duration `yaml:"dimse"`
	FirstPDU time.Duration `yaml:"first_pdu"`
}

// Store configures the archive.
type Store struct {
	Duplicates string `yaml:"duplicates"`
}

// Peer is one entry of the AE table: a node this one connects to.
type Peer struct {
	AETitle string `yaml:"ae_title"`
	Host    string `yaml:"host"`
	Port    int    `yaml:"port"`
	// TLS: associations to this peer (C-MOVE, SEG delivery) run over TLS
	// (dicom.tls.ca verifies it).
	TLS bool `yaml:"tls"`
	// OmitGetFailedList leaves the Failed SOP Instance UID List out of the
	// final C-GET response to this AE.
	OmitGetFailedList bool `yaml:"omit_get_failed_list"`
}

// Addr is the peer's address in net.Dial's form.
func (p Peer) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// String writes the peer as AET@HOST:PORT, the form --destination takes.
func (p Peer) String() string { return p.AETitle + "@" + p.Addr() }

// ParsePeer reads AET@HOST:PORT.
func ParsePeer(s string) (Peer, error) {
	aet, addr, ok := strings.Cut(s, "@")
	if !ok {
		return Peer{}, fmt.Errorf("%q: want AET@HOST:PORT", s)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Peer{}, fmt.Errorf("%q: want AET@HOST:PORT: %w", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return Peer{}, fmt.Errorf("%q: port %q is not a number", s, port)
	}
	return Peer{AETitle: aet, Host: host, Port: n}, nil
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Bounds of dicom.max_pdu_length. The lower one is the smallest PDU that still
// carries a useful P-DATA fragment; the upper one caps what a peer can make us
// allocate for a single PDU.
const (
	MinPDULength = 4096
	MaxPDULength = 16 << 20
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "ESPNODE_"

// Variables with EnvPrefix that are not configuration keys. Load accepts them
// beside the keys' variables; any other ESPNODE_* name is an error, as an
// unknown file key is, so that a misspelt variable is not silently ignored.
const (
	// EnvModel names the model file of the commands that take --model.
	EnvModel = "ESPNODE_MODEL"
	// EnvShared names the shared test material folder of the test suites
	// (internal/testutil reads it; it cannot import config, whose own
	// dependencies' tests use testutil).
	EnvShared = "ESPNODE_SHARED"
	// EnvProfileDir names a folder where the process writes its Go profiles
	// (cmd/espnode, bench/ingest's PROFILE=1).
	EnvProfileDir = "ESPNODE_PROFILE_DIR"
)

// Load builds the configuration: defaults, then the YAML file at path (if path
// is not empty), then the ESPNODE_* variables of environ (os.Environ's
// KEY=value form; nil reads none), then Validate. A variable set to the empty
// string sets the key to the empty value (ESPNODE_HTTP_ADDR= turns the HTTP
// endpoint off). The caller applies flags afterwards and calls Validate again.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, &c); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnviron(&c, environ); err != nil {
		return Config{}, fmt.Errorf("config: environment: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// applyEnviron applies the ESPNODE_* variables of environ to c and reports
// every one that names no key.
func applyEnviron(c *Config, environ []string) error {
	vars := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, EnvPrefix) {
			vars[name] = value
		}
	}
	if len(vars) == 0 {
		return nil
	}
	used := map[string]bool{EnvModel: true, EnvShared: true, EnvProfileDir: true}
	lookup := func(name string) (string, bool) {
		used[name] = true
		v, ok := vars[name]
		return v, ok
	}
	errs := []error{applyEnv(reflect.ValueOf(c).Elem(), "", lookup)}
	var unknown []string
	for name := range vars {
		if !used[name] {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		errs = append(errs, fmt.Errorf("%s: unknown variable (no configuration key has this name)", name))
	}
	return errors.Join(errs...)
}

// decodeYAML decodes one YAML document onto c, leaving keys the document does
// not mention as they were. A list in the document replaces the list in c.
func decodeYAML(data []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil // an empty file changes nothing
	}
	// yaml.v3's own errors name the line but not the key path, and stop at the
	// first problem; walk the tree first so the user sees every bad key by name.
	if errs := checkNode(doc.Content[0], reflect.TypeOf(*c), ""); len(errs) > 0 {
		return errors.Join(errs...)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// checkNode reports unknown keys and values of the wrong type under n, which
// is to be decoded into a value of type t at key path path.
func checkNode(n *yaml.Node, t reflect.Type, path string) []error {
	var errs []error
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil // "key:" with nothing after it leaves the value as it was
	case t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Duration(0)):
		if n.Kind != yaml.MappingNode {
			return []error{fmt.Errorf("%s: line %d: expected a mapping", orRoot(path), n.Line)}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fieldByKey(t, k.Value)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: line %d: unknown key", join(path, k.Value), k.Line))
				continue
			}
			errs = append(errs, checkNode(v, f.Type, join(path, k.Value))...)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return []error{fmt.Errorf("%s: line %d: expected a list", path, n.Line)}
		}
		for i, e := range n.Content {
			errs = append(errs, checkNode(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return []error{fmt.Errorf("%s: line %d: expected a single value", path, n.Line)}
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return []error{fmt.Errorf("%s: line %d: %q is not a valid %s", path, n.Line, n.Value, kindName(t))}
		}
	}
	return errs
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func kindName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return `duration (e.g. "30s", "5m")`
	case t.Kind() == reflect.Bool:
		return "boolean (true or false)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	default:
		return t.String()
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// EnvName is the environment variable that sets the key at path (dicom.port:
// ESPNODE_DICOM_PORT).
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_").Replace(path))
}

// applyEnv sets every scalar (and string-list) field of the struct v whose
// variable lookup finds, also to an empty value. It asks lookup for every
// name, which is how applyEnviron learns the names that are keys.
func applyEnv(v reflect.Value, path string, lookup func(string) (string, bool)) error {
	var errs []error
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := join(path, yamlKey(f))
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := applyEnv(fv, key, lookup); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		name := EnvName(key)
		s, ok := lookup(name)
		if !ok {
			continue
		}
		if err := setScalar(fv, s); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", key, name, err))
		}
	}
	return errors.Join(errs...)
}

func setScalar(v reflect.Value, s string) error {
	switch {
	case v.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. \"30s\", \"5m\")", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var list []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return errors.New("cannot be set from the environment; use the configuration file")
	}
	return nil
}
