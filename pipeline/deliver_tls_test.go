package pipeline

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/testutil"
)

// testCA is a certificate authority of one test, writing PEM files into dir.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{dir: dir, cert: cert, key: key, file: filepath.Join(dir, name+"-ca.pem")}
	writeTestPEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue signs a certificate for 127.0.0.1 for both TLS roles and returns its and its key's files.
func (ca *testCA) issue(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, cn+".pem"), filepath.Join(ca.dir, cn+"-key.pem")
	writeTestPEM(t, certFile, "CERTIFICATE", der)
	writeTestPEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writeTestPEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientTLS is the node's configuration towards TLS peers: its certificate, and the CA that
// verifies theirs.
func clientTLS(t *testing.T, certFile, keyFile, caFile string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return dimse.BCP195(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool})
}

// TestDeliveryOverTLS: a destination marked TLS gets the SEG from DCMTK's storescp +tls; one
// whose certificate the node's CA did not sign, or a TLS destination without a TLS
// configuration, fails the delivery (to be retried) rather than sending in the clear.
func TestDeliveryOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, dir, "ca"), newTestCA(t, dir, "other")
	scpCert, scpKey := ca.issue(t, "storescp")
	nodeCert, nodeKey := ca.issue(t, "espnode")
	received, port := startStorescp(t, "+tls", scpKey, scpCert, "+cf", ca.file)
	dest := Peer{AETitle: "STORESCP", Host: "127.0.0.1", Port: port, TLS: true}
	n := startPipeline(t, t.TempDir(), func(c *Config) { c.Destinations = []Peer{dest} }, nil)
	seg := putFile(t, n.pl, testutil.SharedData(t, "dicom", "SEG", "dcmqi_partial_overlaps_seg.dcm"), "SCU")
	args := DeliverArgs{SEGInstanceUID: seg.SOPInstanceUID, AETitle: dest.AETitle, Host: dest.Host, Port: dest.Port}
	w := &deliverWorker{p: n.pl}

	n.pl.opts.TLS = nil
	if err := w.send(context.Background(), args); err == nil || !strings.Contains(err.Error(), "no TLS configuration") {
		t.Errorf("TLS destination without a TLS configuration: %v", err)
	}
	n.pl.opts.TLS = clientTLS(t, nodeCert, nodeKey, other.file)
	if err := w.send(context.Background(), args); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("destination certificate from a CA the node does not trust: %v", err)
	}
	n.pl.opts.TLS = clientTLS(t, nodeCert, nodeKey, ca.file)
	if err := w.send(context.Background(), args); err != nil {
		t.Fatalf("delivery over TLS: %v", err)
	}
	if _, err := os.Stat(filepath.Join(received, "SG."+seg.SOPInstanceUID)); err != nil {
		t.Errorf("storescp +tls holds no SEG: %v", err)
	}
}
