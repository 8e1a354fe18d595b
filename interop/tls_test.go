package interop

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/espnode/espnode/internal/testutil"
)

// DICOM over TLS (PS3.15 Annex B) with DCMTK's echoscu, storescu and storescp in both directions.
// The certificates are made here, in the test's temporary folder: no key is ever committed.

// pki is a CA and the certificates it signed, as PEM files.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *rsa.PrivateKey
	caFile string
}

// keyPair is a certificate's and its private key's PEM files.
type keyPair struct{ cert, key string }

func newKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

var serial int64 = 1

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	key := newKey(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"espnode tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: dir, caCert: cert, caKey: key, caFile: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

// issue signs a certificate for both TLS roles, valid for 127.0.0.1 and localhost; expired makes
// one whose validity ended yesterday.
func (p *pki) issue(t *testing.T, cn string, expired bool) keyPair {
	t.Helper()
	key := newKey(t)
	serial++
	notBefore, notAfter := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if expired {
		notBefore, notAfter = time.Now().Add(-72*time.Hour), time.Now().Add(-24*time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kp := keyPair{cert: filepath.Join(p.dir, cn+".pem"), key: filepath.Join(p.dir, cn+"-key.pem")}
	writePEM(t, kp.cert, "CERTIFICATE", der)
	writePEM(t, kp.key, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	return kp
}

// tlsArgs are DCMTK's options for an authenticated TLS connection verified against ca.
func tlsArgs(kp keyPair, ca string) []string {
	return []string{"+tls", kp.key, kp.cert, "+cf", ca}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t, dir, "hospital")
	wrong := newPKI(t, dir, "elsewhere")
	nodeCert := ca.issue(t, "espnode", false)
	modality := ca.issue(t, "modality1", false)
	other := ca.issue(t, "workstation7", false)
	expired := ca.issue(t, "expired-client", true)
	stranger := wrong.issue(t, "stranger", false)
	storescpCert := ca.issue(t, "storescp", false)
	storescpExpired := ca.issue(t, "storescp-expired", true)

	f := newFixture(t)
	scpPort, expiredPort := freePort(t), freePort(t)
	received := t.TempDir()
	storescp := testutil.Tool(t, "storescp", "dcmtk")
	startProcess(t, "storescp +tls", scpPort, exec.Command(storescp, append(tlsArgs(storescpCert, ca.caFile), "-aet", "STORESCP", "-od", received, strconv.Itoa(scpPort))...))
	startProcess(t, "storescp +tls (expired certificate)", expiredPort, exec.Command(storescp, append(tlsArgs(storescpExpired, ca.caFile), "-aet", "OLDSCP", "-od", t.TempDir(), strconv.Itoa(expiredPort))...))

	n := startNode(t, nodeOptions{
		tlsPort: true,
		dicom: fmt.Sprintf(`  tls:
    port: {tls_port}
    cert: %s
    key: %s
    ca: %s
    client_certs: optional
  allowed_callers:
    - {ae_title: MODALITY1, cert_name: modality1}
    - {ae_title: STORESCU}
    - {ae_title: MOVESCU}`, nodeCert.cert, nodeCert.key, ca.caFile),
		peers: []string{
			fmt.Sprintf("{ae_title: STORESCP, host: 127.0.0.1, port: %d, tls: true}", scpPort),
			fmt.Sprintf("{ae_title: OLDSCP, host: 127.0.0.1, port: %d, tls: true}", expiredPort),
		},
	})
	tlsPort := strconv.Itoa(n.tlsPort)
	handshakeFailures := func() int { return len(n.logLines("TLS handshake failed")) }

	t.Run("echoscu +tls with a client certificate the allow-list names", func(t *testing.T) {
		out, err := run(t, "echoscu", "dcmtk", append(tlsArgs(modality, ca.caFile), "-aet", "MODALITY1", "-aec", "ESPNODE", "127.0.0.1", tlsPort)...)
		if err != nil {
			t.Fatalf("echoscu +tls: %v\n%s", err, out)
		}
	})
	t.Run("storescu +tls", func(t *testing.T) {
		out, err := run(t, "storescu", "dcmtk", append(tlsArgs(other, ca.caFile), "-aet", "STORESCU", "-aec", "ESPNODE", "127.0.0.1", tlsPort, f.ctPlain)...)
		if err != nil {
			t.Fatalf("storescu +tls: %v\n%s", err, out)
		}
		if !n.archived()[f.ctPlainUID] {
			t.Fatal("the instance sent over TLS is not in the archive")
		}
		l := n.waitLog("association accepted", 5*time.Second)
		if l["tls"] == nil || !strings.Contains(fmt.Sprint(l["peer_cert"]), "workstation7") {
			t.Fatalf("the accepted association's log does not show TLS and the client certificate: %v", l)
		}
	})
	t.Run("allow-list: the AE title with another certificate is refused", func(t *testing.T) {
		out, err := run(t, "echoscu", "dcmtk", append(tlsArgs(other, ca.caFile), "-aet", "MODALITY1", "-aec", "ESPNODE", "127.0.0.1", tlsPort)...)
		if err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
			t.Fatalf("echoscu as MODALITY1 with workstation7's certificate: %v\n%s", err, out)
		}
		n.waitLog("not with this TLS client certificate", 5*time.Second)
	})
	t.Run("allow-list: the AE title without TLS is refused", func(t *testing.T) {
		out, err := run(t, "echoscu", "dcmtk", "-aet", "MODALITY1", "-aec", "ESPNODE", "127.0.0.1", strconv.Itoa(n.port))
		if err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
			t.Fatalf("echoscu as MODALITY1 over plain TCP: %v\n%s", err, out)
		}
	})
	t.Run("the requestor trusts another CA: refused by the requestor", func(t *testing.T) {
		out, err := run(t, "echoscu", "dcmtk", append(tlsArgs(modality, wrong.caFile), "-aet", "MODALITY1", "-aec", "ESPNODE", "127.0.0.1", tlsPort)...)
		if err == nil {
			t.Fatalf("echoscu trusting another CA associated:\n%s", out)
		}
		n.waitLog("TLS handshake failed", 5*time.Second)
	})
	t.Run("client certificate from another CA: refused and logged", func(t *testing.T) {
		before := handshakeFailures()
		out, err := run(t, "echoscu", "dcmtk", append(tlsArgs(stranger, ca.caFile), "-aet", "STORESCU", "-aec", "ESPNODE", "127.0.0.1", tlsPort)...)
		if err == nil {
			t.Fatalf("echoscu with a certificate of another CA associated:\n%s", out)
		}
		waitFor(t, "a logged handshake failure", func() bool { return handshakeFailures() > before })
		if l := n.logLines("TLS handshake failed"); !strings.Contains(fmt.Sprint(l[len(l)-1]["error"]), "unknown authority") {
			t.Fatalf("handshake failure logged as %v, want the unknown authority", l[len(l)-1])
		}
	})
	t.Run("expired client certificate: refused and logged", func(t *testing.T) {
		before := handshakeFailures()
		out, err := run(t, "echoscu", "dcmtk", append(tlsArgs(expired, ca.caFile), "-aet", "STORESCU", "-aec", "ESPNODE", "127.0.0.1", tlsPort)...)
		if err == nil {
			t.Fatalf("echoscu with an expired certificate associated:\n%s", out)
		}
		waitFor(t, "a logged handshake failure", func() bool { return handshakeFailures() > before })
		if l := n.logLines("TLS handshake failed"); !strings.Contains(fmt.Sprint(l[len(l)-1]["error"]), "expired") {
			t.Fatalf("handshake failure logged as %v, want the expiry", l[len(l)-1])
		}
	})
	t.Run("C-MOVE to storescp +tls", func(t *testing.T) {
		out, err := run(t, "movescu", "dcmtk", "-aet", "MOVESCU", "-aec", "ESPNODE", "-aem", "STORESCP", "-S", "-k", "QueryRetrieveLevel=IMAGE",
			"-k", "StudyInstanceUID="+f.study, "-k", "SeriesInstanceUID="+tagValue(t, f.ctPlain, "0020,000e"), "-k", "SOPInstanceUID="+f.ctPlainUID,
			"127.0.0.1", strconv.Itoa(n.port))
		if err != nil {
			t.Fatalf("movescu: %v\n%s", err, out)
		}
		waitFor(t, "the instance at storescp", func() bool {
			entries, _ := os.ReadDir(received)
			return len(entries) == 1
		})
	})
	t.Run("C-MOVE to a TLS peer with an expired certificate: refused and logged", func(t *testing.T) {
		out, _ := run(t, "movescu", "dcmtk", "-aet", "MOVESCU", "-aec", "ESPNODE", "-aem", "OLDSCP", "-S", "-k", "QueryRetrieveLevel=IMAGE",
			"-k", "StudyInstanceUID="+f.study, "-k", "SeriesInstanceUID="+tagValue(t, f.ctPlain, "0020,000e"), "-k", "SOPInstanceUID="+f.ctPlainUID,
			"127.0.0.1", strconv.Itoa(n.port))
		if !strings.Contains(out, "Refused: OutOfResourcesSubOperations") && !strings.Contains(out, "A702") {
			t.Fatalf("movescu to a peer with an expired certificate:\n%s", out)
		}
		l := n.waitLog("C-MOVE: cannot associate with the destination", 5*time.Second)
		if !strings.Contains(fmt.Sprint(l["error"]), "expired") {
			t.Fatalf("C-MOVE failure logged as %v, want the expiry", l)
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
