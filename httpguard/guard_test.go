package httpguard

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const token = "0123456789abcdef0123"

// echo answers 200 with the length of the body it could read, or 413 when the bound stopped it.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if errors.As(err, new(*http.MaxBytesError)) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	w.Header().Set("X-Read", strings.Repeat("x", int(n)))
})

func basic(name, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(name+":"+password))
}

func serve(g *Guard, method, path, authorization, origin string, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://node"+path, strings.NewReader(body))
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
	}
	rec := httptest.NewRecorder()
	g.Wrap(echo).ServeHTTP(rec, req)
	return rec
}

// TestAuthentication: with credentials configured only a request carrying one of them reaches the
// handler (the health probes excepted); without, every request does.
func TestAuthentication(t *testing.T) {
	guarded := New(Options{Tokens: []string{token, "another-token-of-16"}, Users: []User{{"radiologist", "s3cret-password"}},
		Open: []string{"/healthz"}})
	open := New(Options{})
	tests := []struct {
		name          string
		g             *Guard
		path, auth    string
		want          int
		wantChallenge bool
	}{
		{"no credentials", guarded, "/dicom-web/studies", "", 401, true},
		{"bearer token", guarded, "/dicom-web/studies", "Bearer " + token, 200, false},
		{"second bearer token, scheme in lower case", guarded, "/dicom-web/studies", "bearer another-token-of-16", 200, false},
		{"token's prefix", guarded, "/dicom-web/studies", "Bearer " + token[:16], 401, true},
		{"token with a suffix", guarded, "/dicom-web/studies", "Bearer " + token + "x", 401, true},
		{"token as a basic password", guarded, "/dicom-web/studies", basic("radiologist", token), 401, true},
		{"basic account", guarded, "/dicom-web/studies", basic("radiologist", "s3cret-password"), 200, false},
		{"basic, wrong password", guarded, "/dicom-web/studies", basic("radiologist", "s3cret-passwor"), 401, true},
		{"basic, password of another name", guarded, "/dicom-web/studies", basic("admin", "s3cret-password"), 401, true},
		{"basic, not base64", guarded, "/dicom-web/studies", "Basic !!!", 401, true},
		{"basic, no colon", guarded, "/dicom-web/studies", "Basic " + base64.StdEncoding.EncodeToString([]byte("radiologist")), 401, true},
		{"unknown scheme", guarded, "/dicom-web/studies", "Digest " + token, 401, true},
		{"health probe is open", guarded, "/healthz", "", 200, false},
		{"only the exact open path", guarded, "/healthz/x", "", 401, true},
		{"no credentials configured", open, "/dicom-web/studies", "", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(tt.g, "GET", tt.path, tt.auth, "", "")
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			challenges := rec.Header().Values("WWW-Authenticate")
			if tt.wantChallenge != (len(challenges) == 2) {
				t.Fatalf("WWW-Authenticate %q", challenges)
			}
		})
	}
	if !guarded.Authenticating() || open.Authenticating() {
		t.Error("Authenticating does not say whether credentials are needed")
	}
}

// TestMaxBody: a body over the bound stops the handler's read.
func TestMaxBody(t *testing.T) {
	g := New(Options{MaxBody: 10})
	if rec := serve(g, "POST", "/dicom-web/studies", "", "", strings.Repeat("a", 10)); rec.Code != 200 || len(rec.Header().Get("X-Read")) != 10 {
		t.Errorf("a body at the bound: %d, read %d", rec.Code, len(rec.Header().Get("X-Read")))
	}
	if rec := serve(g, "POST", "/dicom-web/studies", "", "", strings.Repeat("a", 11)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the bound: %d", rec.Code)
	}
}

// TestCORS: no CORS headers unless the origin is configured; a preflight is answered without
// credentials, and only for an allowed origin.
func TestCORS(t *testing.T) {
	off := New(Options{Tokens: []string{token}})
	on := New(Options{Tokens: []string{token}, CORSOrigins: []string{"https://viewer.example.org"}})
	anyOrigin := New(Options{CORSOrigins: []string{"*"}})
	anyGuarded := New(Options{Tokens: []string{token}, CORSOrigins: []string{"*", "https://viewer.example.org"}})
	tests := []struct {
		name        string
		g           *Guard
		method      string
		origin      string
		auth        string
		want        int
		allowOrigin string
		credentials bool
	}{
		{"off: no headers", off, "GET", "https://viewer.example.org", "Bearer " + token, 200, "", false},
		{"off: preflight needs credentials like any request", off, "OPTIONS", "https://viewer.example.org", "", 401, "", false},
		{"allowed origin", on, "GET", "https://viewer.example.org", "Bearer " + token, 200, "https://viewer.example.org", true},
		{"allowed origin without credentials", on, "GET", "https://viewer.example.org", "", 401, "https://viewer.example.org", true},
		{"allowed origin's preflight", on, "OPTIONS", "https://viewer.example.org", "", 204, "https://viewer.example.org", true},
		{"other origin", on, "GET", "https://evil.example.org", "Bearer " + token, 200, "", false},
		{"other origin's preflight", on, "OPTIONS", "https://evil.example.org", "", 401, "", false},
		{"any origin, no credentials configured", anyOrigin, "GET", "https://a.example.org", "", 200, "*", false},
		{"any origin: not with the browser's credentials", anyGuarded, "GET", "https://a.example.org", "Bearer " + token, 200, "*", false},
		{"listed beside any: with them", anyGuarded, "GET", "https://viewer.example.org", "Bearer " + token, 200, "https://viewer.example.org", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(tt.g, tt.method, "/dicom-web/studies", tt.auth, tt.origin, "")
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.allowOrigin {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tt.allowOrigin)
			}
			if got := rec.Header().Get("Access-Control-Allow-Credentials") == "true"; got != tt.credentials {
				t.Fatalf("Access-Control-Allow-Credentials %v", got)
			}
			if tt.want == 204 && rec.Header().Get("Access-Control-Allow-Methods") == "" {
				t.Fatal("preflight without Access-Control-Allow-Methods")
			}
		})
	}
}

// FuzzAuthorization: any Authorization header is refused unless it carries a configured
// credential (decoding the basic scheme's base64 included).
func FuzzAuthorization(f *testing.F) {
	f.Add("Bearer " + token)
	f.Add(basic("radiologist", "s3cret-password"))
	f.Add("Basic cmFkaW9sb2dpc3Q6czNjcmV0LXBhc3N3b3Jk=")
	f.Add("Basic " + strings.Repeat("=", 40))
	g := New(Options{Tokens: []string{token}, Users: []User{{"radiologist", "s3cret-password"}}})
	f.Fuzz(func(t *testing.T, authorization string) {
		req := httptest.NewRequest("GET", "http://node/dicom-web/studies", nil)
		req.Header.Set("Authorization", authorization)
		rec := httptest.NewRecorder()
		g.Wrap(echo).ServeHTTP(rec, req)
		if rec.Code != 200 {
			return
		}
		scheme, cred, _ := strings.Cut(authorization, " ")
		cred = strings.TrimSpace(cred)
		if strings.EqualFold(scheme, "Bearer") && cred == token {
			return
		}
		raw, err := base64.StdEncoding.DecodeString(cred)
		if strings.EqualFold(scheme, "Basic") && err == nil && string(raw) == "radiologist:s3cret-password" {
			return
		}
		t.Fatalf("let through with %q", authorization)
	})
}
