package dimse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
)

// DICOM over TLS (PS3.15 Annex B): the upper layer runs unchanged over a TLS connection. The
// acceptor gets a TLS listener (tls.NewListener) and the requestor a *tls.Config in its
// ClientConfig; which certificates, CAs and peers is the caller's business, not this package's.

// bcp195Suites are the TLS 1.2 cipher suites of the BCP 195 profiles (PS3.15 B.9 to B.11) that Go
// implements: ECDHE key exchange with AES-GCM, for RSA and ECDSA certificates. Extended BCP 195
// (B.11) allows no others, so a peer on any of the three profiles finds one of them. TLS 1.3's
// suites are not configurable in Go and all meet the profiles.
var bcp195Suites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
}

// BCP195 returns a copy of c restricted to the BCP 195 profiles of PS3.15 B.9 to B.11: TLS 1.2 or
// later, never lower (the non-downgrading profile, DCMTK's default), and the suites above.
func BCP195(c *tls.Config) *tls.Config {
	out := c.Clone()
	if out == nil {
		out = &tls.Config{}
	}
	out.MinVersion = tls.VersionTLS12
	out.CipherSuites = append([]uint16(nil), bcp195Suites...)
	return out
}

// TLS returns the state of the association's TLS connection; nil on plain TCP.
func (a *Association) TLS() *tls.ConnectionState { return a.tlsState }

// handshake runs the acceptor's side of the TLS handshake within ARTIM's first run (Sta2): a peer
// that connects and stays silent in the handshake holds its slot no longer than one that stays
// silent in plain TCP.
func (a *Association) handshake(ctx context.Context, tc *tls.Conn) error {
	hctx, cancel := context.WithDeadline(ctx, a.artim)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return err
	}
	st := tc.ConnectionState()
	a.tlsState = &st
	ev := a.log.With().Str("tls", tls.VersionName(st.Version)).Str("cipher", tls.CipherSuiteName(st.CipherSuite))
	if len(st.PeerCertificates) > 0 {
		ev = ev.Str("peer_cert", st.PeerCertificates[0].Subject.String())
	}
	a.log = ev.Logger()
	return nil
}

// dialTLS runs the requestor's side of the handshake on conn. The server name to verify is the
// host of addr unless cfg names one.
func dialTLS(ctx context.Context, conn net.Conn, addr string, cfg *tls.Config) (*tls.Conn, error) {
	c := cfg.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	tc := tls.Client(conn, c)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// CertificateNames are the names a certificate is known by, for an allow-list to match: the
// subject's common name, then the DNS, e-mail and URI subject alternative names.
func CertificateNames(c *x509.Certificate) []string {
	var out []string
	if c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	out = append(out, c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}
