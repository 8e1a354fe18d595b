package dimse

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

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
}

// CEchoRQ is C-ECHO-RQ.
type CEchoRQ struct {
	MessageID           uint16
	AffectedSOPClassUID string
}

// CEchoRSP is C-ECHO-RSP.
type CEchoRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
}

// CStoreRQ is C-STORE-RQ; the data set follows.
type CStoreRQ struct {
	MessageID               uint16
	Priority                uint16
	AffectedSOPClassUID     string
	AffectedSOPInstanceUID  string
	MoveOriginatorAETitle   string
	MoveOriginatorMessageID uint16
}

// CStoreRSP is C-STORE-RSP.
type CStoreRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	AffectedSOPInstanceUID    string
	Status                    Status
}

// CFindRQ is C-FIND-RQ; the identifier follows.
type CFindRQ struct {
	MessageID           uint16
	Priority            uint16
	AffectedSOPClassUID string
}

// CFindRSP is C-FIND-RSP; pending responses carry an identifier.
type CFindRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
	Data                      bool
}

// CMoveRQ is C-MOVE-RQ; the identifier follows.
type CMoveRQ struct {
	MessageID           uint16
	Priority            uint16
	AffectedSOPClassUID string
	MoveDestination     string
}

// SubOperations are the sub-operation counts of C-MOVE and C-GET responses.
type SubOperations struct {
	Remaining, Completed, Failed, Warning uint16
	// Present: counts are sent (PS3.4 C.4.2.1.6: remaining may be absent in the final response).
	Present bool
}

// CMoveRSP is C-MOVE-RSP.
type CMoveRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
	SubOperations             SubOperations
	Data                      bool // failed SOP instance UID list
}

// CGetRQ is C-GET-RQ; the identifier follows.
type CGetRQ struct {
	MessageID           uint16
	Priority            uint16
	AffectedSOPClassUID string
}

// CGetRSP is C-GET-RSP.
type CGetRSP struct {
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	Status                    Status
	SubOperations             SubOperations
	Data                      bool
}

// CCancelRQ is C-CANCEL-RQ.
type CCancelRQ struct {
	MessageIDBeingRespondedTo uint16
}

func (*CEchoRQ) CommandField() uint16   { return FieldCEchoRQ }
func (*CEchoRSP) CommandField() uint16  { return FieldCEchoRSP }
func (*CStoreRQ) CommandField() uint16  { return FieldCStoreRQ }
func (*CStoreRSP) CommandField() uint16 { return FieldCStoreRSP }
func (*CFindRQ) CommandField() uint16   { return FieldCFindRQ }
func (*CFindRSP) CommandField() uint16  { return FieldCFindRSP }
func (*CMoveRQ) CommandField() uint16   { return FieldCMoveRQ }
func (*CMoveRSP) CommandField() uint16  { return FieldCMoveRSP }
func (*CGetRQ) CommandField() uint16    { return FieldCGetRQ }
func (*CGetRSP) CommandField() uint16   { return FieldCGetRSP }
func (*CCancelRQ) CommandField() uint16 { return FieldCCancelRQ }

func (*CEchoRQ) HasData() bool      { return false }
func (*CEchoRSP) HasData() bool     { return false }
func (*CStoreRQ) HasData() bool     { return true }
func (*CStoreRSP) HasData() bool    { return false }
func (*CFindRQ) HasData() bool      { return true }
func (m *CFindRSP) HasData() bool   { return m.Data }
func (*CMoveRQ) HasData() bool      { return true }
func (m *CMoveRSP) HasData() bool   { return m.Data }
func (*CGetRQ) HasData() bool       { return true }
func (m *CGetRSP) HasData() bool    { return m.Data }
func (*CCancelRQ) HasData() bool    { return false }
func (m *CEchoRSP) status() Status  { return m.Status }
func (m *CStoreRSP) status() Status { return m.Status }
func (m *CFindRSP) status() Status  { return m.Status }
func (m *CMoveRSP) status() Status  { return m.Status }
func (m *CGetRSP) status() Status   { return m.Status }

// Response is a message that carries a status.
type Response interface {
	Message
	status() Status
}

// StatusOf returns a response's status.
func StatusOf(r Response) Status { return r.status() }

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

func (e *commandEncoder) status(s Status) {
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

func (e *commandEncoder) subops(s SubOperations) {
	if !s.Present {
		return
	}
	e.us(tagNumberOfRemainingSubops, s.Remaining)
	e.us(tagNumberOfCompletedSubops, s.Completed)
	e.us(tagNumberOfFailedSubops, s.Failed)
	e.us(tagNumberOfWarningSubops, s.Warning)
}

func (m *CEchoRQ) encode(e *commandEncoder) {
	e.header(FieldCEchoRQ, false)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
}

func (m *CEchoRSP) encode(e *commandEncoder) {
	e.header(FieldCEchoRSP, false)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	e.status(m.Status)
}

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

func (m *CStoreRSP) encode(e *commandEncoder) {
	e.header(FieldCStoreRSP, false)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	e.uid(tagAffectedSOPInstanceUID, m.AffectedSOPInstanceUID)
	e.status(m.Status)
}

func (m *CFindRQ) encode(e *commandEncoder) {
	e.header(FieldCFindRQ, true)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
	e.us(tagPriority, m.Priority)
}

func (m *CFindRSP) encode(e *commandEncoder) {
	e.header(FieldCFindRSP, m.Data)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	e.status(m.Status)
}

func (m *CMoveRQ) encode(e *commandEncoder) {
	e.header(FieldCMoveRQ, true)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
	e.us(tagPriority, m.Priority)
	e.ae(tagMoveDestination, m.MoveDestination)
}

func (m *CMoveRSP) encode(e *commandEncoder) {
	e.header(FieldCMoveRSP, m.Data)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	e.status(m.Status)
	e.subops(m.SubOperations)
}

func (m *CGetRQ) encode(e *commandEncoder) {
	e.header(FieldCGetRQ, true)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageID, m.MessageID)
	e.us(tagPriority, m.Priority)
}

func (m *CGetRSP) encode(e *commandEncoder) {
	e.header(FieldCGetRSP, m.Data)
	e.uid(tagAffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	e.status(m.Status)
	e.subops(m.SubOperations)
}

func (m *CCancelRQ) encode(e *commandEncoder) {
	e.header(FieldCCancelRQ, false)
	e.us(tagMessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
}

// EncodeCommand returns the command set of m, group length first, elements in tag order.
func EncodeCommand(m Message) []byte {
	var e commandEncoder
	m.encode(&e)
	sort.Slice(e.elems, func(i, j int) bool { return e.elems[i].tag < e.elems[j].tag })
	n := 0
	for _, el := range e.elems {
		n += commandElementHeaderLength + len(el.value)
	}
	b := make([]byte, 0, commandGroupLengthElementLength+n)
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

// commandSet is a decoded command set: element values by tag.
type commandSet map[uint32][]byte

func (c commandSet) us(tag uint32) (uint16, bool) {
	v, ok := c[tag]
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

func (c commandSet) str(tag uint32) string {
	return strings.TrimRight(string(c[tag]), "\x00 ")
}

func (c commandSet) ae(tag uint32) string {
	return strings.TrimSpace(strings.TrimRight(string(c[tag]), "\x00"))
}

func (c commandSet) requireUS(tag uint32, errs *[]string) uint16 {
	v, ok := c.us(tag)
	if !ok {
		*errs = append(*errs, fmt.Sprintf("(0000,%04X) missing or not US", uint16(tag)))
	}
	return v
}

func (c commandSet) status() Status {
	s := Status{ErrorComment: c.str(tagErrorComment)}
	s.Code, _ = c.us(tagStatus)
	s.ErrorID, _ = c.us(tagErrorID)
	if v := c[tagOffendingElement]; len(v)%4 == 0 {
		for i := 0; i < len(v); i += 4 {
			s.OffendingElements = append(s.OffendingElements, uint32(binary.LittleEndian.Uint16(v[i:]))<<16|uint32(binary.LittleEndian.Uint16(v[i+2:])))
		}
	}
	return s
}

func (c commandSet) subops() SubOperations {
	var s SubOperations
	var ok [4]bool
	s.Remaining, ok[0] = c.us(tagNumberOfRemainingSubops)
	s.Completed, ok[1] = c.us(tagNumberOfCompletedSubops)
	s.Failed, ok[2] = c.us(tagNumberOfFailedSubops)
	s.Warning, ok[3] = c.us(tagNumberOfWarningSubops)
	s.Present = ok[0] || ok[1] || ok[2] || ok[3]
	return s
}

// DecodeCommand decodes a command set. Elements of group 0000 only; each length is bounded, so a
// hostile command set costs at most its own (already bounded) size.
func DecodeCommand(b []byte) (Message, error) {
	if len(b) > maxCommandSetLength {
		return nil, fmt.Errorf("command set of %d bytes exceeds %d", len(b), maxCommandSetLength)
	}
	c := commandSet{}
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
		if _, dup := c[tag]; dup {
			return nil, fmt.Errorf("element (0000,%04X) appears twice", elem)
		}
		c[tag] = b[commandElementHeaderLength : commandElementHeaderLength+n]
		b = b[commandElementHeaderLength+n:]
	}
	var errs []string
	field := c.requireUS(tagCommandField, &errs)
	dst := c.requireUS(tagCommandDataSetType, &errs)
	if len(errs) > 0 {
		return nil, fmt.Errorf("command set: %s", strings.Join(errs, "; "))
	}
	hasData := dst != commandDataSetAbsent
	var m Message
	switch field {
	case FieldCEchoRQ:
		m = &CEchoRQ{MessageID: c.requireUS(tagMessageID, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID)}
	case FieldCEchoRSP:
		m = &CEchoRSP{MessageIDBeingRespondedTo: c.requireUS(tagMessageIDBeingRespondedTo, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID), Status: c.status()}
	case FieldCStoreRQ:
		r := &CStoreRQ{
			MessageID:              c.requireUS(tagMessageID, &errs),
			AffectedSOPClassUID:    c.str(tagAffectedSOPClassUID),
			AffectedSOPInstanceUID: c.str(tagAffectedSOPInstanceUID),
			MoveOriginatorAETitle:  c.ae(tagMoveOriginatorAETitle),
		}
		r.Priority, _ = c.us(tagPriority)
		r.MoveOriginatorMessageID, _ = c.us(tagMoveOriginatorMessageID)
		m = r
	case FieldCStoreRSP:
		m = &CStoreRSP{MessageIDBeingRespondedTo: c.requireUS(tagMessageIDBeingRespondedTo, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID), AffectedSOPInstanceUID: c.str(tagAffectedSOPInstanceUID), Status: c.status()}
	case FieldCFindRQ:
		r := &CFindRQ{MessageID: c.requireUS(tagMessageID, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID)}
		r.Priority, _ = c.us(tagPriority)
		m = r
	case FieldCFindRSP:
		m = &CFindRSP{MessageIDBeingRespondedTo: c.requireUS(tagMessageIDBeingRespondedTo, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID), Status: c.status(), Data: hasData}
	case FieldCMoveRQ:
		r := &CMoveRQ{MessageID: c.requireUS(tagMessageID, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID), MoveDestination: c.ae(tagMoveDestination)}
		r.Priority, _ = c.us(tagPriority)
		m = r
	case FieldCMoveRSP:
		m = &CMoveRSP{MessageIDBeingRespondedTo: c.requireUS(tagMessageIDBeingRespondedTo, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID), Status: c.status(), SubOperations: c.subops(), Data: hasData}
	case FieldCGetRQ:
		r := &CGetRQ{MessageID: c.requireUS(tagMessageID, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID)}
		r.Priority, _ = c.us(tagPriority)
		m = r
	case FieldCGetRSP:
		m = &CGetRSP{MessageIDBeingRespondedTo: c.requireUS(tagMessageIDBeingRespondedTo, &errs), AffectedSOPClassUID: c.str(tagAffectedSOPClassUID), Status: c.status(), SubOperations: c.subops(), Data: hasData}
	case FieldCCancelRQ:
		m = &CCancelRQ{MessageIDBeingRespondedTo: c.requireUS(tagMessageIDBeingRespondedTo, &errs)}
	default:
		id, _ := c.us(tagMessageID)
		return nil, &UnknownCommandError{Field: field, MessageID: id}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("command set: %s", strings.Join(errs, "; "))
	}
	if m.HasData() != hasData {
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
