package viewer

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// site is a viewer folder with a page, a script in a subfolder and, beside the folder, a secret
// the site must never serve (reached by a symbolic link inside it, and by dot-dot paths).
func site(t *testing.T) *Site {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "ohif")
	for name, content := range map[string]string{
		"index.html":         "<html>OHIF</html>",
		"app.bundle.js":      "console.log('app')",
		"assets/logo.svg":    "<svg/>",
		"../secret.txt":      "secret",
		"assets/nested/x.js": "x",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(parent, "secret.txt"), filepath.Join(dir, "leak.txt")); err != nil {
		t.Fatal(err)
	}
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/dicom+json")
		io.WriteString(w, "[]")
	})
	s, err := New(Options{Dir: dir, DICOMwebRoot: "/dicom-web"}, web)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSite(t *testing.T) {
	s := site(t)
	tests := []struct {
		method, path string
		want         int
		body         string // a substring of the body; "" checks none
		contentType  string // its prefix
	}{
		{"GET", "/", 200, "OHIF", "text/html"},
		{"GET", "/viewer?StudyInstanceUIDs=1.2.3", 200, "OHIF", "text/html"},
		{"GET", "/segmentation/extra/route", 200, "OHIF", "text/html"},
		{"GET", "/index.html", 200, "OHIF", "text/html"},
		{"GET", "/app.bundle.js", 200, "console.log", "text/javascript"},
		{"GET", "/assets/logo.svg", 200, "<svg/>", "image/svg+xml"},
		{"HEAD", "/assets/nested/x.js", 200, "", "text/javascript"},
		{"GET", "/app-config.js", 200, "window.location.origin + '/dicom-web'", "text/javascript"},
		{"GET", "/dicom-web/studies", 200, "[]", "application/dicom+json"},
		{"POST", "/dicom-web/studies", 200, "[]", "application/dicom+json"},
		{"GET", "/missing.js", 404, "", ""},
		{"GET", "/../secret.txt", 404, "", ""},
		{"GET", "/assets/../../secret.txt", 404, "", ""},
		{"GET", "/leak.txt", 404, "", ""},
		{"POST", "/", 405, "", ""},
		{"DELETE", "/app.bundle.js", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://viewer"+tt.path, nil)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %.200s", rec.Code, tt.want, rec.Body.String())
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Fatal("served a file outside the site's folder")
			}
			if tt.body != "" && !strings.Contains(rec.Body.String(), tt.body) {
				t.Fatalf("body %.300q lacks %q", rec.Body.String(), tt.body)
			}
			if ct := rec.Header().Get("Content-Type"); tt.contentType != "" && !strings.HasPrefix(ct, tt.contentType) {
				t.Fatalf("Content-Type %q, want %s", ct, tt.contentType)
			}
		})
	}
}

// TestAppConfig: the configuration names one DICOMweb data source, this node's, on the page's
// origin, with the options the viewer's SEG display needs.
func TestAppConfig(t *testing.T) {
	rec := httptest.NewRecorder()
	site(t).ServeHTTP(rec, httptest.NewRequest("GET", "http://viewer/app-config.js", nil))
	cfg := rec.Body.String()
	for _, want := range []string{
		"defaultDataSourceName: 'espnode'",
		"qidoRoot: window.location.origin + '/dicom-web'",
		"wadoRoot: window.location.origin + '/dicom-web'",
		"imageRendering: 'wadors'",
		"bulkDataURI: { enabled: true }",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("app-config.js lacks %q:\n%s", want, cfg)
		}
	}
	if rec.Header().Get("Cache-Control") != "no-cache" {
		t.Error("app-config.js may be cached: a changed configuration would not reach the browser")
	}
}

func TestNotInstalled(t *testing.T) {
	_, err := New(Options{Dir: t.TempDir(), DICOMwebRoot: "/dicom-web"}, http.NotFoundHandler())
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "scripts/deps.sh") {
		t.Fatalf("error %v: want ErrNotInstalled naming scripts/deps.sh", err)
	}
}
