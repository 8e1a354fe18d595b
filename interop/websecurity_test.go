package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHTTPSecurity: `espnode serve` refuses an HTTP listener other machines can reach without
// credentials and TLS; with them, on every interface, it speaks only TLS, serves DICOMweb only to
// a request with a configured token or account, leaves the health probes open, bounds request
// bodies and sends no CORS headers unless configured.
func TestHTTPSecurity(t *testing.T) {
	// Refused: every interface, no credentials, no TLS.
	cfg := filepath.Join(t.TempDir(), "open.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir: %s\ndicom: {port: %d}\nhttp: {addr: \"0.0.0.0:%d\", viewer: {addr: \"\"}}\n",
		t.TempDir(), freePort(t), freePort(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, espnodeBin, "serve", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "http.addr") || !strings.Contains(string(out), "http.auth") || !strings.Contains(string(out), "http.tls") {
		t.Fatalf("serve on 0.0.0.0 without credentials and TLS: %v\n%s", err, out)
	}

	dir := t.TempDir()
	ca := newPKI(t, dir, "hospital-web")
	cert := ca.issue(t, "espnode-web", false)
	const token = "test-token-0123456789abcdef"
	n := startNode(t, nodeOptions{http: fmt.Sprintf(`  addr: 0.0.0.0:{http_port}
  dicomweb: true
  viewer: {addr: ""}
  auth:
    tokens: [%s]
    users: [{name: radiologist, password: long-password-1}]
  tls: {cert: %s, key: %s}
  max_store_bytes: 1048576`, token, cert.cert, cert.key)})
	pool := x509.NewCertPool()
	pool.AddCert(ca.caCert)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://127.0.0.1:" + strconv.Itoa(n.httpPort)
	do := func(method, path, auth string, body []byte, header ...string) (int, http.Header) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rsp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer rsp.Body.Close()
		_, _ = io.Copy(io.Discard, rsp.Body)
		return rsp.StatusCode, rsp.Header
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/healthz", nil)
		rsp, err := client.Do(req)
		if err == nil {
			rsp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTPS on %d not answering: %v\n%s", n.httpPort, err, n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l := n.waitLog("HTTP: ", 5*time.Second); !strings.HasPrefix(fmt.Sprint(l["url"]), "https://") ||
		!strings.HasSuffix(fmt.Sprint(l["url"]), ":"+strconv.Itoa(n.httpPort)) || l["authentication"] != true {
		t.Errorf("HTTP log line: %v", l)
	}

	// Plain HTTP on the TLS port gets no DICOMweb answer.
	if rsp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://127.0.0.1:" + strconv.Itoa(n.httpPort) + "/dicom-web/studies"); err == nil {
		rsp.Body.Close()
		if rsp.StatusCode == http.StatusOK {
			t.Error("plain HTTP on the TLS listener answered 200")
		}
	}
	basicAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("radiologist:long-password-1"))
	// One part of 2 MiB: the bound stops the read inside it.
	big := append([]byte("--b\r\nContent-Type: application/dicom\r\n\r\n"), bytes.Repeat([]byte("x"), 2<<20)...)
	big = append(big, "\r\n--b--\r\n"...)
	for _, c := range []struct {
		name, method, path, auth string
		body                     []byte
		want                     int
	}{
		{"health probe open", "GET", "/healthz", "", nil, 200},
		{"QIDO without credentials", "GET", "/dicom-web/studies", "", nil, 401},
		{"metrics without credentials", "GET", "/metrics", "", nil, 401},
		{"QIDO with a wrong token", "GET", "/dicom-web/studies", "Bearer " + token[:len(token)-1] + "x", nil, 401},
		{"QIDO with the token", "GET", "/dicom-web/studies", "Bearer " + token, nil, 200},
		{"QIDO with the account", "GET", "/dicom-web/studies", basicAuth, nil, 200},
		{"STOW without credentials", "POST", "/dicom-web/studies", "", []byte("--b--\r\n"), 401},
		{"STOW over the body bound", "POST", "/dicom-web/studies", "Bearer " + token, big, 413},
		{"a path that is not a UID", "GET", "/dicom-web/studies/..%2f..%2fetc/metadata", "Bearer " + token, nil, 400},
	} {
		code, h := do(c.method, c.path, c.auth, c.body, "Content-Type", `multipart/related; type="application/dicom"; boundary=b`,
			"Origin", "https://elsewhere.example.org")
		if code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
		if code == 401 && len(h.Values("WWW-Authenticate")) == 0 {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
		if h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header %q with no origin configured", c.name, h.Get("Access-Control-Allow-Origin"))
		}
	}
}
