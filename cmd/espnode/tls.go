package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dimse"
)

// tlsConfigs builds the TLS configurations of dicom.tls: the listener's (nil when there is no TLS
// port) and the one for associations to peers marked tls (nil when no CA is configured). Both
// follow the BCP 195 profiles of PS3.15 Annex B.
func tlsConfigs(t config.TLS) (server, client *tls.Config, err error) {
	var certs []tls.Certificate
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("dicom.tls.cert/key: %w", err)
		}
		certs = []tls.Certificate{cert}
	}
	var pool *x509.CertPool
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, nil, fmt.Errorf("dicom.tls.ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("dicom.tls.ca: %s holds no PEM certificate", t.CA)
		}
	}
	if t.Port != 0 {
		server = dimse.BCP195(&tls.Config{Certificates: certs, ClientCAs: pool})
		switch t.ClientCerts {
		case config.ClientCertsOptional:
			server.ClientAuth = tls.VerifyClientCertIfGiven
		case config.ClientCertsRequired:
			server.ClientAuth = tls.RequireAndVerifyClientCert
		default:
			server.ClientAuth = tls.NoClientCert
		}
	}
	if pool != nil {
		client = dimse.BCP195(&tls.Config{Certificates: certs, RootCAs: pool})
	}
	return server, client, nil
}
