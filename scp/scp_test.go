package scp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/store"
)

func TestStoreStatus(t *testing.T) {
	tests := []struct {
		err  error
		want uint16
	}{
		{fmt.Errorf("put: %w", store.ErrMismatch), dimse.StatusDataSetDoesNotMatchClass},
		{fmt.Errorf("put: %w", store.ErrInvalidUID), dimse.StatusCannotUnderstand},
		{fmt.Errorf("put: %w", store.ErrCannotUnderstand), dimse.StatusCannotUnderstand},
		{fmt.Errorf("put: %w", store.ErrDuplicate), dimse.StatusDuplicateSOPInstance},
		{fmt.Errorf("put: %w: %w", store.ErrOutOfResources, syscall.ENOSPC), dimse.StatusOutOfResources},
		{fmt.Errorf("write: %w", syscall.ENOSPC), dimse.StatusOutOfResources},
		{errors.New("something else"), dimse.StatusOutOfResources},
		{fmt.Errorf("store: receiving the data set: %w", dimse.ErrReleaseRequested), dimse.StatusCannotUnderstand},
	}
	for _, tt := range tests {
		st := storeStatus(tt.err)
		if st.Code != tt.want {
			t.Errorf("%v: status 0x%04X, want 0x%04X", tt.err, st.Code, tt.want)
		}
		if st.ErrorComment == "" {
			t.Errorf("%v: no error comment", tt.err)
		}
	}
}

func TestPolicy(t *testing.T) {
	s := New(Options{
		AETitle:          "ESPNODE",
		TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian, dimse.ImplicitVRLittleEndian},
		AllowedCallers: []Caller{
			{AETitle: "CT1", Host: "10.0.0.21"},
			{AETitle: "LOCAL", Host: "localhost"},
			{AETitle: "ANYWHERE"},
		},
	}, nil, nil)
	p := s.Policy()
	addr := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000} }
	callers := []struct {
		ae, ip string
		want   bool
	}{
		{"CT1", "10.0.0.21", true},
		{"CT1", "10.0.0.22", false},
		{"LOCAL", "127.0.0.1", true},
		{"LOCAL", "10.0.0.21", false},
		{"ANYWHERE", "192.0.2.7", true},
		{"STRANGER", "10.0.0.21", false},
	}
	for _, c := range callers {
		if got := p.CallerAllowed(context.Background(), dimse.Requestor{CallingAE: c.ae, Addr: addr(c.ip)}); got != c.want {
			t.Errorf("caller %s from %s allowed = %v, want %v", c.ae, c.ip, got, c.want)
		}
	}
	syntaxes := []struct {
		abstract string
		want     int
	}{
		{dimse.VerificationSOPClass, 2},
		{"1.2.840.10008.5.1.4.1.1.66.4", 2}, // Segmentation Storage
		{"1.2.840.10008.5.1.4.1.1.77.1.4", 2},
		{"1.2.840.10008.5.1.4.1.2.2.1", 2}, // Study Root Query/Retrieve FIND
		{"1.2.840.10008.5.1.4.1.2.2.3", 2}, // Study Root Query/Retrieve GET
		{"1.2.3.4", 0},
	}
	for _, sx := range syntaxes {
		if got := len(p.TransferSyntaxes(context.Background(), sx.abstract)); got != sx.want {
			t.Errorf("%s: %d transfer syntaxes, want %d", sx.abstract, got, sx.want)
		}
	}
	if New(Options{}, nil, nil).Policy().CallerAllowed != nil {
		t.Error("an empty allow-list must let everyone in")
	}
}

func TestStorageSOPClassTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range storageSOPClasses {
		if seen[c.UID] {
			t.Errorf("%s listed twice", c.UID)
		}
		seen[c.UID] = true
		if c.Name == "" {
			t.Errorf("%s has no name", c.UID)
		}
	}
	if StorageSOPClassName("1.2.840.10008.5.1.4.1.1.66.4") != "Segmentation Storage" {
		t.Error("Segmentation Storage missing")
	}
}

// TestPolicyCertName: an allow-list entry with cert_name needs a verified client certificate that
// carries the name; the AE title alone, or another certificate, is not enough.
func TestPolicyCertName(t *testing.T) {
	p := New(Options{AETitle: "ESPNODE", AllowedCallers: []Caller{{AETitle: "CT1", CertName: "ct1.example.org"}, {AETitle: "ANY"}}}, nil, nil).Policy()
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 21), Port: 4000}
	state := func(cn string, dns ...string) *tls.ConnectionState {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	unverified := state("ct1.example.org")
	unverified.VerifiedChains = nil
	tests := []struct {
		name string
		r    dimse.Requestor
		want bool
	}{
		{"common name", dimse.Requestor{CallingAE: "CT1", Addr: addr, TLS: state("CT1.example.org")}, true},
		{"DNS name", dimse.Requestor{CallingAE: "CT1", Addr: addr, TLS: state("scanner", "ct1.example.org")}, true},
		{"another certificate", dimse.Requestor{CallingAE: "CT1", Addr: addr, TLS: state("ct2.example.org")}, false},
		{"unverified certificate", dimse.Requestor{CallingAE: "CT1", Addr: addr, TLS: unverified}, false},
		{"plain TCP", dimse.Requestor{CallingAE: "CT1", Addr: addr}, false},
		{"entry without cert_name, plain TCP", dimse.Requestor{CallingAE: "ANY", Addr: addr}, true},
	}
	for _, tt := range tests {
		if got := p.CallerAllowed(context.Background(), tt.r); got != tt.want {
			t.Errorf("%s: allowed = %v, want %v", tt.name, got, tt.want)
		}
	}
}
