package dimse

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DIMSE-C messages (PS3.7 9.3): each request and response is one Go type whose command set encoder
// and decoder sit next to each other. A command set is group 0000 in implicit VR little endian
// whatever the data set's transfer syntax; its elements are those of PS3.7 Annex E.

// Command set elements (group 0000, PS3.7 E.1). Command sets are always implicit VR little endian.
const (
	tagGroupLength                  uint32 = 0x00000000
	tagAffectedSOPClassUID          uint32 = 0x00000002
	tagRequestedSOPClassUID         uint32 = 0x00000003
	tagCommandField                 uint32 = 0x00000100
	tagMessageID                    uint32 = 0x00000110
	tagMessageIDBeingRespondedTo    uint32 = 0x00000120
	tagMoveDestination              uint32 = 0x00000600
	tagPriority                     uint32 = 0x00000700
	tagCommandDataSetType           uint32 = 0x00000800
	tagStatus                       uint32 = 0x00000900
	tagOffendingElement             uint32 = 0x00000901
	tagErrorComment                 uint32 = 0x00000902
	tagErrorID                      uint32 = 0x00000903
	tagAffectedSOPInstanceUID       uint32 = 0x00001000
	tagRequestedSOPInstanceUID      uint32 = 0x00001001
	tagNumberOfRemainingSubops      uint32 = 0x00001020
	tagNumberOfCompletedSubops      uint32 = 0x00001021
	tagNumberOfFailedSubops         uint32 = 0x00001022
	tagNumberOfWarningSubops        uint32 = 0x00001023
	tagMoveOriginatorAETitle        uint32 = 0x00001030
	tagMoveOriginatorMessageID      uint32 = 0x00001031
	commandDataSetAbsent            uint16 = 0x0101
	commandDataSetPresent           uint16 = 0x0000
	maxCommandElementLength                = 1024
	maxCommandSetLength                    = 64 << 10
	commandElementHeaderLength             = 8
	commandGroupLengthElementLength        = 12
)

// Command field values (PS3.7 E.1).
const (
	FieldCStoreRQ  uint16 = 0x0001
	FieldCStoreRSP uint16 = 0x8001
	FieldCGetRQ    uint16 = 0x0010
	FieldCGetRSP   uint16 = 0x8010
	FieldCFindRQ   uint16 = 0x0020
	FieldCFindRSP  uint16 = 0x8020
	FieldCMoveRQ   uint16 = 0x0021
	FieldCMoveRSP  uint16 = 0x8021
	FieldCEchoRQ   uint16 = 0x0030
	FieldCEchoRSP  uint16 = 0x8030
	FieldCCancelRQ uint16 = 0x0FFF
)

// Priorities (PS3.7 9.1.1.1.11... the same for every C-service).
const (
	PriorityMedium uint16 = 0x0000
	PriorityHigh   uint16 = 0x0001
	PriorityLow    uint16 = 0x0002
)

// Status is the outcome carried by every response.
type Status struct {
	Code              uint16
	ErrorComment      string
	ErrorID           uint16
	OffendingElements []uint32
}

// Status codes used by the node (PS3.7 Annex C, PS3.4 B.2.3, C.4).
const (
	StatusSuccess                  uint16 = 0x0000
	StatusPending                  uint16 = 0xFF00
	StatusPendingWarning           uint16 = 0xFF01
	StatusCancel                   uint16 = 0xFE00
	StatusWarningSubops            uint16 = 0xB000
	StatusSOPClassNotSupported     uint16 = 0x0122
	StatusUnrecognizedOperation    uint16 = 0x0211
	StatusDuplicateSOPInstance     uint16 = 0x0111
	StatusProcessingFailure        uint16 = 0x0110
	StatusOutOfResources           uint16 = 0xA700
	StatusOutOfResourcesSubops     uint16 = 0xA702
	StatusMoveDestinationUnknown   uint16 = 0xA801
	StatusDataSetDoesNotMatchClass uint16 = 0xA900
	StatusCannotUnderstand         uint16 = 0xC000
)

// IsPending reports whether more responses follow.
func (s Status) IsPending() bool { return s.Code == StatusPending || s.Code == StatusPendingWarning }

func (s Status) String() string {
	if s.ErrorComment != "" {
		return fmt.Sprintf("0x%04X (%s)", s.Code, s.ErrorComment)
	}
	return fmt.Sprintf("0x%04X", s.Code)
}

// Message is one DIMSE command; HasData reports whether a data set follows it.
type Message interface {
	CommandField() uint16
	HasData() bool
	encode(e *commandEncoder)
	decode(d *commandDecoder)
}

// Response is a message that carries a status.
type Response interface {
	Message
	status() Status
}

// StatusOf returns a response's status.
func StatusOf(r Response) Status { return r.status() }

// newMessage returns an empty message for a command field; nil for one the node does not know.
func newMessage(field uint16) Message {
	switch field {
	case FieldCEchoRQ:
		return &CEchoRQ{}
	case FieldCEchoRSP:
		return &CEchoRSP{}
	case FieldCStoreRQ:
		return &CStoreRQ{}
	case FieldCStoreRSP:
		return &CStoreRSP{}
	case FieldCFindRQ:
		return &CFindRQ{}
	case FieldCFindRSP:
		return &CFindRSP{}
	case FieldCMoveRQ:
		return &CMoveRQ{}
	case FieldCMoveRSP:
		return &CMoveRSP{}
	case FieldCGetRQ:
		return &CGetRQ{}
	case FieldCGetRSP:
		return &CGetRSP{}
	case FieldCCancelRQ:
		return &CCancelRQ{}
	}
	return nil
}

// C-ECHO (PS3.7 9.3.5).

// CEchoRQ is C-ECHO-RQ.
type CEchoRQ struct {
	MessageID           uint16
	AffectedSOPClassUID string
}

func (*CEchoRQ) CommandField() uint16 { return FieldCEchoRQ }
func (*CEchoRQ) HasData() bool        { return false }

func (m *CEchoRQ) encode(e *commandEncoder) {
	e.header(FieldCEchoRQ, false)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
}

func (m *CEchoRQ) decode(d *commandDecoder) {
	*m = CEchoRQ{MessageID: d.requireUS(tagMessageID), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID)}
}

// CEchoRSP is C-ECHO-RSP.
type CEchoRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
}

func (*CEchoRSP) CommandField() uint16 { return FieldCEchoRSP }
func (*CEchoRSP) HasData() bool        { return false }
func (m *CEchoRSP) status() Status     { return m.Status }

func (m *CEchoRSP) encode(e *commandEncoder) {
	e.header(FieldCEchoRSP, false)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
}

func (m *CEchoRSP) decode(d *commandDecoder) {
	*m = CEchoRSP{MessageIDBeingRespondedTo: d.requireUS(tagMessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID)}
	m.Status.decode(d)
}

// C-STORE (PS3.7 9.3.1).

// CStoreRQ is C-STORE-RQ; the data set follows.
type CStoreRQ struct {
	MessageID               uint16
	Priority                uint16
	AffectedSOPClassUID     string
	AffectedSOPInstanceUID  string
	MoveOriginatorAETitle   string
	MoveOriginatorMessageID uint16
}

func (*CStoreRQ) CommandField() uint16 { return FieldCStoreRQ }
func (*CStoreRQ) HasData() bool        { return true }

func (m *CStoreRQ) encode(e *commandEncoder) {
	e.header(FieldCStoreRQ, true)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
	e.us(tagPriority, m.Priority)
	e.uid(tagAffectedSOPInstanceUID, m.AffectedSOPInstanceUID)
	if m.MoveOriginatorAETitle != "" {
		e.ae(tagMoveOriginatorAETitle, m.MoveOriginatorAETitle)
		e.us(tagMoveOriginatorMessageID, m.MoveOriginatorMessageID)
	}
}

func (m *CStoreRQ) decode(d *commandDecoder) {
	*m = CStoreRQ{
		MessageID:              d.requireUS(tagMessageID),
		AffectedSOPClassUID:    d.str(tagAffectedSOPClassUID),
		AffectedSOPInstanceUID: d.str(tagAffectedSOPInstanceUID),
		MoveOriginatorAETitle:  d.ae(tagMoveOriginatorAETitle),
	}
	m.Priority, _ = d.us(tagPriority)
	m.MoveOriginatorMessageID, _ = d.us(tagMoveOriginatorMessageID)
}

// CStoreRSP is C-STORE-RSP.
type CStoreRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	AffectedSOPInstanceUID    string
	Status                    Status
}

func (*CStoreRSP) CommandField() uint16 { return FieldCStoreRSP }
func (*CStoreRSP) HasData() bool        { return false }
func (m *CStoreRSP) status() Status     { return m.Status }

func (m *CStoreRSP) encode(e *commandEncoder) {
	e.header(FieldCStoreRSP, false)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	e.uid(tagAffectedSOPInstanceUID, m.AffectedSOPInstanceUID)
	m.Status.encode(e)
}

func (m *CStoreRSP) decode(d *commandDecoder) {
	*m = CStoreRSP{MessageIDBeingRespondedTo: d.requireUS(tagMessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID),
		AffectedSOPInstanceUID: d.str(tagAffectedSOPInstanceUID)}
	m.Status.decode(d)
}

// C-FIND (PS3.7 9.3.2).

// CFindRQ is C-FIND-RQ; the identifier follows.
type CFindRQ struct {
	MessageID           uint16
	Priority            uint16
	AffectedSOPClassUID string
}

func (*CFindRQ) CommandField() uint16 { return FieldCFindRQ }
func (*CFindRQ) HasData() bool        { return true }

func (m *CFindRQ) encode(e *commandEncoder) {
	e.header(FieldCFindRQ, true)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
	e.us(tagPriority, m.Priority)
}

func (m *CFindRQ) decode(d *commandDecoder) {
	*m = CFindRQ{MessageID: d.requireUS(tagMessageID), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID)}
	m.Priority, _ = d.us(tagPriority)
}

// CFindRSP is C-FIND-RSP; pending responses carry an identifier.
type CFindRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
	Data                      bool
}

func (*CFindRSP) CommandField() uint16 { return FieldCFindRSP }
func (m *CFindRSP) HasData() bool      { return m.Data }
func (m *CFindRSP) status() Status     { return m.Status }

func (m *CFindRSP) encode(e *commandEncoder) {
	e.header(FieldCFindRSP, m.Data)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
}

func (m *CFindRSP) decode(d *commandDecoder) {
	*m = CFindRSP{MessageIDBeingRespondedTo: d.requireUS(tagMessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID), Data: d.hasData}
	m.Status.decode(d)
}

// C-MOVE (PS3.7 9.3.4).

// CMoveRQ is C-MOVE-RQ; the identifier follows.
type CMoveRQ struct {
	MessageID           uint16
	Priority            uint16
	AffectedSOPClassUID string
	MoveDestination     string
}

func (*CMoveRQ) CommandField() uint16 { return FieldCMoveRQ }
func (*CMoveRQ) HasData() bool        { return true }

func (m *CMoveRQ) encode(e *commandEncoder) {
	e.header(FieldCMoveRQ, true)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
	e.us(tagPriority, m.Priority)
	e.ae(tagMoveDestination, m.MoveDestination)
}

func (m *CMoveRQ) decode(d *commandDecoder) {
	*m = CMoveRQ{MessageID: d.requireUS(tagMessageID), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID), MoveDestination: d.ae(tagMoveDestination)}
	m.Priority, _ = d.us(tagPriority)
}

// CMoveRSP is C-MOVE-RSP.
type CMoveRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
	SubOperations             SubOperations
	Data                      bool // failed SOP instance UID list
}

func (*CMoveRSP) CommandField() uint16 { return FieldCMoveRSP }
func (m *CMoveRSP) HasData() bool      { return m.Data }
func (m *CMoveRSP) status() Status     { return m.Status }

func (m *CMoveRSP) encode(e *commandEncoder) {
	e.header(FieldCMoveRSP, m.Data)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
	m.SubOperations.encode(e)
}

func (m *CMoveRSP) decode(d *commandDecoder) {
	*m = CMoveRSP{MessageIDBeingRespondedTo: d.requireUS(tagMessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID), Data: d.hasData}
	m.Status.decode(d)
	m.SubOperations.decode(d)
}

// C-GET (PS3.7 9.3.3).

// CGetRQ is C-GET-RQ; the identifier follows.
type CGetRQ struct {
	MessageID           uint16
	Priority            uint16
	AffectedSOPClassUID string
}

func (*CGetRQ) CommandField() uint16 { return FieldCGetRQ }
func (*CGetRQ) HasData() bool        { return true }

func (m *CGetRQ) encode(e *commandEncoder) {
	e.header(FieldCGetRQ, true)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
	e.us(tagPriority, m.Priority)
}

func (m *CGetRQ) decode(d *commandDecoder) {
	*m = CGetRQ{MessageID: d.requireUS(tagMessageID), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID)}
	m.Priority, _ = d.us(tagPriority)
}

// CGetRSP is C-GET-RSP.
type CGetRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
	SubOperations             SubOperations
	Data                      bool
}

func (*CGetRSP) CommandField() uint16 { return FieldCGetRSP }
func (m *CGetRSP) HasData() bool      { return m.Data }
func (m *CGetRSP) status() Status     { return m.Status }

func (m *CGetRSP) encode(e *commandEncoder) {
	e.header(FieldCGetRSP, m.Data)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
	m.SubOperations.encode(e)
}

func (m *CGetRSP) decode(d *commandDecoder) {
	*m = CGetRSP{MessageIDBeingRespondedTo: d.requireUS(tagMessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(tagAffectedSOPClassUID), Data: d.hasData}
	m.Status.decode(d)
	m.SubOperations.decode(d)
}

// C-CANCEL (PS3.7 9.3.2.3, 9.3.3.3, 9.3.4.3).

// CCancelRQ is C-CANCEL-RQ.
type CCancelRQ struct {
	MessageIDBeingRespondedTo uint16
}

func (*CCancelRQ) CommandField() uint16 { return FieldCCancelRQ }
func (*CCancelRQ) HasData() bool        { return false }

func (m *CCancelRQ) encode(e *commandEncoder) {
	e.header(FieldCCancelRQ, false)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
}

func (m *CCancelRQ) decode(d *commandDecoder) {
	*m = CCancelRQ{MessageIDBeingRespondedTo: d.requireUS(tagMessageIDBeingRespondedTo)}
}

// The status elements of every response (PS3.7 C.4): Status, and Offending Element, Error Comment
// and Error ID when present.

func (s *Status) encode(e *commandEncoder) {
	e.us(tagStatus, s.Code)
	if len(s.OffendingElements) > 0 {
		var v []byte
		for _, t := range s.OffendingElements {
			v = binary.LittleEndian.AppendUint16(v, uint16(t>>16))
			v = binary.LittleEndian.AppendUint16(v, uint16(t))
		}
		e.elems = append(e.elems, commandElement{tagOffendingElement, v})
	}
	if s.ErrorComment != "" {
		c := s.ErrorComment
		if len(c) > 64 { // LO
			c = c[:64]
		}
		e.str(tagErrorComment, c)
	}
	if s.ErrorID != 0 {
		e.us(tagErrorID, s.ErrorID)
	}
}

func (s *Status) decode(d *commandDecoder) {
	*s = Status{ErrorComment: d.str(tagErrorComment)}
	s.Code, _ = d.us(tagStatus)
	s.ErrorID, _ = d.us(tagErrorID)
	if v := d.elems[tagOffendingElement]; len(v)%4 == 0 {
		for i := 0; i < len(v); i += 4 {
			s.OffendingElements = append(s.OffendingElements, uint32(binary.LittleEndian.Uint16(v[i:]))<<16|uint32(binary.LittleEndian.Uint16(v[i+2:])))
		}
	}
}

// SubOperations are the sub-operation counts of C-MOVE and C-GET responses.
type SubOperations struct {
	Remaining, Completed, Failed, Warning uint16
	// Present: counts are sent (PS3.4 C.4.2.1.6: remaining may be absent in the final response).
	Present bool
}

func (s *SubOperations) encode(e *commandEncoder) {
	if !s.Present {
		return
	}
	e.us(tagNumberOfRemainingSubops, s.Remaining)
	e.us(tagNumberOfCompletedSubops, s.Completed)
	e.us(tagNumberOfFailedSubops, s.Failed)
	e.us(tagNumberOfWarningSubops, s.Warning)
}

func (s *SubOperations) decode(d *commandDecoder) {
	var ok [4]bool
	s.Remaining, ok[0] = d.us(tagNumberOfRemainingSubops)
	s.Completed, ok[1] = d.us(tagNumberOfCompletedSubops)
	s.Failed, ok[2] = d.us(tagNumberOfFailedSubops)
	s.Warning, ok[3] = d.us(tagNumberOfWarningSubops)
	s.Present = ok[0] || ok[1] || ok[2] || ok[3]
}

// Encoding.

// commandEncoder collects elements; they are sorted by tag before encoding, as PS3.5 7.1 requires.
type commandEncoder struct {
	elems []commandElement
}

type commandElement struct {
	tag   uint32
	value []byte
}

func (e *commandEncoder) uid(tag uint32, v string) {
	if v == "" {
		return
	}
	b := []byte(v)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	e.elems = append(e.elems, commandElement{tag, b})
}

func (e *commandEncoder) str(tag uint32, v string) {
	if v == "" {
		return
	}
	b := []byte(v)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	e.elems = append(e.elems, commandElement{tag, b})
}

// ae encodes an AE title padded to 16 bytes, the form DCMTK and most peers send.
func (e *commandEncoder) ae(tag uint32, v string) {
	if v == "" {
		return
	}
	e.elems = append(e.elems, commandElement{tag, []byte(fmt.Sprintf("%-16s", v))})
}

func (e *commandEncoder) us(tag uint32, v uint16) {
	e.elems = append(e.elems, commandElement{tag, binary.LittleEndian.AppendUint16(nil, v)})
}

func (e *commandEncoder) header(field uint16, hasData bool) {
	e.us(tagCommandField, field)
	if hasData {
		e.us(tagCommandDataSetType, commandDataSetPresent)
	} else {
		e.us(tagCommandDataSetType, commandDataSetAbsent)
	}
}

// EncodeCommand returns the command set of m, group length first, elements in tag order.
func EncodeCommand(m Message) []byte { return AppendCommand(nil, m) }

// AppendCommand appends the command set of m to b.
func AppendCommand(b []byte, m Message) []byte {
	var e commandEncoder
	m.encode(&e)
	sort.Slice(e.elems, func(i, j int) bool { return e.elems[i].tag < e.elems[j].tag })
	n := 0
	for _, el := range e.elems {
		n += commandElementHeaderLength + len(el.value)
	}
	b = slices.Grow(b, commandGroupLengthElementLength+n)
	b = appendCommandElement(b, tagGroupLength, binary.LittleEndian.AppendUint32(nil, uint32(n)))
	for _, el := range e.elems {
		b = appendCommandElement(b, el.tag, el.value)
	}
	return b
}

func appendCommandElement(b []byte, tag uint32, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(tag>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(tag))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// Decoding.

// commandDecoder holds a command set's element values by tag, whether a data set follows, and the
// required elements found missing.
type commandDecoder struct {
	elems   map[uint32][]byte
	hasData bool
	errs    []string
}

func (d *commandDecoder) us(tag uint32) (uint16, bool) {
	v, ok := d.elems[tag]
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

func (d *commandDecoder) requireUS(tag uint32) uint16 {
	v, ok := d.us(tag)
	if !ok {
		d.errs = append(d.errs, fmt.Sprintf("(0000,%04X) missing or not US", uint16(tag)))
	}
	return v
}

func (d *commandDecoder) str(tag uint32) string {
	return strings.TrimRight(string(d.elems[tag]), "\x00 ")
}

func (d *commandDecoder) ae(tag uint32) string {
	return strings.TrimSpace(strings.TrimRight(string(d.elems[tag]), "\x00"))
}

func (d *commandDecoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return fmt.Errorf("command set: %s", strings.Join(d.errs, "; "))
}

// DecodeCommand decodes a command set. Elements of group 0000 only; each length is bounded, so a
// hostile command set costs at most its own (already bounded) size.
func DecodeCommand(b []byte) (Message, error) {
	if len(b) > maxCommandSetLength {
		return nil, fmt.Errorf("command set of %d bytes exceeds %d", len(b), maxCommandSetLength)
	}
	d := commandDecoder{elems: map[uint32][]byte{}}
	for len(b) > 0 {
		if len(b) < commandElementHeaderLength {
			return nil, fmt.Errorf("command set truncated in an element header")
		}
		group := binary.LittleEndian.Uint16(b)
		elem := binary.LittleEndian.Uint16(b[2:])
		n := binary.LittleEndian.Uint32(b[4:])
		if group != 0x0000 {
			return nil, fmt.Errorf("element (%04X,%04X) outside group 0000 in a command set", group, elem)
		}
		if n > maxCommandElementLength || int(n) > len(b)-commandElementHeaderLength {
			return nil, fmt.Errorf("element (0000,%04X) length %d exceeds the command set", elem, n)
		}
		tag := uint32(elem)
		if _, dup := d.elems[tag]; dup {
			return nil, fmt.Errorf("element (0000,%04X) appears twice", elem)
		}
		d.elems[tag] = b[commandElementHeaderLength : commandElementHeaderLength+n]
		b = b[commandElementHeaderLength+n:]
	}
	field := d.requireUS(tagCommandField)
	dst := d.requireUS(tagCommandDataSetType)
	if err := d.err(); err != nil {
		return nil, err
	}
	d.hasData = dst != commandDataSetAbsent
	m := newMessage(field)
	if m == nil {
		id, _ := d.us(tagMessageID)
		return nil, &UnknownCommandError{Field: field, MessageID: id}
	}
	m.decode(&d)
	if err := d.err(); err != nil {
		return nil, err
	}
	if m.HasData() != d.hasData {
		return nil, fmt.Errorf("command 0x%04X: data set type 0x%04X contradicts the command", field, dst)
	}
	return m, nil
}

// UnknownCommandError is a well-formed command set with a command field the node does not know.
type UnknownCommandError struct {
	Field     uint16
	MessageID uint16
}

func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("unrecognized command field 0x%04X", e.Field)
}
