package dimse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/espnode/espnode/dcm"
)

// DIMSE-C messages (PS3.7 9.3): each request and response is one Go type whose command set encoder
// and decoder sit next to each other. A command set is group 0000 in implicit VR little endian
// whatever the data set's transfer syntax; its elements are those of PS3.7 Annex E, named in dcm's
// dictionary (dcm.CommandField, dcm.MessageID, ...), and it is read and written by dcm's one
// reader and writer like any other data set.

const (
	commandDataSetAbsent  uint16 = 0x0101
	commandDataSetPresent uint16 = 0x0000
	// No element of a command set is long: UIDs, AE titles, a 64-character comment.
	maxCommandElementLength = 1024
	maxCommandSetLength     = 64 << 10
	// maxCommandElements bounds the elements of one command set (PS3.7 E.1 has 21).
	maxCommandElements = 64
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageID, m.MessageID)
}

func (m *CEchoRQ) decode(d *commandDecoder) {
	*m = CEchoRQ{MessageID: d.requireUS(dcm.MessageID), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID)}
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
}

func (m *CEchoRSP) decode(d *commandDecoder) {
	*m = CEchoRSP{MessageIDBeingRespondedTo: d.requireUS(dcm.MessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID)}
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageID, m.MessageID)
	e.us(dcm.Priority, m.Priority)
	e.uid(dcm.AffectedSOPInstanceUID, m.AffectedSOPInstanceUID)
	if m.MoveOriginatorAETitle != "" {
		e.ae(dcm.MoveOriginatorApplicationEntityTitle, m.MoveOriginatorAETitle)
		e.us(dcm.MoveOriginatorMessageID, m.MoveOriginatorMessageID)
	}
}

func (m *CStoreRQ) decode(d *commandDecoder) {
	*m = CStoreRQ{
		MessageID:              d.requireUS(dcm.MessageID),
		AffectedSOPClassUID:    d.str(dcm.AffectedSOPClassUID),
		AffectedSOPInstanceUID: d.str(dcm.AffectedSOPInstanceUID),
		MoveOriginatorAETitle:  d.ae(dcm.MoveOriginatorApplicationEntityTitle),
	}
	m.Priority, _ = d.us(dcm.Priority)
	m.MoveOriginatorMessageID, _ = d.us(dcm.MoveOriginatorMessageID)
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	e.uid(dcm.AffectedSOPInstanceUID, m.AffectedSOPInstanceUID)
	m.Status.encode(e)
}

func (m *CStoreRSP) decode(d *commandDecoder) {
	*m = CStoreRSP{MessageIDBeingRespondedTo: d.requireUS(dcm.MessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID),
		AffectedSOPInstanceUID: d.str(dcm.AffectedSOPInstanceUID)}
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageID, m.MessageID)
	e.us(dcm.Priority, m.Priority)
}

func (m *CFindRQ) decode(d *commandDecoder) {
	*m = CFindRQ{MessageID: d.requireUS(dcm.MessageID), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID)}
	m.Priority, _ = d.us(dcm.Priority)
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
}

func (m *CFindRSP) decode(d *commandDecoder) {
	*m = CFindRSP{MessageIDBeingRespondedTo: d.requireUS(dcm.MessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID), Data: d.hasData}
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageID, m.MessageID)
	e.us(dcm.Priority, m.Priority)
	e.ae(dcm.MoveDestination, m.MoveDestination)
}

func (m *CMoveRQ) decode(d *commandDecoder) {
	*m = CMoveRQ{MessageID: d.requireUS(dcm.MessageID), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID), MoveDestination: d.ae(dcm.MoveDestination)}
	m.Priority, _ = d.us(dcm.Priority)
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
	m.SubOperations.encode(e)
}

func (m *CMoveRSP) decode(d *commandDecoder) {
	*m = CMoveRSP{MessageIDBeingRespondedTo: d.requireUS(dcm.MessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID), Data: d.hasData}
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageID, m.MessageID)
	e.us(dcm.Priority, m.Priority)
}

func (m *CGetRQ) decode(d *commandDecoder) {
	*m = CGetRQ{MessageID: d.requireUS(dcm.MessageID), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID)}
	m.Priority, _ = d.us(dcm.Priority)
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
	e.uid(dcm.AffectedSOPClassUID, m.AffectedSOPClassUID)
	e.us(dcm.MessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
	m.Status.encode(e)
	m.SubOperations.encode(e)
}

func (m *CGetRSP) decode(d *commandDecoder) {
	*m = CGetRSP{MessageIDBeingRespondedTo: d.requireUS(dcm.MessageIDBeingRespondedTo), AffectedSOPClassUID: d.str(dcm.AffectedSOPClassUID), Data: d.hasData}
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
	e.us(dcm.MessageIDBeingRespondedTo, m.MessageIDBeingRespondedTo)
}

func (m *CCancelRQ) decode(d *commandDecoder) {
	*m = CCancelRQ{MessageIDBeingRespondedTo: d.requireUS(dcm.MessageIDBeingRespondedTo)}
}

// The status elements of every response (PS3.7 C.4): Status, and Offending Element, Error Comment
// and Error ID when present.

func (s *Status) encode(e *commandEncoder) {
	e.us(dcm.Status, s.Code)
	if len(s.OffendingElements) > 0 {
		tags := make([]dcm.Tag, len(s.OffendingElements))
		for i, t := range s.OffendingElements {
			tags[i] = dcm.Tag(t)
		}
		e.elems = append(e.elems, dcm.NewAT(dcm.OffendingElement, tags...))
	}
	if s.ErrorComment != "" {
		// LO holds 64 characters; what is cut off must not leave padding that reading removes.
		c := s.ErrorComment
		if len(c) > 64 {
			c = strings.TrimRight(c[:64], " \x00")
		}
		e.text(dcm.ErrorComment, "LO", c)
	}
	if s.ErrorID != 0 {
		e.us(dcm.ErrorID, s.ErrorID)
	}
}

func (s *Status) decode(d *commandDecoder) {
	*s = Status{ErrorComment: d.str(dcm.ErrorComment)}
	s.Code, _ = d.us(dcm.Status)
	s.ErrorID, _ = d.us(dcm.ErrorID)
	if el, ok := d.find(dcm.OffendingElement); ok && len(el.Value)%4 == 0 {
		tags, _ := el.Tags()
		for _, t := range tags {
			s.OffendingElements = append(s.OffendingElements, uint32(t))
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
	e.us(dcm.NumberOfRemainingSuboperations, s.Remaining)
	e.us(dcm.NumberOfCompletedSuboperations, s.Completed)
	e.us(dcm.NumberOfFailedSuboperations, s.Failed)
	e.us(dcm.NumberOfWarningSuboperations, s.Warning)
}

func (s *SubOperations) decode(d *commandDecoder) {
	var ok [4]bool
	s.Remaining, ok[0] = d.us(dcm.NumberOfRemainingSuboperations)
	s.Completed, ok[1] = d.us(dcm.NumberOfCompletedSuboperations)
	s.Failed, ok[2] = d.us(dcm.NumberOfFailedSuboperations)
	s.Warning, ok[3] = d.us(dcm.NumberOfWarningSuboperations)
	s.Present = ok[0] || ok[1] || ok[2] || ok[3]
}

// Encoding.

// commandEncoder collects the elements of a command set; dcm's writer puts them in tag order.
type commandEncoder struct {
	elems []dcm.Element
}

func (e *commandEncoder) uid(tag dcm.Tag, v string) { e.text(tag, "UI", v) }

func (e *commandEncoder) str(tag dcm.Tag, v string) { e.text(tag, "LO", v) }

// text adds a text element unless it is empty; the writer pads it (UI with NUL, others with a
// space).
func (e *commandEncoder) text(tag dcm.Tag, vr, v string) {
	if v != "" {
		e.elems = append(e.elems, dcm.NewText(tag, vr, v))
	}
}

// ae encodes an AE title padded to 16 bytes, the form DCMTK and most peers send.
func (e *commandEncoder) ae(tag dcm.Tag, v string) {
	if v != "" {
		e.elems = append(e.elems, dcm.NewText(tag, "AE", fmt.Sprintf("%-16s", v)))
	}
}

func (e *commandEncoder) us(tag dcm.Tag, v uint16) { e.elems = append(e.elems, dcm.NewUS(tag, v)) }

func (e *commandEncoder) header(field uint16, hasData bool) {
	e.us(dcm.CommandField, field)
	if hasData {
		e.us(dcm.CommandDataSetType, commandDataSetPresent)
	} else {
		e.us(dcm.CommandDataSetType, commandDataSetAbsent)
	}
}

// EncodeCommand returns the command set of m, group length first, elements in tag order.
func EncodeCommand(m Message) []byte { return AppendCommand(nil, m) }

// AppendCommand appends the command set of m to b.
func AppendCommand(b []byte, m Message) []byte {
	b, err := appendCommand(b, m, &commandEncoder{})
	if err != nil {
		// The writer refuses only what the encoders above never build (a tag twice, a value
		// longer than 4 GiB): an error here is a bug in this file, not bad input.
		panic(err)
	}
	return b
}

// appendCommand encodes m with e, whose element slice it reuses (an association keeps one).
func appendCommand(b []byte, m Message, e *commandEncoder) ([]byte, error) {
	// The group length's value is known once the rest is encoded: written as 0, patched below.
	e.elems = append(e.elems[:0], dcm.NewUL(dcm.CommandGroupLength, 0))
	defer clear(e.elems) // no values held from message to message
	m.encode(e)
	slices.SortStableFunc(e.elems, func(a, b dcm.Element) int { return int(int64(a.Tag) - int64(b.Tag)) })
	start := len(b)
	b, err := dcm.AppendDataSet(b, &dcm.DataSet{Elements: e.elems}, dcm.ImplicitVRLittleEndian)
	if err != nil {
		return b, fmt.Errorf("command 0x%04X: %w", m.CommandField(), err)
	}
	// In implicit VR the group length's value follows its 8-byte header.
	const groupLengthElement = 12
	n := len(b) - start - groupLengthElement
	b[start+8], b[start+9], b[start+10], b[start+11] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return b, nil
}

// Decoding.

// commandDecoder holds where a command set's elements are, as dcm's reader found them, whether
// a data set follows, and the required elements found missing.
type commandDecoder struct {
	b       []byte
	elems   []commandElement
	hasData bool
	errs    []string
}

// commandElement is an element's tag and where its value lies in the command set.
type commandElement struct {
	tag      dcm.Tag
	from, to uint32
}

// find returns the element with the tag as a dcm.Element (its VR the dictionary's, which is
// PS3.7 E.1's), for dcm's accessors; false when it is absent.
func (d *commandDecoder) find(tag dcm.Tag) (dcm.Element, bool) {
	for _, e := range d.elems {
		if e.tag == tag {
			return dcm.Element{Tag: tag, Value: d.b[e.from:e.to:e.to]}, true
		}
	}
	return dcm.Element{}, false
}

func (d *commandDecoder) has(tag dcm.Tag) bool {
	for _, e := range d.elems {
		if e.tag == tag {
			return true
		}
	}
	return false
}

// us returns a US value; false when it is absent or not one value of two bytes.
func (d *commandDecoder) us(tag dcm.Tag) (uint16, bool) {
	el, ok := d.find(tag)
	if !ok || len(el.Value) != 2 {
		return 0, false
	}
	v, err := el.Int()
	return uint16(v), err == nil
}

func (d *commandDecoder) requireUS(tag dcm.Tag) uint16 {
	v, ok := d.us(tag)
	if !ok {
		d.errs = append(d.errs, fmt.Sprintf("%s missing or not US", tag))
	}
	return v
}

// str returns a text value without its padding ("" when absent), as dcm reads it in the VR
// of PS3.7 E.1.
func (d *commandDecoder) str(tag dcm.Tag) string {
	if el, ok := d.find(tag); ok {
		return el.Text()
	}
	return ""
}

func (d *commandDecoder) ae(tag dcm.Tag) string { return d.str(tag) }

func (d *commandDecoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return fmt.Errorf("command set: %s", strings.Join(d.errs, "; "))
}

// commandLimits bound dcm's reader to what a command set can hold: no sequences, a few dozen
// elements.
var commandLimits = dcm.Limits{MaxDepth: 1, MaxElements: maxCommandElements, MaxValueLength: maxCommandElementLength}

// DecodeCommand decodes a command set. Elements of group 0000 only; each length is bounded, so a
// hostile command set costs at most its own (already bounded) size.
func DecodeCommand(b []byte) (Message, error) {
	var c commandReader
	return c.decode(b)
}

// commandReader decodes command sets with a dcm.Reader and buffers it keeps from one to the
// next: an association reads one for every message.
type commandReader struct {
	src   bytes.Reader
	r     *dcm.Reader
	elems []commandElement
}

func (c *commandReader) decode(b []byte) (Message, error) {
	if len(b) > maxCommandSetLength {
		return nil, fmt.Errorf("command set of %d bytes exceeds %d", len(b), maxCommandSetLength)
	}
	c.src.Reset(b)
	if c.r == nil {
		var err error
		if c.r, err = dcm.NewReader(&c.src, dcm.ImplicitVRLittleEndian, commandLimits); err != nil {
			return nil, fmt.Errorf("command set: %w", err)
		}
	} else if err := c.r.Reset(&c.src, dcm.ImplicitVRLittleEndian); err != nil {
		return nil, fmt.Errorf("command set: %w", err)
	}
	r := c.r
	d := &commandDecoder{b: b, elems: c.elems[:0]}
	defer func() { c.elems = d.elems[:0] }()
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("command set: %w", err)
		}
		if h.Tag.Group() != 0x0000 {
			return nil, fmt.Errorf("element %s outside group 0000 in a command set", h.Tag)
		}
		if h.Kind != dcm.KindElement {
			return nil, fmt.Errorf("element %s: undefined length in a command set", h.Tag)
		}
		if h.Length > maxCommandElementLength {
			return nil, fmt.Errorf("element %s length %d exceeds the command set's bound of %d", h.Tag, h.Length, maxCommandElementLength)
		}
		if d.has(h.Tag) {
			return nil, fmt.Errorf("element %s appears twice", h.Tag)
		}
		// The reader has checked the length against what is left of b: the value is b's own
		// bytes, not a copy.
		d.elems = append(d.elems, commandElement{tag: h.Tag, from: uint32(h.Offset), to: uint32(h.Offset) + h.Length})
	}
	field := d.requireUS(dcm.CommandField)
	dst := d.requireUS(dcm.CommandDataSetType)
	if err := d.err(); err != nil {
		return nil, err
	}
	d.hasData = dst != commandDataSetAbsent
	m := newMessage(field)
	if m == nil {
		id, _ := d.us(dcm.MessageID)
		return nil, &UnknownCommandError{Field: field, MessageID: id}
	}
	m.decode(d)
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
