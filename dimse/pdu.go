package dimse

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

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
	maxAETitleLength    = 16
	maxUIDLength        = 64
)

// ApplicationContextName is the only application context PS3.7 defines.
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

// PDU is one protocol data unit; each concrete type encodes its own variable field.
type PDU interface {
	Type() PDUType
	appendBody(b []byte) []byte
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

// AssociateRQ is the A-ASSOCIATE-RQ PDU.
type AssociateRQ struct {
	ProtocolVersion      uint16
	CalledAE             string
	CallingAE            string
	ApplicationContext   string
	PresentationContexts []PresentationContextRQ
	UserInfo             UserInfo
}

// AssociateAC is the A-ASSOCIATE-AC PDU. Called and calling AE are echoed from the request
// (the standard says the receiver must not test them, but peers log them).
type AssociateAC struct {
	ProtocolVersion      uint16
	CalledAE             string
	CallingAE            string
	ApplicationContext   string
	PresentationContexts []PresentationContextAC
	UserInfo             UserInfo
}

// PresentationContextRQ proposes one abstract syntax with the transfer syntaxes the requestor offers.
type PresentationContextRQ struct {
	ID               byte
	AbstractSyntax   string
	TransferSyntaxes []string
}

// Presentation context results (PS3.8 9.3.3.2).
const (
	ResultAcceptance                   byte = 0
	ResultUserRejection                byte = 1
	ResultNoReason                     byte = 2
	ResultAbstractSyntaxNotSupported   byte = 3
	ResultTransferSyntaxesNotSupported byte = 4
)

// PresentationContextAC answers one proposed context.
type PresentationContextAC struct {
	ID             byte
	Result         byte
	TransferSyntax string
}

// UserInfo is the user information item with its sub-items.
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
}

// AsyncOpsWindow is the asynchronous operations window sub-item.
type AsyncOpsWindow struct {
	MaxInvoked   uint16
	MaxPerformed uint16
}

// RoleSelection is the SCP/SCU role selection sub-item.
type RoleSelection struct {
	SOPClassUID string
	SCURole     bool
	SCPRole     bool
}

// UserIdentity is the user identity negotiation sub-item of an A-ASSOCIATE-RQ.
type UserIdentity struct {
	Type                     byte
	PositiveResponseRequired bool
	Primary                  []byte
	Secondary                []byte
}

// RawItem is a sub-item kept undecoded.
type RawItem struct {
	Type byte
	Data []byte
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

// AssociateRJ is the A-ASSOCIATE-RJ PDU.
type AssociateRJ struct {
	Result byte
	Source byte
	Reason byte
}

func (p *AssociateRJ) String() string {
	return fmt.Sprintf("result %d, source %d, reason %d", p.Result, p.Source, p.Reason)
}

// PDV is one presentation data value item of a P-DATA-TF PDU.
type PDV struct {
	ContextID byte
	Command   bool // message control header bit 0
	Last      bool // message control header bit 1
	Data      []byte
}

func (v PDV) control() byte {
	var c byte
	if v.Command {
		c |= 1
	}
	if v.Last {
		c |= 2
	}
	return c
}

// PDataTF is the P-DATA-TF PDU.
type PDataTF struct {
	Items []PDV
}

// ReleaseRQ and ReleaseRP carry no parameters.
type ReleaseRQ struct{}
type ReleaseRP struct{}

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

// Abort is the A-ABORT PDU.
type Abort struct {
	Source AbortSource
	Reason AbortReason
}

func (p *Abort) String() string {
	return fmt.Sprintf("source %d, reason %d", p.Source, p.Reason)
}

func (*AssociateRQ) Type() PDUType { return TypeAssociateRQ }
func (*AssociateAC) Type() PDUType { return TypeAssociateAC }
func (*AssociateRJ) Type() PDUType { return TypeAssociateRJ }
func (*PDataTF) Type() PDUType     { return TypePDataTF }
func (*ReleaseRQ) Type() PDUType   { return TypeReleaseRQ }
func (*ReleaseRP) Type() PDUType   { return TypeReleaseRP }
func (*Abort) Type() PDUType       { return TypeAbort }

// EncodePDU returns the PDU's bytes on the wire, header included.
func EncodePDU(p PDU) []byte {
	return AppendPDU(make([]byte, 0, 256), p)
}

// AppendPDU appends the encoded PDU to b.
func AppendPDU(b []byte, p PDU) []byte {
	start := len(b)
	b = append(b, byte(p.Type()), 0, 0, 0, 0, 0)
	b = p.appendBody(b)
	binary.BigEndian.PutUint32(b[start+2:], uint32(len(b)-start-pduHeaderLength))
	return b
}

func appendAE(b []byte, ae string) []byte {
	var f [16]byte
	for i := range f {
		f[i] = ' '
	}
	copy(f[:], ae)
	return append(b, f[:]...)
}

func appendItem(b []byte, typ byte, value []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// beginItem writes an item header whose length is patched by endItem.
func beginItem(b []byte, typ byte) ([]byte, int) {
	return append(b, typ, 0, 0, 0), len(b)
}

func endItem(b []byte, at int) []byte {
	binary.BigEndian.PutUint16(b[at+2:], uint16(len(b)-at-4))
	return b
}

func appendAssociateHeader(b []byte, version uint16, called, calling, appCtx string) []byte {
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, 0, 0)
	b = appendAE(b, called)
	b = appendAE(b, calling)
	b = append(b, make([]byte, 32)...)
	return appendItem(b, itemApplicationContext, []byte(appCtx))
}

func (p *AssociateRQ) appendBody(b []byte) []byte {
	b = appendAssociateHeader(b, p.ProtocolVersion, p.CalledAE, p.CallingAE, p.ApplicationContext)
	for _, pc := range p.PresentationContexts {
		var at int
		b, at = beginItem(b, itemPresentationContextRQ)
		b = append(b, pc.ID, 0, 0, 0)
		b = appendItem(b, itemAbstractSyntax, []byte(pc.AbstractSyntax))
		for _, ts := range pc.TransferSyntaxes {
			b = appendItem(b, itemTransferSyntax, []byte(ts))
		}
		b = endItem(b, at)
	}
	return p.UserInfo.appendItem(b)
}

func (p *AssociateAC) appendBody(b []byte) []byte {
	b = appendAssociateHeader(b, p.ProtocolVersion, p.CalledAE, p.CallingAE, p.ApplicationContext)
	for _, pc := range p.PresentationContexts {
		var at int
		b, at = beginItem(b, itemPresentationContextAC)
		b = append(b, pc.ID, 0, pc.Result, 0)
		// PS3.8 9.3.3.2: the transfer syntax sub-item is present but not significant on rejection.
		b = appendItem(b, itemTransferSyntax, []byte(pc.TransferSyntax))
		b = endItem(b, at)
	}
	return p.UserInfo.appendItem(b)
}

func (u *UserInfo) appendItem(b []byte) []byte {
	var at int
	b, at = beginItem(b, itemUserInformation)
	b = appendItem(b, itemMaximumLength, binary.BigEndian.AppendUint32(nil, u.MaxLength))
	if u.ImplementationClassUID != "" {
		b = appendItem(b, itemImplementationClass, []byte(u.ImplementationClassUID))
	}
	if u.AsyncOps != nil {
		v := binary.BigEndian.AppendUint16(nil, u.AsyncOps.MaxInvoked)
		v = binary.BigEndian.AppendUint16(v, u.AsyncOps.MaxPerformed)
		b = appendItem(b, itemAsyncOpsWindow, v)
	}
	for _, r := range u.RoleSelections {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(r.SOPClassUID)))
		v = append(v, r.SOPClassUID...)
		v = append(v, boolByte(r.SCURole), boolByte(r.SCPRole))
		b = appendItem(b, itemRoleSelection, v)
	}
	if u.ImplementationVersionName != "" {
		b = appendItem(b, itemImplementationVersion, []byte(u.ImplementationVersionName))
	}
	for _, x := range u.Extended {
		b = appendItem(b, x.Type, x.Data)
	}
	if id := u.UserIdentity; id != nil {
		v := []byte{id.Type, boolByte(id.PositiveResponseRequired)}
		v = binary.BigEndian.AppendUint16(v, uint16(len(id.Primary)))
		v = append(v, id.Primary...)
		v = binary.BigEndian.AppendUint16(v, uint16(len(id.Secondary)))
		v = append(v, id.Secondary...)
		b = appendItem(b, itemUserIdentityRQ, v)
	}
	if u.UserIdentityResponse != nil {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(u.UserIdentityResponse)))
		b = appendItem(b, itemUserIdentityAC, append(v, u.UserIdentityResponse...))
	}
	return endItem(b, at)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func (p *AssociateRJ) appendBody(b []byte) []byte { return append(b, 0, p.Result, p.Source, p.Reason) }
func (*ReleaseRQ) appendBody(b []byte) []byte     { return append(b, 0, 0, 0, 0) }
func (*ReleaseRP) appendBody(b []byte) []byte     { return append(b, 0, 0, 0, 0) }
func (p *Abort) appendBody(b []byte) []byte {
	return append(b, 0, 0, byte(p.Source), byte(p.Reason))
}

func (p *PDataTF) appendBody(b []byte) []byte {
	for _, v := range p.Items {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)+2))
		b = append(b, v.ContextID, v.control())
		b = append(b, v.Data...)
	}
	return b
}

// PDUHeader is the fixed six-byte header of every PDU.
type PDUHeader struct {
	Type   PDUType
	Length uint32
}

// ReadPDUHeader reads the six-byte PDU header.
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
		if h.Length < 68 || h.Length > MaxAssociatePDULength {
			return protoErr(AbortReasonInvalidParameter, "%s length %d outside 68..%d", h.Type, h.Length, MaxAssociatePDULength)
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

// ReadPDU reads and decodes one whole PDU. maxPData bounds the length of a P-DATA-TF PDU (our
// announced maximum length); other types have fixed bounds. Errors that are the peer's fault are
// *ProtocolError; I/O errors are returned as they are.
func ReadPDU(r io.Reader, maxPData uint32) (PDU, error) {
	h, err := ReadPDUHeader(r)
	if err != nil {
		return nil, err
	}
	if err := h.checkLength(maxPData); err != nil {
		return nil, err
	}
	body := make([]byte, h.Length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read %s body: %w", h.Type, noEOF(err))
	}
	return DecodePDUBody(h.Type, body)
}

// noEOF turns a clean EOF inside a PDU into ErrUnexpectedEOF: the peer stopped mid-PDU.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// DecodePDUBody decodes a PDU's variable field.
func DecodePDUBody(t PDUType, body []byte) (PDU, error) {
	switch t {
	case TypeAssociateRQ:
		return decodeAssociateRQ(body)
	case TypeAssociateAC:
		return decodeAssociateAC(body)
	case TypeAssociateRJ:
		if len(body) != 4 {
			return nil, protoErr(AbortReasonInvalidParameter, "A-ASSOCIATE-RJ length %d", len(body))
		}
		return &AssociateRJ{Result: body[1], Source: body[2], Reason: body[3]}, nil
	case TypePDataTF:
		var p PDataTF
		err := forEachPDV(body, func(v PDV) error {
			p.Items = append(p.Items, v)
			return nil
		})
		return &p, err
	case TypeReleaseRQ, TypeReleaseRP:
		if len(body) != 4 {
			return nil, protoErr(AbortReasonInvalidParameter, "%s length %d", t, len(body))
		}
		if t == TypeReleaseRQ {
			return &ReleaseRQ{}, nil
		}
		return &ReleaseRP{}, nil
	case TypeAbort:
		if len(body) != 4 {
			return nil, protoErr(AbortReasonInvalidParameter, "A-ABORT length %d", len(body))
		}
		return &Abort{Source: AbortSource(body[2]), Reason: AbortReason(body[3])}, nil
	}
	return nil, protoErr(AbortReasonUnrecognizedPDU, "unrecognized PDU type 0x%02X", byte(t))
}

// forEachPDV walks the PDV items of a P-DATA-TF body; the PDVs' Data alias body.
func forEachPDV(body []byte, fn func(PDV) error) error {
	if len(body) == 0 {
		return protoErr(AbortReasonInvalidParameter, "P-DATA-TF without PDV items")
	}
	for len(body) > 0 {
		if len(body) < 6 {
			return protoErr(AbortReasonInvalidParameter, "truncated PDV item header")
		}
		n := binary.BigEndian.Uint32(body)
		if n < 2 || uint64(n) > uint64(len(body)-4) {
			return protoErr(AbortReasonInvalidParameter, "PDV item length %d exceeds the PDU", n)
		}
		v := PDV{ContextID: body[4], Command: body[5]&1 != 0, Last: body[5]&2 != 0, Data: body[6 : 4+n]}
		if err := fn(v); err != nil {
			return err
		}
		body = body[4+n:]
	}
	return nil
}

// itemReader walks the items of a variable field.
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

func decodeAssociateHeader(body []byte) (version uint16, called, calling string, rest []byte, err error) {
	if len(body) < 68 {
		return 0, "", "", nil, protoErr(AbortReasonInvalidParameter, "A-ASSOCIATE header truncated")
	}
	version = binary.BigEndian.Uint16(body)
	called = strings.TrimSpace(string(body[4:20]))
	calling = strings.TrimSpace(string(body[20:36]))
	return version, called, calling, body[68:], nil
}

func decodeUID(what string, v []byte) (string, error) {
	if len(v) == 0 || len(v) > maxUIDLength {
		return "", protoErr(AbortReasonInvalidParameter, "%s UID length %d", what, len(v))
	}
	// Some implementations pad UIDs with a NUL to even length although items are not padded.
	return strings.TrimRight(string(v), "\x00 "), nil
}

// associateFields are what A-ASSOCIATE-RQ and -AC share after the fixed header.
type associateFields struct {
	appContext string
	userInfo   UserInfo
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
			if f.userInfo, err = decodeUserInfo(v); err != nil {
				return f, err
			}
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

func decodeAssociateRQ(body []byte) (*AssociateRQ, error) {
	version, called, calling, rest, err := decodeAssociateHeader(body)
	if err != nil {
		return nil, err
	}
	p := &AssociateRQ{ProtocolVersion: version, CalledAE: called, CallingAE: calling}
	f, err := decodeAssociateItems(rest, TypeAssociateRQ, itemPresentationContextRQ, func(v []byte) error {
		pc, err := decodePresentationContextRQ(v)
		p.PresentationContexts = append(p.PresentationContexts, pc)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.ApplicationContext, p.UserInfo = f.appContext, f.userInfo
	return p, nil
}

func decodePresentationContextRQ(v []byte) (PresentationContextRQ, error) {
	if len(v) < 4 {
		return PresentationContextRQ{}, protoErr(AbortReasonInvalidParameter, "presentation context item truncated")
	}
	pc := PresentationContextRQ{ID: v[0]}
	r := itemReader{b: v[4:]}
	for typ, sub, ok := r.next(); ok; typ, sub, ok = r.next() {
		switch typ {
		case itemAbstractSyntax:
			uid, err := decodeUID("abstract syntax", sub)
			if err != nil {
				return pc, err
			}
			pc.AbstractSyntax = uid
		case itemTransferSyntax:
			uid, err := decodeUID("transfer syntax", sub)
			if err != nil {
				return pc, err
			}
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, uid)
		default:
			return pc, protoErr(AbortReasonUnrecognizedParameter, "unexpected sub-item 0x%02X in presentation context %d", typ, pc.ID)
		}
	}
	if r.err != nil {
		return pc, r.err
	}
	if pc.AbstractSyntax == "" || len(pc.TransferSyntaxes) == 0 {
		return pc, protoErr(AbortReasonInvalidParameter, "presentation context %d lacks an abstract or transfer syntax", pc.ID)
	}
	return pc, nil
}

func decodeAssociateAC(body []byte) (*AssociateAC, error) {
	version, called, calling, rest, err := decodeAssociateHeader(body)
	if err != nil {
		return nil, err
	}
	p := &AssociateAC{ProtocolVersion: version, CalledAE: called, CallingAE: calling}
	f, err := decodeAssociateItems(rest, TypeAssociateAC, itemPresentationContextAC, func(v []byte) error {
		pc, err := decodePresentationContextAC(v)
		p.PresentationContexts = append(p.PresentationContexts, pc)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.ApplicationContext, p.UserInfo = f.appContext, f.userInfo
	return p, nil
}

func decodePresentationContextAC(v []byte) (PresentationContextAC, error) {
	if len(v) < 4 {
		return PresentationContextAC{}, protoErr(AbortReasonInvalidParameter, "presentation context item truncated")
	}
	pc := PresentationContextAC{ID: v[0], Result: v[2]}
	r := itemReader{b: v[4:]}
	for typ, sub, ok := r.next(); ok; typ, sub, ok = r.next() {
		if typ != itemTransferSyntax {
			return pc, protoErr(AbortReasonUnrecognizedParameter, "unexpected sub-item 0x%02X in presentation context %d", typ, pc.ID)
		}
		if len(sub) > maxUIDLength {
			return pc, protoErr(AbortReasonInvalidParameter, "transfer syntax UID length %d", len(sub))
		}
		pc.TransferSyntax = strings.TrimRight(string(sub), "\x00 ")
	}
	return pc, r.err
}

func decodeUserInfo(v []byte) (UserInfo, error) {
	var u UserInfo
	r := itemReader{b: v}
	for typ, sub, ok := r.next(); ok; typ, sub, ok = r.next() {
		switch typ {
		case itemMaximumLength:
			if len(sub) != 4 {
				return u, protoErr(AbortReasonInvalidParameter, "maximum length sub-item length %d", len(sub))
			}
			u.MaxLength = binary.BigEndian.Uint32(sub)
		case itemImplementationClass:
			uid, err := decodeUID("implementation class", sub)
			if err != nil {
				return u, err
			}
			u.ImplementationClassUID = uid
		case itemImplementationVersion:
			if len(sub) > maxAETitleLength {
				return u, protoErr(AbortReasonInvalidParameter, "implementation version name length %d", len(sub))
			}
			u.ImplementationVersionName = strings.TrimSpace(string(sub))
		case itemAsyncOpsWindow:
			if len(sub) != 4 {
				return u, protoErr(AbortReasonInvalidParameter, "asynchronous operations window length %d", len(sub))
			}
			u.AsyncOps = &AsyncOpsWindow{MaxInvoked: binary.BigEndian.Uint16(sub), MaxPerformed: binary.BigEndian.Uint16(sub[2:])}
		case itemRoleSelection:
			if len(sub) < 4 {
				return u, protoErr(AbortReasonInvalidParameter, "role selection sub-item truncated")
			}
			n := int(binary.BigEndian.Uint16(sub))
			if n == 0 || n > maxUIDLength || len(sub) != 2+n+2 {
				return u, protoErr(AbortReasonInvalidParameter, "role selection UID length %d in a %d-byte sub-item", n, len(sub))
			}
			u.RoleSelections = append(u.RoleSelections, RoleSelection{
				SOPClassUID: strings.TrimRight(string(sub[2:2+n]), "\x00 "),
				SCURole:     sub[2+n] == 1,
				SCPRole:     sub[3+n] == 1,
			})
		case itemUserIdentityRQ:
			id, err := decodeUserIdentity(sub)
			if err != nil {
				return u, err
			}
			u.UserIdentity = id
		case itemUserIdentityAC:
			if len(sub) < 2 || int(binary.BigEndian.Uint16(sub)) != len(sub)-2 {
				return u, protoErr(AbortReasonInvalidParameter, "user identity response malformed")
			}
			u.UserIdentityResponse = append([]byte{}, sub[2:]...)
		default:
			u.Extended = append(u.Extended, RawItem{Type: typ, Data: append([]byte{}, sub...)})
		}
	}
	return u, r.err
}

func decodeUserIdentity(sub []byte) (*UserIdentity, error) {
	bad := protoErr(AbortReasonInvalidParameter, "user identity sub-item malformed")
	if len(sub) < 6 {
		return nil, bad
	}
	id := &UserIdentity{Type: sub[0], PositiveResponseRequired: sub[1] == 1}
	n := int(binary.BigEndian.Uint16(sub[2:]))
	if 4+n+2 > len(sub) {
		return nil, bad
	}
	id.Primary = append([]byte{}, sub[4:4+n]...)
	rest := sub[4+n:]
	m := int(binary.BigEndian.Uint16(rest))
	if 2+m != len(rest) {
		return nil, bad
	}
	id.Secondary = append([]byte{}, rest[2:]...)
	return id, nil
}

// writePDU encodes p into the buffer and flushes it: a PDU is always sent whole.
func writePDU(w *bufio.Writer, p PDU) error {
	if _, err := w.Write(EncodePDU(p)); err != nil {
		return fmt.Errorf("write %s: %w", p.Type(), err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", p.Type(), err)
	}
	return nil
}
