package scp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/version"
	"github.com/espnode/espnode/seg/pixel/transcode"
	"github.com/espnode/espnode/store"
)

// Query/Retrieve SOP classes (PS3.4 C.6).
const (
	PatientRootFind = "1.2.840.10008.5.1.4.1.2.1.1"
	PatientRootMove = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootGet  = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootFind   = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootMove   = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootGet    = "1.2.840.10008.5.1.4.1.2.2.3"
)

func isQueryRetrieve(uid string) bool {
	switch uid {
	case PatientRootFind, PatientRootMove, PatientRootGet, StudyRootFind, StudyRootMove, StudyRootGet:
		return true
	}
	return false
}

func patientRoot(uid string) bool {
	return uid == PatientRootFind || uid == PatientRootMove || uid == PatientRootGet
}

// Peer is an entry of the node's AE table: where C-MOVE sends to.
type Peer struct {
	AETitle string
	Host    string
	Port    int
	// TLS: associations to this peer run over TLS (PS3.15 B), verified against the CA of the
	// node's TLS configuration.
	TLS bool
	// OmitGetFailedList leaves the Failed SOP Instance UID List out of the final C-GET-RSP to
	// this AE, for a requestor that cannot read it.
	OmitGetFailedList bool
}

// Addr is the peer's address in net.Dial's form.
func (p Peer) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// DialPeer requests an association with a peer of the AE table, over TLS with tlsConfig when the
// peer is marked TLS (dimse.DialPeer, which SEG delivery in the pipeline uses too).
func DialPeer(ctx context.Context, p Peer, tlsConfig *tls.Config, cfg dimse.ClientConfig) (*dimse.Client, error) {
	if cfg.CalledAE == "" {
		cfg.CalledAE = p.AETitle
	}
	return dimse.DialPeer(ctx, p.Addr(), p.TLS, tlsConfig, cfg)
}

// Index is what Query/Retrieve needs of the archive. *store.Store implements it.
type Index interface {
	Find(ctx context.Context, q store.Query, fn func(store.Record) error) error
	Instances(ctx context.Context, studies, series, instances []string) ([]store.Instance, error)
	// OpenDataSet returns an instance's data set without its file meta.
	OpenDataSet(ctx context.Context, sopInstanceUID string) (io.ReadCloser, store.Instance, error)
}

// identifier encodes a response identifier in the context's transfer syntax; nil for none. An
// identifier that cannot be encoded (a value too long for its VR) fails the response as a
// failing reader does, rather than going out corrupt.
func identifier(elems []dcm.Element, transferSyntax string) io.Reader {
	if elems == nil {
		return nil
	}
	b, err := dcm.Encode(dcm.NewDataSet(elems...), transferSyntax)
	if err != nil {
		return failingReader{fmt.Errorf("encode identifier: %w", err)}
	}
	return bytes.NewReader(b)
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// maxIdentifierLength bounds a query identifier read into memory.
const maxIdentifierLength = 1 << 20

// readIdentifier reads and decodes a request's identifier.
func readIdentifier(r *dimse.Request) (*dcm.DataSet, error) {
	if r.Data == nil {
		return nil, errors.New("no identifier")
	}
	b, err := io.ReadAll(io.LimitReader(r.Data, maxIdentifierLength+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxIdentifierLength {
		return nil, fmt.Errorf("identifier longer than %d bytes", maxIdentifierLength)
	}
	ds, err := dcm.Parse(b, r.Context.TransferSyntax)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// selection is what a query identifier asks for, with what it matches on.
type selection struct {
	level    store.Level
	query    store.Query
	elements []dcm.Element
	// charset is the request's Specific Character Set, which its values are decoded from.
	charset []string
}

// parseSelection applies the hierarchical rules of PS3.4 C.4.1.2.1: below the top level of the
// model, each higher level needs its unique key. Relational queries are not negotiated.
func parseSelection(ds *dcm.DataSet, sopClass string) (selection, dimse.Status, bool) {
	bad := func(format string, args ...any) (selection, dimse.Status, bool) {
		return selection{}, dimse.Status{Code: dimse.StatusDataSetDoesNotMatchClass, ErrorComment: fmt.Sprintf(format, args...)}, false
	}
	lv := ds.Find(dcm.QueryRetrieveLevel)
	if lv == nil {
		return bad("identifier lacks Query/Retrieve Level (0008,0052)")
	}
	level, err := store.ParseLevel(lv.Text())
	if err != nil {
		return bad("%v", err)
	}
	if level == store.PatientLevel && !patientRoot(sopClass) {
		return bad("PATIENT level is not part of the Study Root model")
	}
	sel := selection{level: level, query: store.Query{Level: level}, elements: ds.Elements, charset: ds.Strings(dcm.SpecificCharacterSet)}
	unique := map[dcm.Tag]bool{}
	for _, e := range ds.Elements {
		if e.Tag == dcm.QueryRetrieveLevel || e.Tag == dcm.SpecificCharacterSet || e.VR == "SQ" || !store.Matchable(e.Tag, level) {
			continue
		}
		m, matches := matchFor(e, sel.charset)
		if !matches {
			continue
		}
		sel.query.Matches = append(sel.query.Matches, m)
		if len(m.Values) > 0 {
			unique[e.Tag] = true
		}
	}
	var need []dcm.Tag
	if patientRoot(sopClass) && level > store.PatientLevel {
		need = append(need, dcm.PatientID)
	}
	if level > store.StudyLevel {
		need = append(need, dcm.StudyInstanceUID)
	}
	if level > store.SeriesLevel {
		need = append(need, dcm.SeriesInstanceUID)
	}
	for _, t := range need {
		if !unique[t] {
			return bad("hierarchical query at %s level needs a value for %s (relational queries are not supported)", level, t)
		}
	}
	return sel, dimse.Status{}, true
}

// matchFor turns an identifier element into a matching key (store.MatchElement, the matching
// QIDO-RS shares). Text is decoded from the request's character set to UTF-8, the index's form
// (store.Instance), before wildcards are looked for: a byte of a two-byte ISO 2022 code can be a
// '*' or '?'.
func matchFor(e dcm.Element, charset []string) (store.Match, bool) {
	if charsetVR(e.VR) {
		v, _ := dcm.DecodeText([]byte(e.Text()), charset) // an unknown term decodes as Latin-1
		e.Value = []byte(v)
	}
	return store.MatchElement(e)
}

// returnKey is the element answering a request key with a record's value: text as it is, a
// number in the binary encoding its VR has (Rows, Columns are US), empty when the value does not
// fit the VR.
func returnKey(key dcm.Element, v string) dcm.Element {
	switch key.VR {
	case "US", "UL":
		n, err := strconv.ParseUint(v, 10, 32)
		switch {
		case err != nil || (key.VR == "US" && n > 0xFFFF):
			return dcm.Element{Tag: key.Tag, VR: key.VR}
		case key.VR == "US":
			return dcm.NewUS(key.Tag, uint16(n))
		}
		return dcm.NewUL(key.Tag, uint32(n))
	case "SS", "SL", "FL", "FD", "AT":
		return dcm.Element{Tag: key.Tag, VR: key.VR}
	}
	return dcm.Element{Tag: key.Tag, VR: key.VR, Value: []byte(v)}
}

// response builds the identifier of one match: every key of the request, with its value, and
// Specific Character Set, filled in place when the request lists it, added otherwise.
func (s *Services) response(sel selection, r store.Record) []dcm.Element {
	var out []dcm.Element
	var texts []int // indices in out of the values to encode, UTF-8 until then
	charsetAt := -1
	has := map[dcm.Tag]bool{}
	for _, e := range sel.elements {
		has[e.Tag] = true
		switch {
		case e.VR == "SQ":
			out = append(out, dcm.Element{Tag: e.Tag, VR: "SQ"})
			continue
		case e.Tag == dcm.SpecificCharacterSet:
			charsetAt = len(out)
		case charsetVR(e.VR):
			texts = append(texts, len(out))
		}
		out = append(out, returnKey(e, r.Value(e.Tag, sel.level)))
	}
	if !has[dcm.RetrieveAETitle] {
		out = append(out, dcm.StrElement(dcm.RetrieveAETitle, s.opts.AETitle))
	}
	if charsetAt < 0 {
		charsetAt = len(out)
		out = append(out, dcm.Element{Tag: dcm.SpecificCharacterSet, VR: "CS"})
	}
	values := make([]string, len(texts))
	for i, at := range texts {
		values[i] = string(out[at].Value)
	}
	cs := responseCharset(sel.charset, values)
	for _, at := range texts {
		// responseCharset chose a set that encodes every value.
		out[at].Value, _ = dcm.EncodeText(string(out[at].Value), cs)
	}
	out[charsetAt].Value = []byte(strings.Join(cs, `\`))
	return out
}

// charsetVR says whether Specific Character Set applies to values of a VR (PS3.5 Table 6.2-1): the
// others hold only the default repertoire.
func charsetVR(vr string) bool {
	switch vr {
	case "SH", "LO", "ST", "LT", "UC", "UT", "PN":
		return true
	}
	return false
}

// responseCharset chooses the character set of a response whose text values (UTF-8) are values
// (PS3.4 C.4.1.1.3, PS3.5 6.1): the one the request asked for when it holds them all (also
// when the values are ASCII, which every set holds), else ISO_IR 192, which holds any text.
func responseCharset(requested []string, values []string) []string {
	for _, v := range values {
		if _, err := dcm.EncodeText(v, requested); err != nil {
			return []string{"ISO_IR 192"}
		}
	}
	return requested
}

func (s *Services) find(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	rq := r.Command.(*dimse.CFindRQ)
	respond := func(st dimse.Status, data []dcm.Element) error {
		return w.Respond(&dimse.CFindRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
			Status: st, Data: data != nil}, identifier(data, r.Context.TransferSyntax))
	}
	ident, err := readIdentifier(r)
	if err != nil {
		_ = respond(dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "identifier: " + err.Error()}, nil)
		return
	}
	sel, st, ok := parseSelection(ident, rq.AffectedSOPClassUID)
	if !ok {
		_ = respond(st, nil)
		return
	}
	log := s.opts.Logger.With().Str("calling_ae", r.Association.CallingAE).Str("level", sel.level.String()).Logger()
	errCancelled := errors.New("cancelled")
	n := 0
	err = s.index.Find(ctx, sel.query, func(rec store.Record) error {
		if cancelled, err := r.Association.PollCancel(rq.MessageID); err != nil {
			return err
		} else if cancelled {
			return errCancelled
		}
		n++
		return respond(dimse.Status{Code: dimse.StatusPending}, s.response(sel, rec))
	})
	switch {
	case errors.Is(err, errCancelled):
		log.Info().Int("matches", n).Msg("C-FIND cancelled")
		_ = respond(dimse.Status{Code: dimse.StatusCancel}, nil)
	case dimse.IsAssociationGone(err):
		log.Info().Err(err).Msg("C-FIND ended with the association")
	case err != nil:
		log.Warn().Err(err).Msg("C-FIND failed")
		_ = respond(dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "query failed: " + err.Error()}, nil)
	default:
		log.Info().Int("matches", n).Msg("C-FIND")
		_ = respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
	}
}

// retrieveSet resolves a C-MOVE/C-GET identifier to the instances it names.
func (s *Services) retrieveSet(ctx context.Context, ident *dcm.DataSet, sopClass string) ([]store.Instance, dimse.Status, bool) {
	sel, st, ok := parseSelection(ident, sopClass)
	if !ok {
		return nil, st, false
	}
	// A retrieve names what it wants by the unique key of its level (PS3.4 C.4.2.2.1).
	key := map[store.Level]dcm.Tag{store.PatientLevel: dcm.PatientID, store.StudyLevel: dcm.StudyInstanceUID,
		store.SeriesLevel: dcm.SeriesInstanceUID, store.ImageLevel: dcm.SOPInstanceUID}[sel.level]
	named := false
	for _, m := range sel.query.Matches {
		named = named || (m.Tag == key && len(m.Values) > 0)
	}
	if !named {
		return nil, dimse.Status{Code: dimse.StatusDataSetDoesNotMatchClass,
			ErrorComment: fmt.Sprintf("a %s-level retrieve needs values for %s", sel.level, key)}, false
	}
	// Select at the requested level, then expand the matches to their instances in one query (a
	// patient's through its studies).
	var uids []string
	err := s.index.Find(ctx, sel.query, func(rec store.Record) error {
		uids = append(uids, rec.Value(key, sel.level))
		return nil
	})
	if err == nil && sel.level == store.PatientLevel {
		patients := uids
		uids = nil
		err = s.index.Find(ctx, store.Query{Level: store.StudyLevel, Matches: []store.Match{{Tag: dcm.PatientID, Values: patients}}},
			func(rec store.Record) error {
				uids = append(uids, rec.StudyInstanceUID)
				return nil
			})
	}
	var out []store.Instance
	if err == nil && len(uids) > 0 {
		switch sel.level {
		case store.PatientLevel, store.StudyLevel:
			out, err = s.index.Instances(ctx, uids, nil, nil)
		case store.SeriesLevel:
			out, err = s.index.Instances(ctx, nil, uids, nil)
		case store.ImageLevel:
			out, err = s.index.Instances(ctx, nil, nil, uids)
		}
	}
	if err != nil {
		return nil, dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "query failed: " + err.Error()}, false
	}
	return out, dimse.Status{}, true
}

// openInstance opens a stored instance at its data set.
func (s *Services) openInstance(ctx context.Context, in store.Instance) (io.ReadCloser, io.Reader, error) {
	rc, _, err := s.index.OpenDataSet(ctx, in.SOPInstanceUID)
	if err != nil {
		return nil, nil, err
	}
	return rc, bufio.NewReaderSize(rc, 256<<10), nil
}

// counter tracks sub-operations and the failed UIDs.
type counter struct {
	sub    dimse.SubOperations
	failed []string
}

func (c *counter) done(uid string, st dimse.Status, err error) {
	c.sub.Remaining--
	switch {
	case err == nil && st.Code == dimse.StatusSuccess:
		c.sub.Completed++
	case err == nil && st.Code&0xF000 == 0xB000:
		c.sub.Warning++
	default:
		c.sub.Failed++
		c.failed = append(c.failed, uid)
	}
}

// final is the status of a finished C-MOVE/C-GET (PS3.4 C.4.2.1.5, C.4.3.1.4).
func (c *counter) final() (dimse.Status, []dcm.Element) {
	c.sub.Present = true
	if c.sub.Failed == 0 && c.sub.Warning == 0 {
		return dimse.Status{Code: dimse.StatusSuccess}, nil
	}
	var ids []dcm.Element
	if len(c.failed) > 0 {
		ids = []dcm.Element{dcm.StrElement(dcm.FailedSOPInstanceUIDList, c.failed...)}
	}
	return dimse.Status{Code: dimse.StatusWarningSubops, ErrorComment: fmt.Sprintf("%d of %d sub-operations failed", c.sub.Failed, c.sub.Completed+c.sub.Failed+c.sub.Warning)}, ids
}

func (s *Services) peer(aet string) (Peer, bool) {
	for _, p := range s.opts.Peers {
		if strings.TrimSpace(p.AETitle) == strings.TrimSpace(aet) {
			return p, true
		}
	}
	return Peer{}, false
}

func (s *Services) move(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	rq := r.Command.(*dimse.CMoveRQ)
	respond := func(st dimse.Status, sub dimse.SubOperations, data []dcm.Element) error {
		return w.Respond(&dimse.CMoveRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
			Status: st, SubOperations: sub, Data: data != nil}, identifier(data, r.Context.TransferSyntax))
	}
	log := s.opts.Logger.With().Str("calling_ae", r.Association.CallingAE).Str("destination", rq.MoveDestination).Logger()
	ident, err := readIdentifier(r)
	if err != nil {
		_ = respond(dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "identifier: " + err.Error()}, dimse.SubOperations{}, nil)
		return
	}
	dest, ok := s.peer(rq.MoveDestination)
	if !ok {
		log.Warn().Msg("C-MOVE to an AE title not in the AE table")
		_ = respond(dimse.Status{Code: dimse.StatusMoveDestinationUnknown, ErrorComment: "move destination " + rq.MoveDestination + " is not in the AE table"}, dimse.SubOperations{}, nil)
		return
	}
	instances, st, ok := s.retrieveSet(ctx, ident, rq.AffectedSOPClassUID)
	if !ok {
		_ = respond(st, dimse.SubOperations{}, nil)
		return
	}
	c := &counter{sub: dimse.SubOperations{Remaining: uint16(len(instances)), Present: true}}
	if len(instances) > 0 {
		contexts := storageContexts(instances)
		client, err := DialPeer(ctx, dest, s.opts.TLS, dimse.ClientConfig{
			CallingAE: s.opts.AETitle, CalledAE: dest.AETitle, Contexts: contexts,
			ImplementationClassUID: version.ImplementationClassUID, ImplementationVersionName: version.ImplementationVersionName(),
		})
		if err != nil {
			log.Warn().Err(err).Msg("C-MOVE: cannot associate with the destination")
			c.sub.Failed, c.sub.Remaining = uint16(len(instances)), 0
			_ = respond(dimse.Status{Code: dimse.StatusOutOfResourcesSubops, ErrorComment: "destination: " + err.Error()}, c.sub, nil)
			return
		}
		defer client.Release(ctx)
		for _, in := range instances {
			if cancelled, err := r.Association.PollCancel(rq.MessageID); err != nil {
				return
			} else if cancelled {
				c.sub.Present = true
				_ = respond(dimse.Status{Code: dimse.StatusCancel}, c.sub, nil)
				return
			}
			st, err := s.sendInstance(ctx, client, in, dimse.StoreOptions{MoveOriginatorAETitle: r.Association.CallingAE, MoveOriginatorMessageID: rq.MessageID})
			if err != nil {
				log.Warn().Err(err).Str("sop_instance_uid", in.SOPInstanceUID).Msg("C-MOVE sub-operation failed")
			}
			c.done(in.SOPInstanceUID, st, err)
			if c.sub.Remaining > 0 {
				if err := respond(dimse.Status{Code: dimse.StatusPending}, c.sub, nil); err != nil {
					return
				}
			}
		}
	}
	status, ids := c.final()
	log.Info().Uint16("completed", c.sub.Completed).Uint16("failed", c.sub.Failed).Msg("C-MOVE")
	_ = respond(status, c.sub, ids)
}

// storageContexts proposes one context per SOP class and stored transfer syntax: the stored
// syntax first, then what the instance can be converted to when the destination takes none of
// those (explicit to implicit VR little endian; an encapsulated syntax this build decodes to
// explicit, then implicit, VR little endian, decompressed as Orthanc does).
func storageContexts(instances []store.Instance) []dimse.PresentationContextRQ {
	type pair struct{ class, ts string }
	seen := map[pair]bool{}
	var out []dimse.PresentationContextRQ
	for _, in := range instances {
		k := pair{in.SOPClassUID, in.TransferSyntaxUID}
		if seen[k] || len(out) == 128 {
			continue
		}
		seen[k] = true
		out = append(out, dimse.PresentationContextRQ{AbstractSyntax: k.class, TransferSyntaxes: transcode.Offer(k.ts)})
	}
	return out
}

// sendSyntax picks the first syntax the instance can be sent in that the peer accepted.
func sendSyntax(in store.Instance, accepted func(ts string) bool) (string, bool) {
	for _, ts := range transcode.Offer(in.TransferSyntaxUID) {
		if accepted(ts) {
			return ts, true
		}
	}
	return "", false
}

func (s *Services) sendInstance(ctx context.Context, c *dimse.Client, in store.Instance, opts dimse.StoreOptions) (dimse.Status, error) {
	ts, ok := sendSyntax(in, func(ts string) bool { _, ok := c.FindContext(in.SOPClassUID, ts); return ok })
	if !ok {
		// The store call names what was missing.
		ts = in.TransferSyntaxUID
	}
	f, data, err := s.openConverted(ctx, in, ts)
	if err != nil {
		return dimse.Status{}, err
	}
	defer f.Close()
	return c.StoreWithOptions(ctx, in.SOPClassUID, in.SOPInstanceUID, ts, data, opts)
}

// openConverted opens a stored instance for sending in transfer syntax ts (transcode.Open): a
// frame that fails to decode fails the sub-operation, not the association.
func (s *Services) openConverted(ctx context.Context, in store.Instance, ts string) (io.Closer, io.Reader, error) {
	f, data, err := s.openInstance(ctx, in)
	if err != nil || ts == in.TransferSyntaxUID {
		return f, data, err
	}
	conv, err := transcode.Open(data, in.TransferSyntaxUID, ts, dcm.Limits{})
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("send %s as %s: %w", in.SOPInstanceUID, dcm.TransferSyntaxName(ts), err)
	}
	if transcode.Decompressible(in.TransferSyntaxUID) {
		s.opts.Logger.Info().Str("sop_instance_uid", in.SOPInstanceUID).Str("stored", in.TransferSyntaxUID).Str("sent", ts).
			Msg("the destination accepts none of the stored syntaxes: sending it decompressed")
	}
	return closers{conv, f}, conv, nil
}

type closers []io.Closer

func (c closers) Close() error {
	var errs []error
	for _, x := range c {
		errs = append(errs, x.Close())
	}
	return errors.Join(errs...)
}

func (s *Services) get(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	rq := r.Command.(*dimse.CGetRQ)
	a := r.Association
	respond := func(st dimse.Status, sub dimse.SubOperations, data []dcm.Element) error {
		return w.Respond(&dimse.CGetRSP{MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
			Status: st, SubOperations: sub, Data: data != nil}, identifier(data, r.Context.TransferSyntax))
	}
	log := s.opts.Logger.With().Str("calling_ae", a.CallingAE).Logger()
	ident, err := readIdentifier(r)
	if err != nil {
		_ = respond(dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "identifier: " + err.Error()}, dimse.SubOperations{}, nil)
		return
	}
	instances, st, ok := s.retrieveSet(ctx, ident, rq.AffectedSOPClassUID)
	if !ok {
		_ = respond(st, dimse.SubOperations{}, nil)
		return
	}
	c := &counter{sub: dimse.SubOperations{Remaining: uint16(len(instances)), Present: true}}
	cancelled, released := false, false
	for i, in := range instances {
		if !cancelled {
			if cancelled, err = a.PollCancel(rq.MessageID); err != nil {
				return
			}
		}
		if cancelled {
			break
		}
		st, err := s.getSubOperation(ctx, a, in, rq.MessageID, &cancelled)
		if err != nil {
			log.Warn().Err(err).Str("sop_instance_uid", in.SOPInstanceUID).Msg("C-GET sub-operation failed")
			if dimse.IsAssociationGone(err) {
				return
			}
		}
		c.done(in.SOPInstanceUID, st, err)
		if errors.Is(err, dimse.ErrReleaseRequested) {
			// The requestor asked to release before the retrieve was done: no sub-operation is
			// started after that; the rest count as failed and the final response goes out.
			released = true
			for _, rest := range instances[i+1:] {
				c.done(rest.SOPInstanceUID, dimse.Status{}, err)
			}
			break
		}
		if c.sub.Remaining > 0 && !cancelled {
			if err := respond(dimse.Status{Code: dimse.StatusPending}, c.sub, nil); err != nil {
				return
			}
		}
	}
	if cancelled && !released {
		_ = respond(dimse.Status{Code: dimse.StatusCancel}, c.sub, nil)
		return
	}
	status, ids := c.final()
	if !s.sendGetFailedList(a.CallingAE) {
		ids = nil
	}
	log.Info().Uint16("completed", c.sub.Completed).Uint16("failed", c.sub.Failed).Strs("failed_uids", c.failed).Bool("failed_list_sent", ids != nil).Msg("C-GET")
	_ = respond(status, c.sub, ids)
}

// sendGetFailedList reports whether a C-GET requestor gets the Failed SOP Instance UID List in the
// final response (PS3.4 C.4.3.1.3.1): every requestor does, unless its AE table entry says
// otherwise (Peer.OmitGetFailedList).
func (s *Services) sendGetFailedList(callingAE string) bool {
	p, ok := s.peer(callingAE)
	return !ok || !p.OmitGetFailedList
}

// getSubOperation sends one C-STORE on the C-GET's association and waits for its response; a
// C-CANCEL-RQ arriving meanwhile is noted.
func (s *Services) getSubOperation(ctx context.Context, a *dimse.Association, in store.Instance, getID uint16, cancelled *bool) (dimse.Status, error) {
	var pc *dimse.PresentationContext
	_, _ = sendSyntax(in, func(ts string) bool {
		for _, c := range a.Contexts() {
			if c.AbstractSyntax == in.SOPClassUID && c.RequestorSCP && c.TransferSyntax == ts {
				pc = c
				return true
			}
		}
		return false
	})
	if pc == nil {
		return dimse.Status{}, fmt.Errorf("no presentation context with the SCP role for %s in %s", in.SOPClassUID, in.TransferSyntaxUID)
	}
	f, data, err := s.openConverted(ctx, in, pc.TransferSyntax)
	if err != nil {
		return dimse.Status{}, err
	}
	defer f.Close()
	id := a.NextMessageID()
	if err := a.SendMessage(pc, &dimse.CStoreRQ{MessageID: id, AffectedSOPClassUID: in.SOPClassUID, AffectedSOPInstanceUID: in.SOPInstanceUID}, data); err != nil {
		return dimse.Status{}, err
	}
	for {
		_, msg, _, err := a.ReadMessage(0)
		if err != nil {
			return dimse.Status{}, err
		}
		switch m := msg.(type) {
		case *dimse.CStoreRSP:
			if m.MessageIDBeingRespondedTo != id {
				return dimse.Status{}, fmt.Errorf("C-STORE-RSP for message %d, expected %d", m.MessageIDBeingRespondedTo, id)
			}
			return m.Status, nil
		case *dimse.CCancelRQ:
			if m.MessageIDBeingRespondedTo == getID {
				*cancelled = true
			}
		default:
			_ = a.Abort()
			return dimse.Status{}, fmt.Errorf("%w: command 0x%04X during a C-GET sub-operation", dimse.ErrAborted, msg.CommandField())
		}
	}
}
