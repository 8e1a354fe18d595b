package dimse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// testCA makes a CA and certificates it signs, in memory, for the TLS tests of this package.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, cn string, serial int64) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestTLSAssociation: an association over TLS with mutual authentication; the policy sees the
// verified client certificate, and a peer that never completes the handshake is let go within the
// first-PDU deadline.
func TestTLSAssociation(t *testing.T) {
	ca := newTestCA(t)
	var mu sync.Mutex
	var seen []string
	logs := &lockedBuffer{}
	ts := startServerOn(t, func(s *Server) {
		s.Policy.CallerAllowed = func(_ context.Context, r Requestor) bool {
			mu.Lock()
			defer mu.Unlock()
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				seen = append(seen, CertificateNames(r.TLS.PeerCertificates[0])...)
			}
			return true
		}
		s.Timeouts.FirstPDU = 300 * time.Millisecond
		s.Logger = zerolog.New(logs)
	}, func(ln net.Listener) net.Listener {
		return tls.NewListener(ln, BCP195(&tls.Config{Certificates: []tls.Certificate{ca.issue(t, "espnode", 2)},
			ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert}))
	})

	cfg := clientConfig()
	cfg.TLS = BCP195(&tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{ca.issue(t, "modality1", 3)}})
	c, err := Dial(context.Background(), ts.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Association().TLS(); st == nil || st.Version < tls.VersionTLS12 {
		t.Fatalf("client association TLS state %+v, want TLS 1.2 or later", st)
	}
	if st, err := c.Echo(context.Background()); err != nil || st.Code != StatusSuccess {
		t.Fatalf("echo over TLS: %v %v", st, err)
	}
	_ = c.Release(context.Background())
	mu.Lock()
	if len(seen) == 0 || seen[0] != "modality1" {
		t.Errorf("the policy saw certificate names %v, want modality1 first", seen)
	}
	mu.Unlock()

	t.Run("no client certificate", func(t *testing.T) {
		cfg := clientConfig()
		cfg.TLS = &tls.Config{RootCAs: ca.pool}
		if c, err := Dial(context.Background(), ts.addr, cfg); err == nil {
			c.Abort()
			t.Fatal("associated without the required client certificate")
		}
	})
	t.Run("server not trusted", func(t *testing.T) {
		cfg := clientConfig()
		cfg.TLS = &tls.Config{RootCAs: newTestCA(t).pool, Certificates: []tls.Certificate{ca.issue(t, "modality1", 4)}}
		_, err := Dial(context.Background(), ts.addr, cfg)
		if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
			t.Fatalf("dial with another CA: %v, want a TLS handshake error", err)
		}
	})
	t.Run("silent in the handshake", func(t *testing.T) {
		p := dialRaw(t, ts.addr)
		if !p.closedWithin(3 * time.Second) {
			t.Fatal("a connection silent in the TLS handshake outlived the first-PDU deadline")
		}
		deadline := time.Now().Add(3 * time.Second)
		for !strings.Contains(logs.String(), "TLS handshake failed") {
			if time.Now().After(deadline) {
				t.Fatal("the failed handshake was not logged")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
