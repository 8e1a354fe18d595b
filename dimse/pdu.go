package dimse

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The PDUs of PS3.8 9.3 and the items of their variable fields (PS3.8 9.3.2 to 9.3.3, Annex D;
// PS3.7 D.3.3). Each wire structure is one Go type whose encoder and decoder sit next to each
// other: Encode appends the PDU, header included, and Decode reads its variable field back.

// PDUType is the first byte of every PDU (PS3.8 9.3.1).
type PDUType byte

const (
	TypeAssociateRQ PDUType = 0x01
	TypeAssociateAC PDUType = 0x02
	TypeAssociateRJ PDUType = 0x03
	TypePDataTF     PDUType = 0x04
	TypeReleaseRQ   PDUType = 0x05
	TypeReleaseRP   PDUType = 0x06
	TypeAbort       PDUType = 0x07
)

func (t PDUType) String() string {
	switch t {
	case TypeAssociateRQ:
		return "A-ASSOCIATE-RQ"
	case TypeAssociateAC:
		return "A-ASSOCIATE-AC"
	case TypeAssociateRJ:
		return "A-ASSOCIATE-RJ"
	case TypePDataTF:
		return "P-DATA-TF"
	case TypeReleaseRQ:
		return "A-RELEASE-RQ"
	case TypeReleaseRP:
		return "A-RELEASE-RP"
	case TypeAbort:
		return "A-ABORT"
	}
	return fmt.Sprintf("PDU type 0x%02X", byte(t))
}

// Item types of the variable fields of A-ASSOCIATE-RQ/AC (PS3.8 9.3.2, 9.3.3, Annex D, PS3.7 D.3.3).
const (
	itemApplicationContext    = 0x10
	itemPresentationContextRQ = 0x20
	itemPresentationContextAC = 0x21
	itemAbstractSyntax        = 0x30
	itemTransferSyntax        = 0x40
	itemUserInformation       = 0x50
	itemMaximumLength         = 0x51
	itemImplementationClass   = 0x52
	itemAsyncOpsWindow        = 0x53
	itemRoleSelection         = 0x54
	itemImplementationVersion = 0x55
	itemSOPClassExtended      = 0x56
	itemSOPClassCommonExt     = 0x57
	itemUserIdentityRQ        = 0x58
	itemUserIdentityAC        = 0x59
)

// Limits on what a peer may make us allocate. Association PDUs carry a handful of UIDs; even a
// requestor proposing all 128 presentation contexts with many transfer syntaxes stays far below.
const (
	MaxAssociatePDULength = 1 << 20
	// DefaultMaxPDULength is the receive limit we announce when none is configured.
	DefaultMaxPDULength = 256 << 10
	pduHeaderLength     = 6
	// associateHeaderLength is the fixed part of A-ASSOCIATE-RQ/AC before the first item.
	associateHeaderLength = 68
	maxAETitleLength      = 16
	maxUIDLength          = 64
)

// ApplicationContextName is the only application context PS3.7 defines.
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

// PDU is one protocol data unit.
type PDU interface {
	Type() PDUType
	// Encode appends the PDU, its six-byte header included, to dst.
	Encode(dst []byte) []byte
	// Decode sets the PDU from its variable field, the bytes after the header. Errors are
	// *ProtocolError.
	Decode(body []byte) error
}

// ProtocolError is a PDU that violates PS3.8; the association that received it is aborted with
// Reason as the A-ABORT reason (source: service provider).
type ProtocolError struct {
	Reason AbortReason
	Msg    string
}

func (e *ProtocolError) Error() string { return "protocol error: " + e.Msg }

func protoErr(reason AbortReason, format string, args ...any) error {
	return &ProtocolError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// EncodePDU returns the PDU's bytes on the wire, header included.
func EncodePDU(p PDU) []byte {
	return p.Encode(make([]byte, 0, 256))
}

// AppendPDU appends the encoded PDU to b.
func AppendPDU(b []byte, p PDU) []byte { return p.Encode(b) }

// beginPDU writes a PDU header whose length endPDU patches.
func beginPDU(b []byte, t PDUType) ([]byte, int) {
	return append(b, byte(t), 0, 0, 0, 0, 0), len(b)
}

func endPDU(b []byte, at int) []byte {
	binary.BigEndian.PutUint32(b[at+2:], uint32(len(b)-at-pduHeaderLength))
	return b
}

// newPDU returns an empty PDU of type t; nil for a type PS3.8 does not define.
func newPDU(t PDUType) PDU {
	switch t {
	case TypeAssociateRQ:
		return &AssociateRQ{}
	case TypeAssociateAC:
		return &AssociateAC{}
	case TypeAssociateRJ:
		return &AssociateRJ{}
	case TypePDataTF:
		return &PDataTF{}
	case TypeReleaseRQ:
		return &ReleaseRQ{}
	case TypeReleaseRP:
		return &ReleaseRP{}
	case TypeAbort:
		return &Abort{}
	}
	return nil
}

// DecodePDUBody decodes a PDU's variable field.
func DecodePDUBody(t PDUType, body []byte) (PDU, error) {
	p := newPDU(t)
	if p == nil {
		return nil, protoErr(AbortReasonUnrecognizedPDU, "unrecognized PDU type 0x%02X", byte(t))
	}
	if err := p.Decode(body); err != nil {
		return nil, err
	}
	return p, nil
}

// Reading PDUs.

// PDUHeader is the fixed six-byte header of every PDU.
type PDUHeader struct {
	Type   PDUType
	Length uint32
}

// ReadPDUHeader reads the six-byte PDU header; its length is not checked.
func ReadPDUHeader(r io.Reader) (PDUHeader, error) {
	var h [pduHeaderLength]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return PDUHeader{}, err
	}
	return PDUHeader{Type: PDUType(h[0]), Length: binary.BigEndian.Uint32(h[2:])}, nil
}

// checkLength bounds a PDU's announced length by its type before anything is allocated for it.
func (h PDUHeader) checkLength(maxPData uint32) error {
	switch h.Type {
	case TypeAssociateRQ, TypeAssociateAC:
		if h.Length < associateHeaderLength || h.Length > MaxAssociatePDULength {
			return protoErr(AbortReasonInvalidParameter, "%s length %d outside %d..%d", h.Type, h.Length, associateHeaderLength, MaxAssociatePDULength)
		}
	case TypeAssociateRJ, TypeReleaseRQ, TypeReleaseRP, TypeAbort:
		if h.Length != 4 {
			return protoErr(AbortReasonInvalidParameter, "%s length %d, want 4", h.Type, h.Length)
		}
	case TypePDataTF:
		if h.Length < 6 || h.Length > maxPData {
			return protoErr(AbortReasonInvalidParameter, "P-DATA-TF length %d outside 6..%d", h.Length, maxPData)
		}
	default:
		return protoErr(AbortReasonUnrecognizedPDU, "unrecognized PDU type 0x%02X", byte(h.Type))
	}
	return nil
}

// PDUReader reads PDUs from a stream. Each header's length is checked against the limit for its
// type before its body is read, and bodies are read into one buffer that the reader reuses: the
// PDVs of a decoded P-DATA-TF alias it and are valid until the next read.
type PDUReader struct {
	r        io.Reader
	maxPData uint32
	head     [pduHeaderLength]byte
	body     []byte
}

// NewPDUReader reads PDUs from r. maxPData bounds a P-DATA-TF PDU (the maximum length we
// announced); the other types have fixed bounds.
func NewPDUReader(r io.Reader, maxPData uint32) *PDUReader {
	return &PDUReader{r: r, maxPData: maxPData}
}

// ReadHeader reads the next PDU header and checks its length. A *ProtocolError is a header that
// must not be followed (the body is left unread); any other error is the transport's.
func (pr *PDUReader) ReadHeader() (PDUHeader, error) {
	if _, err := io.ReadFull(pr.r, pr.head[:]); err != nil {
		return PDUHeader{}, err
	}
	h := PDUHeader{Type: PDUType(pr.head[0]), Length: binary.BigEndian.Uint32(pr.head[2:])}
	return h, h.checkLength(pr.maxPData)
}

// ReadBody reads and decodes the body of the PDU whose header ReadHeader returned. Transport
// errors are wrapped; a body that violates PS3.8 is a *ProtocolError.
func (pr *PDUReader) ReadBody(h PDUHeader) (PDU, error) {
	if err := h.checkLength(pr.maxPData); err != nil {
		return nil, err
	}
	if cap(pr.body) < int(h.Length) {
		pr.body = make([]byte, h.Length)
	}
	body := pr.body[:h.Length]
	if _, err := io.ReadFull(pr.r, body); err != nil {
		return nil, fmt.Errorf("read %s body: %w", h.Type, noEOF(err))
	}
	return DecodePDUBody(h.Type, body)
}

// ReadPDU reads and decodes one whole PDU.
func (pr *PDUReader) ReadPDU() (PDU, error) {
	h, err := pr.ReadHeader()
	if err != nil {
		return nil, err
	}
	return pr.ReadBody(h)
}

// ReadPDU reads and decodes one whole PDU. maxPData bounds the length of a P-DATA-TF PDU (our
// announced maximum length); other types have fixed bounds. Errors that are the peer's fault are
// *ProtocolError; I/O errors are returned as they are.
func ReadPDU(r io.Reader, maxPData uint32) (PDU, error) {
	return NewPDUReader(r, maxPData).ReadPDU()
}

// noEOF turns a clean EOF inside a PDU into ErrUnexpectedEOF: the peer stopped mid-PDU.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writePDU encodes p into buf and writes and flushes it: a PDU is always sent whole. It returns
// buf for the next PDU.
func writePDU(w *bufio.Writer, buf []byte, p PDU) ([]byte, error) {
	buf = p.Encode(buf[:0])
	if _, err := w.Write(buf); err != nil {
		return buf, fmt.Errorf("write %s: %w", p.Type(), err)
	}
	if err := w.Flush(); err != nil {
		return buf, fmt.Errorf("write %s: %w", p.Type(), err)
	}
	return buf, nil
}

// Items: a one-byte type, a reserved byte, a two-byte length and the value.

func appendItem(b []byte, typ byte, value []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// beginItem writes an item header whose length endItem patches.
func beginItem(b []byte, typ byte) ([]byte, int) {
	return append(b, typ, 0, 0, 0), len(b)
}

func endItem(b []byte, at int) []byte {
	binary.BigEndian.PutUint16(b[at+2:], uint16(len(b)-at-4))
	return b
}

// itemReader walks the items of a variable field; each item's length is checked against what is
// left of its container.
type itemReader struct {
	b   []byte
	err error
}

func (r *itemReader) next() (typ byte, value []byte, ok bool) {
	if r.err != nil || len(r.b) == 0 {
		return 0, nil, false
	}
	if len(r.b) < 4 {
		r.err = protoErr(AbortReasonInvalidParameter, "truncated item header")
		return 0, nil, false
	}
	n := int(binary.BigEndian.Uint16(r.b[2:]))
	if n > len(r.b)-4 {
		r.err = protoErr(AbortReasonInvalidParameter, "item 0x%02X length %d exceeds its container", r.b[0], n)
		return 0, nil, false
	}
	typ, value = r.b[0], r.b[4:4+n]
	r.b = r.b[4+n:]
	return typ, value, true
}

// UIDs in items (application context, abstract and transfer syntaxes, implementation class).

func appendUIDItem(b []byte, typ byte, uid string) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(uid)))
	return append(b, uid...)
}

func decodeUID(what string, v []byte) (string, error) {
	if len(v) == 0 || len(v) > maxUIDLength {
		return "", protoErr(AbortReasonInvalidParameter, "%s UID length %d", what, len(v))
	}
	// Some implementations pad UIDs with a NUL to even length although items are not padded.
	return strings.TrimRight(string(v), "\x00 "), nil
}

// The fixed part of A-ASSOCIATE-RQ and -AC (PS3.8 Tables 9-11 and 9-17): protocol version, called
// and calling AE titles, reserved bytes, then the application context item.

func appendAETitle(b []byte, ae string) []byte {
	var f [maxAETitleLength]byte
	for i := range f {
		f[i] = ' '
	}
	copy(f[:], ae)
	return append(b, f[:]...)
}

func appendAssociateHeader(b []byte, version uint16, called, calling, appCtx string) []byte {
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, 0, 0)
	b = appendAETitle(b, called)
	b = appendAETitle(b, calling)
	b = append(b, make([]byte, 32)...)
	return appendUIDItem(b, itemApplicationContext, appCtx)
}

func decodeAssociateHeader(body []byte) (version uint16, called, calling string, rest []byte, err error) {
	if len(body) < associateHeaderLength {
		return 0, "", "", nil, protoErr(AbortReasonInvalidParameter, "A-ASSOCIATE header truncated")
	}
	version = binary.BigEndian.Uint16(body)
	called, calling = aeField(body[4:20]), aeField(body[20:36])
	return version, called, calling, body[associateHeaderLength:], nil
}

// aeField reads an AE title field. Only spaces (20H) are non-significant (PS3.8 Table 9-11);
// anything else, control characters included, is kept for the acceptor to judge, except NULs
// that pad the end, which some implementations write and DCMTK reads as the end of the title.
func aeField(f []byte) string {
	return strings.Trim(strings.TrimRight(string(f), "\x00 "), " ")
}

// associateFields are what A-ASSOCIATE-RQ and -AC share after the fixed header.
type associateFields struct {
	appContext  string
	userInfo    UserInfo
	hasUserInfo bool
}

// decodeAssociateItems walks the variable items of an A-ASSOCIATE-RQ or -AC: the application
// context and user information are common; presentation context items of type pcItem go to
// onContext, and any other item is a protocol error.
func decodeAssociateItems(rest []byte, t PDUType, pcItem byte, onContext func([]byte) error) (associateFields, error) {
	var f associateFields
	var err error
	r := itemReader{b: rest}
	for typ, v, ok := r.next(); ok; typ, v, ok = r.next() {
		switch typ {
		case itemApplicationContext:
			if f.appContext, err = decodeUID("application context", v); err != nil {
				return f, err
			}
		case pcItem:
			if err := onContext(v); err != nil {
				return f, err
			}
		case itemUserInformation:
			if err := f.userInfo.decode(v); err != nil {
				return f, err
			}
			f.hasUserInfo = true
		default:
			return f, protoErr(AbortReasonUnrecognizedParameter, "unexpected item 0x%02X in %s", typ, t)
		}
	}
	if r.err != nil {
		return f, r.err
	}
	if f.appContext == "" {
		return f, protoErr(AbortReasonInvalidParameter, "%s without application context", t)
	}
	return f, nil
}

// AssociateRQ is the A-ASSOCIATE-RQ PDU (PS3.8 9.3.2).
type AssociateRQ struct {
	ProtocolVersion      uint16
	CalledAE             string
	CallingAE            string
	ApplicationContext   string
	PresentationContexts []PresentationContextRQ
	UserInfo             UserInfo
	// hasUserInfo records that a decoded request carried the user information item, which PS3.8
	// 9.3.2 makes mandatory; Encode always writes one.
	hasUserInfo bool
}

func (*AssociateRQ) Type() PDUType { return TypeAssociateRQ }

func (p *AssociateRQ) Encode(dst []byte) []byte {
	b, at := beginPDU(dst, TypeAssociateRQ)
	b = appendAssociateHeader(b, p.ProtocolVersion, p.CalledAE, p.CallingAE, p.ApplicationContext)
	for i := range p.PresentationContexts {
		b = p.PresentationContexts[i].appendItem(b)
	}
	b = p.UserInfo.appendItem(b)
	return endPDU(b, at)
}

func (p *AssociateRQ) Decode(body []byte) error {
	version, called, calling, rest, err := decodeAssociateHeader(body)
	if err != nil {
		return err
	}
	*p = AssociateRQ{ProtocolVersion: version, CalledAE: called, CallingAE: calling}
	f, err := decodeAssociateItems(rest, TypeAssociateRQ, itemPresentationContextRQ, func(v []byte) error {
		var pc PresentationContextRQ
		err := pc.decode(v)
		p.PresentationContexts = append(p.PresentationContexts, pc)
		return err
	})
	if err != nil {
		return err
	}
	p.ApplicationContext, p.UserInfo, p.hasUserInfo = f.appContext, f.userInfo, f.hasUserInfo
	return nil
}

// missingItems names the items PS3.8 9.3.2 requires of an A-ASSOCIATE-RQ that a decoded request
// lacks: at least one presentation context, the user information item and its maximum length
// sub-item (PS3.8 D.1). The decoder accepts their absence so that AE-6 can answer it with an
// A-ASSOCIATE-RJ rather than the requestor seeing only an abort.
func (p *AssociateRQ) missingItems() []string {
	var out []string
	if len(p.PresentationContexts) == 0 {
		out = append(out, "presentation context item")
	}
	if !p.hasUserInfo {
		out = append(out, "user information item")
	} else if !p.UserInfo.hasMaxLength {
		out = append(out, "maximum length sub-item")
	}
	return out
}

// PresentationContextRQ proposes one abstract syntax with the transfer syntaxes the requestor
// offers: the presentation context item of an A-ASSOCIATE-RQ (PS3.8 9.3.2.2).
type PresentationContextRQ struct {
	ID               byte
	AbstractSyntax   string
	TransferSyntaxes []string
}

func (pc *PresentationContextRQ) appendItem(b []byte) []byte {
	b, at := beginItem(b, itemPresentationContextRQ)
	b = append(b, pc.ID, 0, 0, 0)
	b = appendUIDItem(b, itemAbstractSyntax, pc.AbstractSyntax)
	for _, ts := range pc.TransferSyntaxes {
		b = appendUIDItem(b, itemTransferSyntax, ts)
	}
	return endItem(b, at)
}

func (pc *PresentationContextRQ) decode(v []byte) error {
	if len(v) < 4 {
		return protoErr(AbortReasonInvalidParameter, "presentation context item truncated")
	}
	*pc = PresentationContextRQ{ID: v[0]}
	r := itemReader{b: v[4:]}
	for typ, sub, ok := r.next(); ok; typ, sub, ok = r.next() {
		switch typ {
		case itemAbstractSyntax:
			uid, err := decodeUID("abstract syntax", sub)
			if err != nil {
				return err
			}
			pc.AbstractSyntax = uid
		case itemTransferSyntax:
			uid, err := decodeUID("transfer syntax", sub)
			if err != nil {
				return err
			}
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, uid)
		default:
			return protoErr(AbortReasonUnrecognizedParameter, "unexpected sub-item 0x%02X in presentation context %d", typ, pc.ID)
		}
	}
	if r.err != nil {
		return r.err
	}
	if pc.AbstractSyntax == "" || len(pc.TransferSyntaxes) == 0 {
		return protoErr(AbortReasonInvalidParameter, "presentation context %d lacks an abstract or transfer syntax", pc.ID)
	}
	return nil
}

// AssociateAC is the A-ASSOCIATE-AC PDU (PS3.8 9.3.3). Called and calling AE are echoed from the
// request (the standard says the receiver must not test them, but peers log them).
type AssociateAC struct {
	ProtocolVersion      uint16
	CalledAE             string
	CallingAE            string
	ApplicationContext   string
	PresentationContexts []PresentationContextAC
	UserInfo             UserInfo
}

func (*AssociateAC) Type() PDUType { return TypeAssociateAC }

func (p *AssociateAC) Encode(dst []byte) []byte {
	b, at := beginPDU(dst, TypeAssociateAC)
	b = appendAssociateHeader(b, p.ProtocolVersion, p.CalledAE, p.CallingAE, p.ApplicationContext)
	for i := range p.PresentationContexts {
		b = p.PresentationContexts[i].appendItem(b)
	}
	b = p.UserInfo.appendItem(b)
	return endPDU(b, at)
}

func (p *AssociateAC) Decode(body []byte) error {
	version, called, calling, rest, err := decodeAssociateHeader(body)
	if err != nil {
		return err
	}
	*p = AssociateAC{ProtocolVersion: version, CalledAE: called, CallingAE: calling}
	f, err := decodeAssociateItems(rest, TypeAssociateAC, itemPresentationContextAC, func(v []byte) error {
		var pc PresentationContextAC
		err := pc.decode(v)
		p.PresentationContexts = append(p.PresentationContexts, pc)
		return err
	})
	if err != nil {
		return err
	}
	p.ApplicationContext, p.UserInfo = f.appContext, f.userInfo
	return nil
}

// Presentation context results (PS3.8 9.3.3.2).
const (
	ResultAcceptance                   byte = 0
	ResultUserRejection                byte = 1
	ResultNoReason                     byte = 2
	ResultAbstractSyntaxNotSupported   byte = 3
	ResultTransferSyntaxesNotSupported byte = 4
)

// PresentationContextAC answers one proposed context: the presentation context item of an
// A-ASSOCIATE-AC (PS3.8 9.3.3.2).
type PresentationContextAC struct {
	ID             byte
	Result         byte
	TransferSyntax string
}

func (pc *PresentationContextAC) appendItem(b []byte) []byte {
	b, at := beginItem(b, itemPresentationContextAC)
	b = append(b, pc.ID, 0, pc.Result, 0)
	// PS3.8 9.3.3.2: the transfer syntax sub-item is present but not significant on rejection.
	b = appendUIDItem(b, itemTransferSyntax, pc.TransferSyntax)
	return endItem(b, at)
}

func (pc *PresentationContextAC) decode(v []byte) error {
	if len(v) < 4 {
		return protoErr(AbortReasonInvalidParameter, "presentation context item truncated")
	}
	*pc = PresentationContextAC{ID: v[0], Result: v[2]}
	r := itemReader{b: v[4:]}
	for typ, sub, ok := r.next(); ok; typ, sub, ok = r.next() {
		if typ != itemTransferSyntax {
			return protoErr(AbortReasonUnrecognizedParameter, "unexpected sub-item 0x%02X in presentation context %d", typ, pc.ID)
		}
		// Empty is allowed: the syntax is not significant when the context was rejected.
		if len(sub) > maxUIDLength {
			return protoErr(AbortReasonInvalidParameter, "transfer syntax UID length %d", len(sub))
		}
		pc.TransferSyntax = strings.TrimRight(string(sub), "\x00 ")
	}
	return r.err
}

// UserInfo is the user information item with its sub-items (PS3.8 D.1, PS3.7 D.3.3).
type UserInfo struct {
	MaxLength                 uint32 // 0: unlimited
	ImplementationClassUID    string
	ImplementationVersionName string
	AsyncOps                  *AsyncOpsWindow
	RoleSelections            []RoleSelection
	UserIdentity              *UserIdentity
	UserIdentityResponse      []byte // A-ASSOCIATE-AC only; nil when absent
	// Extended negotiation (SOP class and common extended) and unknown sub-items are kept as bytes:
	// the node has no use for their contents but must not lose or misread them.
	Extended []RawItem
	// hasMaxLength records that a decoded item carried the mandatory maximum length sub-item;
	// appendItem always writes one.
	hasMaxLength bool
}

func (u *UserInfo) appendItem(b []byte) []byte {
	b, at := beginItem(b, itemUserInformation)
	b = appendItem(b, itemMaximumLength, binary.BigEndian.AppendUint32(nil, u.MaxLength))
	if u.ImplementationClassUID != "" {
		b = appendUIDItem(b, itemImplementationClass, u.ImplementationClassUID)
	}
	if u.AsyncOps != nil {
		b = u.AsyncOps.appendItem(b)
	}
	for i := range u.RoleSelections {
		b = u.RoleSelections[i].appendItem(b)
	}
	if u.ImplementationVersionName != "" {
		b = appendItem(b, itemImplementationVersion, []byte(u.ImplementationVersionName))
	}
	for _, x := range u.Extended {
		b = appendItem(b, x.Type, x.Data)
	}
	if u.UserIdentity != nil {
		b = u.UserIdentity.appendItem(b)
	}
	if u.UserIdentityResponse != nil {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(u.UserIdentityResponse)))
		b = appendItem(b, itemUserIdentityAC, append(v, u.UserIdentityResponse...))
	}
	return endItem(b, at)
}

// decode reads the sub-items; values that outlive the PDU's buffer are copied.
func (u *UserInfo) decode(v []byte) error {
	*u = UserInfo{}
	r := itemReader{b: v}
	for typ, sub, ok := r.next(); ok; typ, sub, ok = r.next() {
		switch typ {
		case itemMaximumLength:
			if len(sub) != 4 {
				return protoErr(AbortReasonInvalidParameter, "maximum length sub-item length %d", len(sub))
			}
			u.MaxLength = binary.BigEndian.Uint32(sub)
			u.hasMaxLength = true
		case itemImplementationClass:
			uid, err := decodeUID("implementation class", sub)
			if err != nil {
				return err
			}
			u.ImplementationClassUID = uid
		case itemImplementationVersion:
			if len(sub) > maxAETitleLength {
				return protoErr(AbortReasonInvalidParameter, "implementation version name length %d", len(sub))
			}
			u.ImplementationVersionName = strings.TrimSpace(string(sub))
		case itemAsyncOpsWindow:
			w := &AsyncOpsWindow{}
			if err := w.decode(sub); err != nil {
				return err
			}
			u.AsyncOps = w
		case itemRoleSelection:
			var rs RoleSelection
			if err := rs.decode(sub); err != nil {
				return err
			}
			u.RoleSelections = append(u.RoleSelections, rs)
		case itemUserIdentityRQ:
			id := &UserIdentity{}
			if err := id.decode(sub); err != nil {
				return err
			}
			u.UserIdentity = id
		case itemUserIdentityAC:
			if len(sub) < 2 || int(binary.BigEndian.Uint16(sub)) != len(sub)-2 {
				return protoErr(AbortReasonInvalidParameter, "user identity response malformed")
			}
			u.UserIdentityResponse = append([]byte{}, sub[2:]...)
		default:
			u.Extended = append(u.Extended, RawItem{Type: typ, Data: append([]byte{}, sub...)})
		}
	}
	return r.err
}

// AsyncOpsWindow is the asynchronous operations window sub-item (PS3.7 D.3.3.3).
type AsyncOpsWindow struct {
	MaxInvoked   uint16
	MaxPerformed uint16
}

func (w *AsyncOpsWindow) appendItem(b []byte) []byte {
	v := binary.BigEndian.AppendUint16(nil, w.MaxInvoked)
	v = binary.BigEndian.AppendUint16(v, w.MaxPerformed)
	return appendItem(b, itemAsyncOpsWindow, v)
}

func (w *AsyncOpsWindow) decode(sub []byte) error {
	if len(sub) != 4 {
		return protoErr(AbortReasonInvalidParameter, "asynchronous operations window length %d", len(sub))
	}
	*w = AsyncOpsWindow{MaxInvoked: binary.BigEndian.Uint16(sub), MaxPerformed: binary.BigEndian.Uint16(sub[2:])}
	return nil
}

// RoleSelection is the SCP/SCU role selection sub-item (PS3.7 D.3.3.4).
type RoleSelection struct {
	SOPClassUID string
	SCURole     bool
	SCPRole     bool
}

func (rs *RoleSelection) appendItem(b []byte) []byte {
	v := binary.BigEndian.AppendUint16(nil, uint16(len(rs.SOPClassUID)))
	v = append(v, rs.SOPClassUID...)
	v = append(v, boolByte(rs.SCURole), boolByte(rs.SCPRole))
	return appendItem(b, itemRoleSelection, v)
}

func (rs *RoleSelection) decode(sub []byte) error {
	if len(sub) < 4 {
		return protoErr(AbortReasonInvalidParameter, "role selection sub-item truncated")
	}
	n := int(binary.BigEndian.Uint16(sub))
	if n == 0 || n > maxUIDLength || len(sub) != 2+n+2 {
		return protoErr(AbortReasonInvalidParameter, "role selection UID length %d in a %d-byte sub-item", n, len(sub))
	}
	*rs = RoleSelection{
		SOPClassUID: strings.TrimRight(string(sub[2:2+n]), "\x00 "),
		SCURole:     sub[2+n] == 1,
		SCPRole:     sub[3+n] == 1,
	}
	return nil
}

// UserIdentity is the user identity negotiation sub-item of an A-ASSOCIATE-RQ (PS3.7 D.3.3.7).
type UserIdentity struct {
	Type                     byte
	PositiveResponseRequired bool
	Primary                  []byte
	Secondary                []byte
}

func (id *UserIdentity) appendItem(b []byte) []byte {
	v := []byte{id.Type, boolByte(id.PositiveResponseRequired)}
	v = binary.BigEndian.AppendUint16(v, uint16(len(id.Primary)))
	v = append(v, id.Primary...)
	v = binary.BigEndian.AppendUint16(v, uint16(len(id.Secondary)))
	v = append(v, id.Secondary...)
	return appendItem(b, itemUserIdentityRQ, v)
}

func (id *UserIdentity) decode(sub []byte) error {
	bad := protoErr(AbortReasonInvalidParameter, "user identity sub-item malformed")
	if len(sub) < 6 {
		return bad
	}
	n := int(binary.BigEndian.Uint16(sub[2:]))
	if 4+n+2 > len(sub) {
		return bad
	}
	rest := sub[4+n:]
	m := int(binary.BigEndian.Uint16(rest))
	if 2+m != len(rest) {
		return bad
	}
	*id = UserIdentity{
		Type:                     sub[0],
		PositiveResponseRequired: sub[1] == 1,
		Primary:                  append([]byte{}, sub[4:4+n]...),
		Secondary:                append([]byte{}, rest[2:]...),
	}
	return nil
}

// RawItem is a sub-item kept undecoded.
type RawItem struct {
	Type byte
	Data []byte
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// A-ASSOCIATE-RJ result, source and reason values (PS3.8 9.3.4).
const (
	RejectPermanent byte = 1
	RejectTransient byte = 2

	RejectSourceUser         byte = 1 // DICOM UL service-user
	RejectSourceACSE         byte = 2 // DICOM UL service-provider (ACSE related function)
	RejectSourcePresentation byte = 3 // DICOM UL service-provider (presentation related function)

	// Reasons with source 1 (service-user).
	RejectReasonUserNoReason           byte = 1
	RejectReasonAppContextNotSupported byte = 2
	RejectReasonCallingAENotRecognized byte = 3
	RejectReasonCalledAENotRecognized  byte = 7
	// Reasons with source 2 (ACSE).
	RejectReasonACSENoReason           byte = 1
	RejectReasonProtocolVersionNotSupp byte = 2
	// Reasons with source 3 (presentation).
	RejectReasonTemporaryCongestion byte = 1
	RejectReasonLocalLimitExceeded  byte = 2
)

// AssociateRJ is the A-ASSOCIATE-RJ PDU (PS3.8 9.3.4).
type AssociateRJ struct {
	Result byte
	Source byte
	Reason byte
}

func (p *AssociateRJ) String() string {
	return fmt.Sprintf("result %d, source %d, reason %d", p.Result, p.Source, p.Reason)
}

func (*AssociateRJ) Type() PDUType { return TypeAssociateRJ }

func (p *AssociateRJ) Encode(dst []byte) []byte {
	b, at := beginPDU(dst, TypeAssociateRJ)
	b = append(b, 0, p.Result, p.Source, p.Reason)
	return endPDU(b, at)
}

func (p *AssociateRJ) Decode(body []byte) error {
	if len(body) != 4 {
		return protoErr(AbortReasonInvalidParameter, "A-ASSOCIATE-RJ length %d", len(body))
	}
	*p = AssociateRJ{Result: body[1], Source: body[2], Reason: body[3]}
	return nil
}

// PDataTF is the P-DATA-TF PDU (PS3.8 9.3.5). The Association streams its PDVs from the wire
// instead; this type is the whole PDU for tests and tools.
type PDataTF struct {
	Items []PDV
}

func (*PDataTF) Type() PDUType { return TypePDataTF }

func (p *PDataTF) Encode(dst []byte) []byte {
	b, at := beginPDU(dst, TypePDataTF)
	for i := range p.Items {
		b = p.Items[i].appendItem(b)
	}
	return endPDU(b, at)
}

// Decode reads the PDV items; their Data alias body.
func (p *PDataTF) Decode(body []byte) error {
	*p = PDataTF{}
	if len(body) == 0 {
		return protoErr(AbortReasonInvalidParameter, "P-DATA-TF without PDV items")
	}
	for len(body) > 0 {
		var v PDV
		n, err := v.decode(body)
		if err != nil {
			return err
		}
		p.Items = append(p.Items, v)
		body = body[n:]
	}
	return nil
}

// pdvHeaderLength is the item length (4 bytes), the context ID and the message control header.
const pdvHeaderLength = 6

// PDV is one presentation data value item of a P-DATA-TF PDU (PS3.8 9.3.5.1, Annex E).
type PDV struct {
	ContextID byte
	Command   bool // message control header bit 0
	Last      bool // message control header bit 1
	Data      []byte
}

func (v *PDV) control() byte {
	var c byte
	if v.Command {
		c |= 1
	}
	if v.Last {
		c |= 2
	}
	return c
}

func (v *PDV) appendItem(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)+2))
	b = append(b, v.ContextID, v.control())
	return append(b, v.Data...)
}

// decode reads one PDV item from the start of b and returns the bytes it took; Data aliases b.
func (v *PDV) decode(b []byte) (int, error) {
	if len(b) < pdvHeaderLength {
		return 0, protoErr(AbortReasonInvalidParameter, "truncated PDV item header")
	}
	n := binary.BigEndian.Uint32(b)
	if n < 2 || uint64(n) > uint64(len(b)-4) {
		return 0, protoErr(AbortReasonInvalidParameter, "PDV item length %d exceeds the PDU", n)
	}
	*v = PDV{ContextID: b[4], Command: b[5]&1 != 0, Last: b[5]&2 != 0, Data: b[pdvHeaderLength : 4+n]}
	return int(4 + n), nil
}

// ReleaseRQ is the A-RELEASE-RQ PDU (PS3.8 9.3.6); it carries no parameters.
type ReleaseRQ struct{}

func (*ReleaseRQ) Type() PDUType { return TypeReleaseRQ }

func (*ReleaseRQ) Encode(dst []byte) []byte {
	b, at := beginPDU(dst, TypeReleaseRQ)
	return endPDU(append(b, 0, 0, 0, 0), at)
}

func (*ReleaseRQ) Decode(body []byte) error {
	if len(body) != 4 {
		return protoErr(AbortReasonInvalidParameter, "%s length %d", TypeReleaseRQ, len(body))
	}
	return nil
}

// ReleaseRP is the A-RELEASE-RP PDU (PS3.8 9.3.7); it carries no parameters.
type ReleaseRP struct{}

func (*ReleaseRP) Type() PDUType { return TypeReleaseRP }

func (*ReleaseRP) Encode(dst []byte) []byte {
	b, at := beginPDU(dst, TypeReleaseRP)
	return endPDU(append(b, 0, 0, 0, 0), at)
}

func (*ReleaseRP) Decode(body []byte) error {
	if len(body) != 4 {
		return protoErr(AbortReasonInvalidParameter, "%s length %d", TypeReleaseRP, len(body))
	}
	return nil
}

// AbortSource and AbortReason are the A-ABORT parameters (PS3.8 9.3.8).
type AbortSource byte
type AbortReason byte

const (
	AbortSourceUser     AbortSource = 0
	AbortSourceProvider AbortSource = 2

	AbortReasonNotSpecified          AbortReason = 0
	AbortReasonUnrecognizedPDU       AbortReason = 1
	AbortReasonUnexpectedPDU         AbortReason = 2
	AbortReasonUnrecognizedParameter AbortReason = 4
	AbortReasonUnexpectedParameter   AbortReason = 5
	AbortReasonInvalidParameter      AbortReason = 6
)

// Abort is the A-ABORT PDU (PS3.8 9.3.8).
type Abort struct {
	Source AbortSource
	Reason AbortReason
}

func (p *Abort) String() string {
	return fmt.Sprintf("source %d, reason %d", p.Source, p.Reason)
}

func (*Abort) Type() PDUType { return TypeAbort }

func (p *Abort) Encode(dst []byte) []byte {
	b, at := beginPDU(dst, TypeAbort)
	b = append(b, 0, 0, byte(p.Source), byte(p.Reason))
	return endPDU(b, at)
}

func (p *Abort) Decode(body []byte) error {
	if len(body) != 4 {
		return protoErr(AbortReasonInvalidParameter, "A-ABORT length %d", len(body))
	}
	*p = Abort{Source: AbortSource(body[2]), Reason: AbortReason(body[3])}
	return nil
}
