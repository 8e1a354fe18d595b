// Package scp holds the node's DICOM services: which SOP classes and transfer syntaxes it accepts,
// the AE-title policy, and the Verification and Storage handlers.
package scp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/store"
)

// Storage keeps what the Storage SCP receives: Put returns once the instance is durable and
// indexed (and, for *pipeline.Pipeline, its job created in the same transaction), so that
// Success may be answered. *store.Store implements it without jobs.
type Storage interface {
	Put(ctx context.Context, req store.PutRequest) (store.Instance, error)
}

// Caller is one entry of the calling-AE allow-list; an empty Host matches any address.
type Caller struct {
	AETitle string
	Host    string
	// CertName, when set, must be one of the names of the requestor's TLS client certificate (its
	// subject common name, or a DNS, e-mail or URI subject alternative name, compared without
	// regard to case): the caller has to come over TLS with a certificate the node's CA verified,
	// so that the AE title, which anyone can claim, is backed by a key only that peer holds.
	CertName string
}

// Options configure the services.
type Options struct {
	AETitle        string
	StrictCalledAE bool
	// AllowedCallers, when not empty, is the only set of peers that may associate.
	AllowedCallers []Caller
	// TransferSyntaxes accepted for storage, most preferred first.
	TransferSyntaxes []string
	// Resolver looks up host names of the allow-list; nil uses net.DefaultResolver.
	Resolver *net.Resolver
	// Peers is the AE table: the destinations C-MOVE may send to.
	Peers []Peer
	// TLS configures associations the node opens to peers marked TLS (their CA, our client
	// certificate); nil when no peer uses TLS.
	TLS    *tls.Config
	Logger zerolog.Logger
}

// Services builds the node's dimse.Policy and handlers.
type Services struct {
	opts     Options
	storage  Storage
	index    Index
	classes  map[string]bool // storage SOP classes accepted
	mux      *dimse.ServeMux
	resolver *net.Resolver
}

// New returns the services storing through storage and answering Query/Retrieve from index.
func New(opts Options, storage Storage, index Index) *Services {
	s := &Services{opts: opts, storage: storage, index: index, classes: map[string]bool{}, mux: dimse.NewServeMux(), resolver: opts.Resolver}
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	for _, c := range storageSOPClasses {
		s.classes[c.UID] = true
	}
	s.mux.HandleFunc(dimse.VerificationSOPClass, dimse.FieldCEchoRQ, s.echo)
	s.mux.HandleFunc("", dimse.FieldCStoreRQ, s.store)
	for _, uid := range []string{PatientRootFind, StudyRootFind} {
		s.mux.HandleFunc(uid, dimse.FieldCFindRQ, s.find)
	}
	for _, uid := range []string{PatientRootMove, StudyRootMove} {
		s.mux.HandleFunc(uid, dimse.FieldCMoveRQ, s.move)
	}
	for _, uid := range []string{PatientRootGet, StudyRootGet} {
		s.mux.HandleFunc(uid, dimse.FieldCGetRQ, s.get)
	}
	return s
}

// Handler is the dispatcher to give a dimse.Server.
func (s *Services) Handler() *dimse.ServeMux { return s.mux }

// Policy is the association policy to give a dimse.Server.
func (s *Services) Policy() dimse.Policy {
	p := dimse.Policy{
		AETitle:          s.opts.AETitle,
		StrictCalledAE:   s.opts.StrictCalledAE,
		TransferSyntaxes: s.transferSyntaxes,
		SendTransferSyntaxes: func(_ context.Context, abstractSyntax string) []string {
			if !s.classes[abstractSyntax] {
				return nil
			}
			// Implicit VR little endian first: every stored uncompressed instance can be sent in it
			// (explicit ones are converted), and every peer accepts it.
			return append([]string{dcm.ImplicitVRLittleEndian}, s.opts.TransferSyntaxes...)
		},
	}
	if len(s.opts.AllowedCallers) > 0 {
		p.CallerAllowed = s.callerAllowed
	}
	return p
}

func (s *Services) transferSyntaxes(_ context.Context, abstractSyntax string) []string {
	switch {
	case abstractSyntax == dimse.VerificationSOPClass:
		// PS3.4 A.4: Verification uses the default transfer syntax; explicit LE is harmless too.
		return []string{dcm.ImplicitVRLittleEndian, dcm.ExplicitVRLittleEndian}
	case isQueryRetrieve(abstractSyntax):
		// Identifiers are small; the node decodes them in either little endian syntax.
		return []string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}
	case s.classes[abstractSyntax]:
		return s.opts.TransferSyntaxes
	}
	return nil
}

func (s *Services) callerAllowed(ctx context.Context, r dimse.Requestor) bool {
	ip := remoteIP(r.Addr)
	names := certNames(r.TLS)
	certMismatch := false
	for _, c := range s.opts.AllowedCallers {
		if strings.TrimSpace(c.AETitle) != strings.TrimSpace(r.CallingAE) {
			continue
		}
		if c.Host != "" && !s.hostMatches(ctx, c.Host, ip) {
			continue
		}
		if c.CertName != "" && !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, c.CertName) }) {
			certMismatch = true
			continue
		}
		return true
	}
	ev := s.opts.Logger.Warn().Str("calling_ae", r.CallingAE).Stringer("peer", r.Addr).Strs("cert_names", names)
	if certMismatch {
		ev.Msg("calling AE title on the allow-list, but not with this TLS client certificate")
	} else {
		ev.Msg("calling AE title not on the allow-list")
	}
	return false
}

// certNames are the names of a TLS peer's verified certificate; none on plain TCP or without one.
func certNames(st *tls.ConnectionState) []string {
	if st == nil || len(st.PeerCertificates) == 0 || len(st.VerifiedChains) == 0 {
		return nil
	}
	return dimse.CertificateNames(st.PeerCertificates[0])
}

func remoteIP(a net.Addr) net.IP {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP
	}
	host, _, _ := net.SplitHostPort(a.String())
	return net.ParseIP(host)
}

// hostMatches compares the peer's address with a configured IP address or host name.
func (s *Services) hostMatches(ctx context.Context, host string, ip net.IP) bool {
	if ip == nil {
		return false
	}
	if want := net.ParseIP(host); want != nil {
		return want.Equal(ip)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := s.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		s.opts.Logger.Warn().Err(err).Str("host", host).Msg("allow-list host lookup failed")
		return false
	}
	for _, a := range addrs {
		if a.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func (s *Services) echo(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	rq := r.Command.(*dimse.CEchoRQ)
	_ = w.Respond(&dimse.CEchoRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID}, nil)
}

func (s *Services) store(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	rq := r.Command.(*dimse.CStoreRQ)
	a := r.Association
	log := s.opts.Logger.With().Str("calling_ae", a.CallingAE).Str("sop_instance_uid", rq.AffectedSOPInstanceUID).Logger()
	respond := func(st dimse.Status) {
		if err := w.Respond(&dimse.CStoreRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
			AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID, Status: st}, nil); err != nil {
			log.Warn().Err(err).Msg("send C-STORE-RSP")
		}
	}
	if rq.AffectedSOPClassUID != r.Context.AbstractSyntax {
		respond(dimse.Status{Code: dimse.StatusSOPClassNotSupported,
			ErrorComment: "SOP class differs from the presentation context's"})
		return
	}
	start := time.Now()
	inst, err := s.storage.Put(ctx, store.PutRequest{
		SOPClassUID:       rq.AffectedSOPClassUID,
		SOPInstanceUID:    rq.AffectedSOPInstanceUID,
		TransferSyntaxUID: r.Context.TransferSyntax,
		CallingAE:         a.CallingAE,
		CalledAE:          a.CalledAE,
		RemoteAddr:        a.RemoteAddr().String(),
		Data:              r.Data,
	})
	if err != nil {
		if dimse.IsAssociationGone(err) {
			log.Info().Err(err).Msg("transfer ended by the association; nothing stored")
			return
		}
		st := storeStatus(err)
		log.Warn().Err(err).Stringer("status", st).Msg("C-STORE failed")
		respond(st)
		return
	}
	log.Info().Str("sop_class", StorageSOPClassName(rq.AffectedSOPClassUID)).Str("study_uid", inst.StudyInstanceUID).
		Int64("bytes", inst.Size).Dur("took", time.Since(start)).Bool("duplicate", inst.Duplicate).Msg("stored")
	respond(dimse.Status{Code: dimse.StatusSuccess})
}

// storeStatus maps a store failure to the C-STORE status PS3.4 B.2.3 gives for it.
func storeStatus(err error) dimse.Status {
	comment := err.Error()
	switch {
	case errors.Is(err, store.ErrMismatch):
		return dimse.Status{Code: dimse.StatusDataSetDoesNotMatchClass, ErrorComment: comment}
	case errors.Is(err, store.ErrInvalidUID), errors.Is(err, store.ErrCannotUnderstand):
		return dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: comment}
	case errors.Is(err, store.ErrDuplicate):
		return dimse.Status{Code: dimse.StatusDuplicateSOPInstance, ErrorComment: comment}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, store.ErrOutOfResources):
		return dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: comment}
	case errors.Is(err, dimse.ErrReleaseRequested):
		// The data set stopped short: PS3.4 B.2.3's "cannot understand" is the one that fits.
		return dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "data set incomplete: the requestor asked to release the association before its last fragment"}
	}
	return dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: fmt.Sprintf("not stored: %v", err)}
}
