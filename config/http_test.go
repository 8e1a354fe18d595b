package config

import (
	"strings"
	"testing"
)

// TestValidateHTTP: a listener other machines can reach needs credentials and TLS; the keys of
// the http section are checked and named.
func TestValidateHTTP(t *testing.T) {
	secured := func(c *Config) {
		c.HTTP.Auth.Tokens = []string{"0123456789abcdef"}
		c.HTTP.TLS = HTTPTLS{Cert: "cert.pem", Key: "key.pem"}
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" when valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"localhost", func(c *Config) { c.HTTP.Addr = "localhost:8080" }, ""},
		{"IPv6 loopback", func(c *Config) { c.HTTP.Addr = "[::1]:8080" }, ""},
		{"viewer off", func(c *Config) { c.HTTP.Viewer.Addr = "" }, ""},
		{"every interface without credentials", func(c *Config) { c.HTTP.Addr = ":8080" }, "http.addr: :8080 is reachable from other machines: set http.auth"},
		{"viewer on a LAN address without TLS", func(c *Config) {
			c.HTTP.Viewer.Addr = "10.0.0.5:8081"
			c.HTTP.Auth.Users = []HTTPUser{{"radiologist", "long-enough"}}
		}, "http.viewer.addr: 10.0.0.5:8081 is reachable from other machines: set http.tls.cert"},
		{"reachable with credentials and TLS", func(c *Config) { secured(c); c.HTTP.Addr = "0.0.0.0:8443" }, ""},
		{"cert without key", func(c *Config) { c.HTTP.TLS.Cert = "cert.pem" }, "http.tls: cert and key go together"},
		{"short token", func(c *Config) { c.HTTP.Auth.Tokens = []string{"short"} }, "http.auth.tokens[0]: must be at least 16 characters"},
		{"token with a space", func(c *Config) { c.HTTP.Auth.Tokens = []string{"0123456789 abcdef"} }, "http.auth.tokens[0]"},
		{"user with a colon", func(c *Config) { c.HTTP.Auth.Users = []HTTPUser{{"a:b", "long-enough"}} }, "http.auth.users[0].name"},
		{"user twice", func(c *Config) {
			c.HTTP.Auth.Users = []HTTPUser{{"a", "long-enough"}, {"a", "long-enough"}}
		}, `http.auth.users[1].name: "a" is listed twice`},
		{"short password", func(c *Config) { c.HTTP.Auth.Users = []HTTPUser{{"a", "short"}} }, "http.auth.users[0].password"},
		{"CORS origin with a path", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://viewer.example.org/app"} }, "http.cors_origins[0]"},
		{"CORS origin", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://viewer.example.org", "*"} }, ""},
		{"viewer without DICOMweb", func(c *Config) { c.HTTP.DICOMweb = false }, "http.viewer.addr: the viewer reads the node through DICOMweb"},
		{"viewer on the http port", func(c *Config) { c.HTTP.Viewer.Addr = c.HTTP.Addr }, "http.viewer.addr: must differ from http.addr"},
		{"both on ephemeral ports", func(c *Config) { c.HTTP.Addr, c.HTTP.Viewer.Addr = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"public URL", func(c *Config) { c.HTTP.PublicURL = "pacs.example.org" }, "http.public_url"},
		{"body bound", func(c *Config) { c.HTTP.MaxStoreBytes = 1000 }, "http.max_store_bytes"},
		{"results bound", func(c *Config) { c.HTTP.MaxResults = 0 }, "http.max_results"},
		{"bulk data threshold", func(c *Config) { c.HTTP.BulkDataThreshold = 10 }, "http.bulk_data_threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestHTTPDefaults: DICOMweb and the viewer are on, on loopback, with no credentials and no CORS.
func TestHTTPDefaults(t *testing.T) {
	h := Default().HTTP
	if !h.DICOMweb || h.Addr != "127.0.0.1:8080" || h.Viewer.Addr != "127.0.0.1:8081" || len(h.CORSOrigins) != 0 ||
		len(h.Auth.Tokens) != 0 || h.TLS.Cert != "" || h.MaxStoreBytes != 4<<30 {
		t.Fatalf("http defaults: %+v", h)
	}
}

// TestHTTPTokensFromEnvironment: tokens come from the environment as a comma-separated list.
func TestHTTPTokensFromEnvironment(t *testing.T) {
	c, err := Load("", env(map[string]string{"ESPNODE_HTTP_AUTH_TOKENS": "0123456789abcdef,fedcba9876543210"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.HTTP.Auth.Tokens; len(got) != 2 || got[0] != "0123456789abcdef" || got[1] != "fedcba9876543210" {
		t.Fatalf("tokens %q", got)
	}
}
