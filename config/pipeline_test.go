package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPipelineDefaults(t *testing.T) {
	c := Default()
	p := c.Pipeline
	if p.Workers != 0 || p.SeriesMode || p.SeriesIdle != 5*time.Second || !p.ReplyToSender || len(p.Destinations) != 0 {
		t.Errorf("pipeline defaults: %+v", p)
	}
	if p.DeliveryRetry.MaxAttempts < 2 || p.DeliveryRetry.Initial <= 0 || p.DeliveryRetry.Max < p.DeliveryRetry.Initial {
		t.Errorf("delivery retry defaults: %+v", p.DeliveryRetry)
	}
	// The default routing table, config/default.yaml's pipeline.routing: every modality it
	// names and the channels it can reach (cmd/espnode's TestDefaultRouting has the decisions).
	want := map[string][]string{"DMS": {"dermoscopy"}, "XC": {"dermoscopy"}, "CR": {"none", "xray"}, "DX": {"none", "xray"},
		"US": {"none", "ultrasound"}, "OP": {"fundus"}, "SM": {"microscopy"}, "GM": {"microscopy"}, "ES": {"colonoscopy", "none"}}
	got := map[string][]string{}
	reasons := map[string]bool{}
	for _, r := range p.Routing {
		for _, m := range r.Modality {
			if !slices.Contains(got[m], r.Channel) {
				got[m] = append(got[m], r.Channel)
				slices.Sort(got[m])
			}
		}
		if r.Channel == ChannelNone {
			reasons[r.Reason] = true
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("default routing covers %v, want %v", got, want)
	}
	// Each none rule of the defaults names its reason (the metric label).
	if len(reasons) != 4 || reasons[""] {
		t.Errorf("reasons of the none rules: %v", reasons)
	}
	if !c.Model.RejectImplausible {
		t.Error("model.reject_implausible is off by default")
	}
	if c.Model.Path != "" || c.Model.Provider != "auto" || c.HTTP.Addr != "127.0.0.1:8080" {
		t.Errorf("model/http defaults: %+v %+v", c.Model, c.HTTP)
	}
}

func TestPipelineFileAndEnv(t *testing.T) {
	path := writeFile(t, `
pipeline:
  series_mode: true
  routing:
    - {channel: none, calling_ae: [TEACHING]}
    - {channel: xray, modality: [CR], body_part_examined: [CHEST]}
    - {channel: none, reason: not_chest, modality: [CR], anatomic_region: ["", "SCT:51185008"], view_position: [LL], description: [HIP]}
  destinations:
    - {ae_title: PACS, host: pacs.example.org, port: 104}
`)
	c, err := Load(path, env(map[string]string{"ESPNODE_PIPELINE_WORKERS": "3", "ESPNODE_HTTP_ADDR": "", "ESPNODE_MODEL_PROVIDER": "cpu",
		"ESPNODE_MODEL_REJECT_IMPLAUSIBLE": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Pipeline.SeriesMode || c.Pipeline.Workers != 3 || c.Model.Provider != "cpu" || c.Model.RejectImplausible {
		t.Errorf("file and environment not applied: %+v %+v", c.Pipeline, c.Model)
	}
	if r := c.Pipeline.Routing; len(r) != 3 || r[1].BodyPartExamined[0] != "CHEST" || r[2].Reason != "not_chest" ||
		len(r[2].AnatomicRegion) != 2 || r[2].ViewPosition[0] != "LL" || r[2].Description[0] != "HIP" {
		t.Errorf("a routing list in a file must replace the default list: %+v", c.Pipeline.Routing)
	}
	if d := c.Pipeline.Destinations; len(d) != 1 || d[0].String() != "PACS@pacs.example.org:104" {
		t.Errorf("destinations %+v", d)
	}
}

func TestParsePeer(t *testing.T) {
	p, err := ParsePeer("STORESCP@127.0.0.1:11113")
	if err != nil || p != (Peer{AETitle: "STORESCP", Host: "127.0.0.1", Port: 11113}) {
		t.Errorf("ParsePeer: %+v, %v", p, err)
	}
	for _, bad := range []string{"STORESCP", "A@host", "A@host:x", "A@:"} {
		if _, err := ParsePeer(bad); err == nil {
			t.Errorf("ParsePeer(%q) succeeded", bad)
		}
	}
}

func TestValidatePipelineNamesKeys(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"workers", func(c *Config) { c.Pipeline.Workers = -1 }, "pipeline.workers: must be 0"},
		{"series idle", func(c *Config) { c.Pipeline.SeriesIdle = 0 }, "pipeline.series_idle: must be a positive duration"},
		{"attempts", func(c *Config) { c.Pipeline.DeliveryRetry.MaxAttempts = 0 }, "pipeline.delivery_retry.max_attempts: must be at least 1"},
		{"backoff order", func(c *Config) { c.Pipeline.SegmentRetry.Max = time.Millisecond }, "pipeline.segment_retry.max: must not be shorter than"},
		{"channel", func(c *Config) { c.Pipeline.Routing = []Route{{Channel: "brain"}} }, `pipeline.routing[0].channel: must be one of dermoscopy`},
		{"sop class", func(c *Config) { c.Pipeline.Routing = []Route{{Channel: "xray", SOPClassUID: []string{"1.02"}}} }, "pipeline.routing[0].sop_class_uid[0]"},
		{"region", func(c *Config) { c.Pipeline.Routing = []Route{{Channel: "xray", AnatomicRegion: []string{"51185008"}}} },
			`pipeline.routing[0].anatomic_region[0]: must be SCHEME:VALUE`},
		{"region scheme", func(c *Config) {
			c.Pipeline.Routing = []Route{{Channel: "xray", AnatomicRegion: []string{":51185008"}}}
		},
			`pipeline.routing[0].anatomic_region[0]`},
		{"reason on a channel", func(c *Config) { c.Pipeline.Routing = []Route{{Channel: "xray", Reason: "chest"}} },
			`pipeline.routing[0].reason: is for channel none rules`},
		{"reason label", func(c *Config) { c.Pipeline.Routing = []Route{{Channel: "none", Reason: "Not Chest"}} },
			`pipeline.routing[0].reason: must be 1 to 64 lower-case letters`},
		{"dest ae", func(c *Config) { c.Pipeline.Destinations = []Peer{{AETitle: "", Host: "h", Port: 104}} }, "pipeline.destinations[0].ae_title"},
		{"dest port", func(c *Config) { c.Pipeline.Destinations = []Peer{{AETitle: "A", Host: "h", Port: 0}} }, "pipeline.destinations[0].port: must be 1..65535"},
		{"dest dup", func(c *Config) {
			c.Pipeline.Destinations = []Peer{{AETitle: "A", Host: "h", Port: 1}, {AETitle: "A", Host: "h", Port: 1}}
		}, "pipeline.destinations[1]: A@h:1 is already pipeline.destinations[0]"},
		{"provider", func(c *Config) { c.Model.Provider = "rocm" }, `model.provider: must be one of auto, cpu`},
		{"batch", func(c *Config) { c.Model.Batch = -1 }, "model.batch"},
		{"http", func(c *Config) { c.HTTP.Addr = "8080" }, `http.addr: must be HOST:PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: %v, want it to contain %q", err, tt.want)
			}
		})
	}
	c := Default()
	c.HTTP.Addr = ""
	if err := c.Validate(); err != nil {
		t.Errorf("http.addr \"\" (off) refused: %v", err)
	}
}
