package main

import (
	"strings"
	"testing"

	"github.com/espnode/espnode/config"
)

// TestMaskedConfig: the console's configuration page shows neither tokens nor passwords, and
// keeps everything else.
func TestMaskedConfig(t *testing.T) {
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Auth.Tokens = []string{"token-0123456789abcdef"}
	cfg.HTTP.Auth.Users = []config.HTTPUser{{Name: "radiologist", Password: "secret-password-1"}}
	cfg.S3.SecretAccessKey = "s3-secret-key-2"
	for _, index := range []string{"postgres://espnode:db-password-3@db.example.org/espnode", "postgres://db.example.org/espnode?user=espnode&password=db-password-3"} {
		cfg.Index = index
		out := string(maskedConfig(cfg))
		if strings.Contains(out, "db-password-3") || !strings.Contains(out, "db.example.org") {
			t.Errorf("the masked configuration shows the index's password, or no index:\n%s", out)
		}
	}
	out := string(maskedConfig(cfg))
	for _, secret := range []string{"token-0123456789abcdef", "secret-password-1", "s3-secret-key-2"} {
		if strings.Contains(out, secret) {
			t.Errorf("the masked configuration shows %q", secret)
		}
	}
	for _, kept := range []string{"radiologist", "ae_title: " + cfg.AETitle, "console: true"} {
		if !strings.Contains(out, kept) {
			t.Errorf("the masked configuration lacks %q", kept)
		}
	}
	if cfg.HTTP.Auth.Tokens[0] != "token-0123456789abcdef" || cfg.HTTP.Auth.Users[0].Password != "secret-password-1" {
		t.Error("masking changed the running configuration")
	}
}

func TestConsoleViewerURL(t *testing.T) {
	tests := []struct {
		h    config.HTTP
		want string
	}{
		{config.HTTP{DICOMweb: true, Viewer: config.HTTPViewer{Addr: "127.0.0.1:8081"}}, "http://127.0.0.1:8081"},
		{config.HTTP{DICOMweb: true, Viewer: config.HTTPViewer{Addr: ":8081"}}, "http://localhost:8081"},
		{config.HTTP{DICOMweb: true, Viewer: config.HTTPViewer{Addr: "[::]:8081"}, TLS: config.HTTPTLS{Cert: "c.pem"}}, "https://localhost:8081"},
		{config.HTTP{DICOMweb: false, Viewer: config.HTTPViewer{Addr: "127.0.0.1:8081"}}, ""},
		{config.HTTP{DICOMweb: true}, ""},
	}
	for _, tc := range tests {
		if got := consoleViewerURL(tc.h); got != tc.want {
			t.Errorf("consoleViewerURL(%+v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}
