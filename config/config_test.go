package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "espnode.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) []string {
	var environ []string
	for k, v := range m {
		environ = append(environ, k+"="+v)
	}
	return environ
}

func TestDefaultsValidate(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load defaults: %v", err)
	}
	if c.AETitle != "ESPNODE" || c.DICOM.Port != 11112 || c.DataDir != "./data" ||
		c.DICOM.Host != "" || c.DICOM.StrictCalledAE || len(c.DICOM.AllowedCallers) != 0 ||
		c.Store.Duplicates != "overwrite" || c.Log.Level != "info" || c.Log.Format != "auto" {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if c.DICOM.Timeouts != (Timeouts{ARTIM: 30 * time.Second, Idle: 5 * time.Minute, DIMSE: time.Minute, FirstPDU: 10 * time.Second}) {
		t.Errorf("timeouts = %+v", c.DICOM.Timeouts)
	}
	// Compressed first (lossless, then lossy), uncompressed last: see default.yaml for why.
	want := []string{
		"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
		"1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.110",
		"1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.4.50",
		"1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112",
		"1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
	}
	if !slices.Equal(c.DICOM.TransferSyntaxes, want) {
		t.Errorf("transfer syntaxes = %v, want %v", c.DICOM.TransferSyntaxes, want)
	}
	if got := c.DICOM.Addr(); got != ":11112" {
		t.Errorf("Addr = %q", got)
	}
}

// TestDefaultYAMLDocumentsEveryKey keeps default.yaml the complete reference:
// every field of Config must appear in it under its key path.
func TestDefaultYAMLDocumentsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML(), &doc); err != nil {
		t.Fatal(err)
	}
	present := make(map[string]bool)
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			present[p] = true
			walk(n.Content[i+1], p)
		}
	}
	walk(doc.Content[0], "")
	var fields func(t reflect.Type, path string) []string
	fields = func(t reflect.Type, path string) []string {
		var out []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			p := join(path, yamlKey(f))
			out = append(out, p)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				out = append(out, fields(f.Type, p)...)
			}
		}
		return out
	}
	keys := fields(reflect.TypeOf(Config{}), "")
	if len(keys) < 20 {
		t.Fatalf("only %d keys found: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !present[k] {
			t.Errorf("default.yaml does not document %s", k)
		}
	}
}

func TestFileOverrides(t *testing.T) {
	p := writeFile(t, `
ae_title: NODE_A
dicom:
  port: 104
  strict_called_ae: true
  allowed_callers:
    - {ae_title: CT1, host: 10.0.0.1}
    - {ae_title: PACS}
  transfer_syntaxes: [1.2.840.10008.1.2]
  timeouts:
    idle: 90s
store:
  duplicates: reject
peers:
  - {ae_title: PACS, host: pacs.example.org, port: 4242}
`)
	c, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.AETitle = "NODE_A"
	want.DICOM.Port = 104
	want.DICOM.StrictCalledAE = true
	want.DICOM.AllowedCallers = []Caller{{AETitle: "CT1", Host: "10.0.0.1"}, {AETitle: "PACS"}}
	want.DICOM.TransferSyntaxes = []string{"1.2.840.10008.1.2"}
	want.DICOM.Timeouts.Idle = 90 * time.Second // artim and dimse keep their defaults
	want.Store.Duplicates = "reject"
	want.Peers = []Peer{{AETitle: "PACS", Host: "pacs.example.org", Port: 4242}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestEmptyFileKeepsDefaults(t *testing.T) {
	c, err := Load(writeFile(t, "# nothing\ndicom:\nstore:\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("got %+v", c)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("err = %v, want one naming the file", err)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	p := writeFile(t, "ae_title: FROM_FILE\ndicom:\n  port: 104\nlog:\n  level: debug\n")
	c, err := Load(p, env(map[string]string{
		"ESPNODE_AE_TITLE":                "FROM_ENV",
		"ESPNODE_DICOM_PORT":              "2000",
		"ESPNODE_DATA_DIR":                "/var/lib/espnode",
		"ESPNODE_DICOM_STRICT_CALLED_AE":  "true",
		"ESPNODE_DICOM_TIMEOUTS_ARTIM":    "5s",
		"ESPNODE_DICOM_TRANSFER_SYNTAXES": "1.2.840.10008.1.2.1, 1.2.840.10008.1.2",
		"ESPNODE_STORE_DUPLICATES":        "keep",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AETitle != "FROM_ENV" || c.DICOM.Port != 2000 || c.DataDir != "/var/lib/espnode" ||
		!c.DICOM.StrictCalledAE || c.DICOM.Timeouts.ARTIM != 5*time.Second || c.Store.Duplicates != "keep" {
		t.Errorf("env not applied: %+v", c)
	}
	if c.Log.Level != "debug" {
		t.Errorf("log.level = %q, want the file's debug (no env var set)", c.Log.Level)
	}
	if want := []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}; !slices.Equal(c.DICOM.TransferSyntaxes, want) {
		t.Errorf("transfer syntaxes = %v", c.DICOM.TransferSyntaxes)
	}
}

func TestEnvEmptyValueSetsEmpty(t *testing.T) {
	p := writeFile(t, "http:\n  addr: 127.0.0.1:9000\ndicom:\n  transfer_syntaxes: [1.2.840.10008.1.2]\n")
	c, err := Load(p, env(map[string]string{"ESPNODE_HTTP_ADDR": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "" {
		t.Errorf("http.addr = %q, want empty (endpoint off) from ESPNODE_HTTP_ADDR=", c.HTTP.Addr)
	}
	c, err = Load(p, []string{"PATH=/bin", "ESPNODE_MODEL=/m.onnx", "ESPNODE_SHARED=/s", "ESPNODE_LOG_LEVEL=debug"})
	if err != nil {
		t.Fatalf("variables read outside the configuration must be accepted: %v", err)
	}
	if c.HTTP.Addr != "127.0.0.1:9000" || c.Log.Level != "debug" {
		t.Errorf("unset variables must leave the file's values: %+v %+v", c.HTTP, c.Log)
	}
}

func TestEnvName(t *testing.T) {
	for path, want := range map[string]string{
		"ae_title":             "ESPNODE_AE_TITLE",
		"dicom.port":           "ESPNODE_DICOM_PORT",
		"dicom.timeouts.dimse": "ESPNODE_DICOM_TIMEOUTS_DIMSE",
		"log.level":            "ESPNODE_LOG_LEVEL",
	} {
		if got := EnvName(path); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       []string
	}{
		{"unknown top-level key", "ae_titel: X\n", nil, []string{"ae_titel: line 1: unknown key"}},
		{"unknown nested key", "dicom:\n  prot: 104\n", nil, []string{"dicom.prot: line 2: unknown key"}},
		{"unknown key in a list", "peers:\n  - {ae_title: P, host: h, port: 1, aet: Q}\n", nil, []string{"peers[0].aet: line 2: unknown key"}},
		{"all unknown keys reported", "a: 1\nlog:\n  lvl: x\n", nil, []string{"a: line 1", "log.lvl: line 3"}},
		{"wrong type", "dicom:\n  port: eleven\n", nil, []string{`dicom.port: line 2: "eleven" is not a valid integer`}},
		{"duration without unit", "dicom:\n  timeouts:\n    idle: 300\n", nil, []string{"dicom.timeouts.idle: line 3", "duration"}},
		{"mapping where list expected", "peers: {a: 1}\n", nil, []string{"peers: line 1: expected a list"}},
		{"invalid yaml", "dicom: [\n", nil, []string{"yaml"}},
		{"bad env integer", "", map[string]string{"ESPNODE_DICOM_PORT": "x"}, []string{"dicom.port (ESPNODE_DICOM_PORT)", "not an integer"}},
		{"bad env duration", "", map[string]string{"ESPNODE_DICOM_TIMEOUTS_IDLE": "5"}, []string{"dicom.timeouts.idle (ESPNODE_DICOM_TIMEOUTS_IDLE)"}},
		{"bad env bool", "", map[string]string{"ESPNODE_DICOM_STRICT_CALLED_AE": "maybe"}, []string{"dicom.strict_called_ae"}},
		{"env list of records", "", map[string]string{"ESPNODE_PEERS": "x"}, []string{"peers (ESPNODE_PEERS)", "configuration file"}},
		{"validation after env", "", map[string]string{"ESPNODE_DICOM_PORT": "0"}, []string{"dicom.port: must be 1..65535, got 0"}},
		{"unknown env variable", "", map[string]string{"ESPNODE_DICOM_PROT": "104", "ESPNODE_HTTP_ADR": ""}, []string{"ESPNODE_DICOM_PROT: unknown variable", "ESPNODE_HTTP_ADR: unknown variable"}},
		{"empty env integer", "", map[string]string{"ESPNODE_DICOM_PORT": ""}, []string{"dicom.port (ESPNODE_DICOM_PORT)", `"" is not an integer`}},
		{"env name of a section", "", map[string]string{"ESPNODE_DICOM": "x"}, []string{"ESPNODE_DICOM: unknown variable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			_, err := Load(path, env(tt.env))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateNamesEachKey(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"port zero", func(c *Config) { c.DICOM.Port = 0 }, "dicom.port: must be 1..65535, got 0"},
		{"port too big", func(c *Config) { c.DICOM.Port = 65536 }, "dicom.port: must be 1..65535, got 65536"},
		{"ae too long", func(c *Config) { c.AETitle = "ABCDEFGHIJKLMNOPQ" }, `ae_title: at most 16 characters of the default repertoire, no backslash or control characters, not only spaces, got "ABCDEFGHIJKLMNOPQ"`},
		{"ae backslash", func(c *Config) { c.AETitle = `A\B` }, `ae_title: at most 16 characters`},
		{"ae control", func(c *Config) { c.AETitle = "A\x01" }, `ae_title: at most 16 characters`},
		{"ae empty", func(c *Config) { c.AETitle = "  " }, `ae_title: at most 16 characters`},
		{"data dir", func(c *Config) { c.DataDir = "" }, "data_dir: must not be empty"},
		{"host", func(c *Config) { c.DICOM.Host = "a b" }, `dicom.host: must be an IP address or host name, got "a b"`},
		{"caller ae", func(c *Config) { c.DICOM.AllowedCallers = []Caller{{AETitle: "OK"}, {AETitle: ""}} }, "dicom.allowed_callers[1].ae_title: at most 16"},
		{"caller host", func(c *Config) { c.DICOM.AllowedCallers = []Caller{{AETitle: "OK", Host: "10.0.0.1 10.0.0.2"}} }, `dicom.allowed_callers[0].host: must be empty, an IP address or a host name, got "10.0.0.1 10.0.0.2"`},
		{"max associations", func(c *Config) { c.DICOM.MaxAssociations = 0 }, "dicom.max_associations: must be at least 1, got 0"},
		{"pdu small", func(c *Config) { c.DICOM.MaxPDULength = 4095 }, "dicom.max_pdu_length: must be 4096..16777216, got 4095"},
		{"pdu big", func(c *Config) { c.DICOM.MaxPDULength = 16777217 }, "dicom.max_pdu_length: must be 4096..16777216, got 16777217"},
		{"no operations", func(c *Config) { c.DICOM.MaxOperations = 0 }, "dicom.max_operations: must be 1..65535, got 0"},
		{"operations past the item", func(c *Config) { c.DICOM.MaxOperations = 65536 }, "dicom.max_operations: must be 1..65535, got 65536"},
		{"no ts", func(c *Config) { c.DICOM.TransferSyntaxes = nil }, "dicom.transfer_syntaxes: must list at least one"},
		{"bad ts", func(c *Config) { c.DICOM.TransferSyntaxes = []string{"1.2.840.10008.1.2", "1.2.08"} }, "dicom.transfer_syntaxes[1]: not a valid UID"},
		{"dup ts", func(c *Config) { c.DICOM.TransferSyntaxes = []string{"1.2.840.10008.1.2", "1.2.840.10008.1.2"} }, "dicom.transfer_syntaxes[1]: 1.2.840.10008.1.2 is listed twice"},
		{"unknown ts", func(c *Config) { c.DICOM.TransferSyntaxes = []string{"1.2.840.10008.1.2.4.99"} }, "dicom.transfer_syntaxes[0]: 1.2.840.10008.1.2.4.99 is not a transfer syntax PS3.6 lists"},
		{"video ts", func(c *Config) { c.DICOM.TransferSyntaxes = []string{"1.2.840.10008.1.2.7.1"} }, "does not encode stored objects"},
		{"artim", func(c *Config) { c.DICOM.Timeouts.ARTIM = 0 }, "dicom.timeouts.artim: must be a positive duration"},
		{"idle", func(c *Config) { c.DICOM.Timeouts.Idle = -time.Second }, "dicom.timeouts.idle: must be a positive duration"},
		{"dimse", func(c *Config) { c.DICOM.Timeouts.DIMSE = 0 }, "dicom.timeouts.dimse: must be a positive duration"},
		{"duplicates", func(c *Config) { c.Store.Duplicates = "merge" }, `store.duplicates: must be overwrite, keep or reject, got "merge"`},
		{"peer ae", func(c *Config) { c.Peers = []Peer{{AETitle: "", Host: "h", Port: 104}} }, "peers[0].ae_title: at most 16"},
		{"peer dup", func(c *Config) {
			c.Peers = []Peer{{AETitle: "P", Host: "h", Port: 104}, {AETitle: "P", Host: "g", Port: 104}}
		}, `peers[1].ae_title: "P" is already peers[0]`},
		{"peer host", func(c *Config) { c.Peers = []Peer{{AETitle: "P", Host: "", Port: 104}} }, "peers[0].host: must be an IP address or host name"},
		{"peer port", func(c *Config) { c.Peers = []Peer{{AETitle: "P", Host: "h", Port: 0}} }, "peers[0].port: must be 1..65535, got 0"},
		{"first pdu", func(c *Config) { c.DICOM.Timeouts.FirstPDU = 0 }, "dicom.timeouts.first_pdu: must be a positive duration"},
		{"max pending", func(c *Config) { c.DICOM.MaxPending = 0 }, "dicom.max_pending_connections: must be at least 1"},
		{"per host", func(c *Config) { c.DICOM.MaxPerHost = -1 }, "dicom.max_connections_per_host: must be 0 (no limit) or more"},
		{"tls without cert", func(c *Config) { c.DICOM.TLS.Port = 2762 }, "dicom.tls: port 2762 needs cert and key"},
		{"tls port clash", func(c *Config) { c.DICOM.TLS = TLS{Port: 11112, Cert: "c", Key: "k", ClientCerts: "none"} }, "dicom.tls.port: must differ from dicom.port"},
		{"tls client certs", func(c *Config) { c.DICOM.TLS.ClientCerts = "maybe" }, `dicom.tls.client_certs: must be none, optional or required, got "maybe"`},
		{"tls client certs without ca", func(c *Config) { c.DICOM.TLS = TLS{Port: 2762, Cert: "c", Key: "k", ClientCerts: "required"} }, "dicom.tls.ca: client_certs required needs a CA"},
		{"cert name without tls", func(c *Config) { c.DICOM.AllowedCallers = []Caller{{AETitle: "CT1", CertName: "ct1"}} }, "dicom.allowed_callers[0].cert_name: needs dicom.tls.port"},
		{"tls peer without ca", func(c *Config) { c.Peers = []Peer{{AETitle: "P", Host: "h", Port: 2762, TLS: true}} }, "peers[0].tls: needs dicom.tls.ca"},
		{"tls destination without ca", func(c *Config) { c.Pipeline.Destinations = []Peer{{AETitle: "P", Host: "h", Port: 2762, TLS: true}} }, "pipeline.destinations[0].tls: needs dicom.tls.ca"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: must be one of trace, debug, info, warn, error, got "verbose"`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: must be auto, json or console, got "xml"`},
		{"role", func(c *Config) { c.Role = "gpu" }, `role: must be all, ingest or worker, got "gpu"`},
		{"worker on sqlite", func(c *Config) { c.Role = RoleWorker }, "role: worker needs an index shared with other nodes"},
		{"ingest on sqlite", func(c *Config) { c.Role = RoleIngest }, "role: ingest needs an index shared with other nodes"},
		{"index", func(c *Config) { c.Index = "mysql://db/espnode" }, `index: must be "sqlite" or a postgres:// (postgresql://) URL`},
		{"index without host", func(c *Config) { c.Index = "postgres:///espnode" }, "index: a PostgreSQL URL is postgres://USER:PASSWORD@HOST:PORT/DATABASE"},
		{"archive", func(c *Config) { c.Archive = "/srv/archive" }, `archive: must be "file" or s3://BUCKET/PREFIX, got "/srv/archive"`},
		{"archive bucket", func(c *Config) { c.Archive = "s3://My_Bucket/x" }, `archive: s3://BUCKET/PREFIX: the bucket must be 3 to 63 lower-case letters, digits, dots and hyphens, got "My_Bucket"`},
		{"archive no bucket", func(c *Config) { c.Archive = "s3:///x" }, `got ""`},
		{"s3 endpoint", func(c *Config) { c.S3.Endpoint = "127.0.0.1:7070" }, `s3.endpoint: must be an http:// or https:// URL, got "127.0.0.1:7070"`},
		{"s3 part size", func(c *Config) { c.S3.PartSize = 1 << 20 }, "s3.part_size: must be 0 (the default) or 5242880..5368709120 bytes"},
		{"rescue after", func(c *Config) { c.Pipeline.RescueAfter = 0 }, "pipeline.rescue_after: must be a positive duration"},
		{"rescue before delivery timeout", func(c *Config) { c.Pipeline.RescueAfter = time.Minute }, "pipeline.rescue_after: must be longer than pipeline.delivery_timeout (2m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestEngines: the cluster keys take their documented values, from the file and from the
// environment, and an index URL's password never appears in an error.
func TestEngines(t *testing.T) {
	path := writeFile(t, "role: worker\nindex: postgresql://espnode:secret@db.example.org:5432/espnode\narchive: s3://dicom/node-a\ns3:\n  path_style: true\n  part_size: 8388608\n")
	c, err := Load(path, env(map[string]string{"ESPNODE_ROLE": "ingest", "ESPNODE_S3_ENDPOINT": "http://127.0.0.1:7070"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != RoleIngest || !Postgres(c.Index) || c.Archive != "s3://dicom/node-a" || !c.S3.PathStyle || c.S3.PartSize != 8<<20 ||
		c.S3.Endpoint != "http://127.0.0.1:7070" {
		t.Errorf("loaded %q %q %q %+v", c.Role, c.Index, c.Archive, c.S3)
	}
	c.Index = "postgres://espnode:secret@/espnode"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: %v", err)
	}
	if d := Default(); d.Role != RoleAll || d.Index != IndexSQLite || d.Archive != ArchiveFile {
		t.Errorf("defaults %q %q %q, want all, sqlite, file", d.Role, d.Index, d.Archive)
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.DICOM.Port = 0
	c.AETitle = ""
	c.Log.Format = "xml"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Errorf("want 3 problems, one per line, got %q", err)
	}
}
