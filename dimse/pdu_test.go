package dimse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

func samplePDUs() map[string]PDU {
	return map[string]PDU{
		"associate-rq": &AssociateRQ{
			ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "MODALITY1",
			ApplicationContext: ApplicationContextName,
			PresentationContexts: []PresentationContextRQ{
				{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
				{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, "1.2.840.10008.1.2.4.50"}},
			},
			hasUserInfo: true,
			UserInfo: UserInfo{
				MaxLength: 16384, hasMaxLength: true, ImplementationClassUID: "1.2.826.0.1.3680043.9.7433.1", ImplementationVersionName: "ESPNODE_0_1",
				AsyncOps:       &AsyncOpsWindow{MaxInvoked: 4, MaxPerformed: 2},
				RoleSelections: []RoleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SCURole: false, SCPRole: true}},
				UserIdentity:   &UserIdentity{Type: 2, PositiveResponseRequired: true, Primary: []byte("user"), Secondary: []byte("secret")},
				Extended: []RawItem{
					{Type: itemSOPClassExtended, Data: []byte{0, 3, '1', '.', '2', 1, 0}},
					{Type: itemSOPClassCommonExt, Data: []byte{0, 1, '1', 0, 1, '2', 0, 0}},
				},
			},
		},
		"associate-ac": &AssociateAC{
			ProtocolVersion: 1, CalledAE: "ESPNODE", CallingAE: "MODALITY1",
			ApplicationContext: ApplicationContextName,
			PresentationContexts: []PresentationContextAC{
				{ID: 1, Result: ResultAcceptance, TransferSyntax: ImplicitVRLittleEndian},
				{ID: 3, Result: ResultAbstractSyntaxNotSupported, TransferSyntax: ""},
				{ID: 5, Result: ResultTransferSyntaxesNotSupported, TransferSyntax: ""},
			},
			UserInfo: UserInfo{
				MaxLength: 262144, hasMaxLength: true, ImplementationClassUID: "1.2.3", ImplementationVersionName: "X",
				AsyncOps:             &AsyncOpsWindow{MaxInvoked: 1, MaxPerformed: 1},
				RoleSelections:       []RoleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SCURole: true, SCPRole: true}},
				UserIdentityResponse: []byte("token"),
			},
		},
		"associate-rj": &AssociateRJ{Result: RejectTransient, Source: RejectSourcePresentation, Reason: RejectReasonLocalLimitExceeded},
		"p-data-tf": &PDataTF{Items: []PDV{
			{ContextID: 1, Command: true, Last: true, Data: EncodeCommand(&CEchoRQ{MessageID: 7, AffectedSOPClassUID: VerificationSOPClass})},
			{ContextID: 3, Command: false, Last: false, Data: []byte{1, 2, 3, 4}},
			{ContextID: 3, Command: false, Last: true, Data: []byte{}},
		}},
		"release-rq": &ReleaseRQ{},
		"release-rp": &ReleaseRP{},
		"abort":      &Abort{Source: AbortSourceProvider, Reason: AbortReasonInvalidParameter},
	}
}

func TestPDURoundTrip(t *testing.T) {
	for name, p := range samplePDUs() {
		t.Run(name, func(t *testing.T) {
			b := EncodePDU(p)
			if got := binary.BigEndian.Uint32(b[2:]); int(got) != len(b)-6 {
				t.Fatalf("header length %d, body is %d bytes", got, len(b)-6)
			}
			q, err := ReadPDU(bytes.NewReader(b), 1<<20)
			if err != nil {
				t.Fatalf("ReadPDU: %v", err)
			}
			if pd, ok := p.(*PDataTF); ok {
				// Decoded data aliases the body; compare contents.
				qd := q.(*PDataTF)
				if len(qd.Items) != len(pd.Items) {
					t.Fatalf("%d PDVs, want %d", len(qd.Items), len(pd.Items))
				}
				for i := range pd.Items {
					w, g := pd.Items[i], qd.Items[i]
					if w.ContextID != g.ContextID || w.Command != g.Command || w.Last != g.Last || !bytes.Equal(w.Data, g.Data) {
						t.Errorf("PDV %d = %+v, want %+v", i, g, w)
					}
				}
				return
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip changed the PDU:\n got %#v\nwant %#v", q, p)
			}
			if again := EncodePDU(q); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

// TestAssociateRQFromDCMTK decodes an A-ASSOCIATE-RQ laid out as echoscu sends it, byte by byte,
// so the decoder is held against another implementation's encoder and not only its own.
func TestAssociateRQWireLayout(t *testing.T) {
	var b []byte
	b = append(b, 0x01, 0x00, 0, 0, 0, 0) // header, length patched below
	b = append(b, 0x00, 0x01, 0x00, 0x00)
	b = append(b, []byte("ANY-SCP         ")...)
	b = append(b, []byte("ECHOSCU         ")...)
	b = append(b, make([]byte, 32)...)
	b = append(b, 0x10, 0x00, 0x00, 0x15)
	b = append(b, []byte("1.2.840.10008.3.1.1.1")...)
	// presentation context 1: verification, implicit LE
	b = append(b, 0x20, 0x00, 0x00, 0x2e, 0x01, 0x00, 0x00, 0x00)
	b = append(b, 0x30, 0x00, 0x00, 0x11)
	b = append(b, []byte("1.2.840.10008.1.1")...)
	b = append(b, 0x40, 0x00, 0x00, 0x11)
	b = append(b, []byte("1.2.840.10008.1.2")...)
	// user information: max length 16384, implementation class UID and version name
	b = append(b, 0x50, 0x00, 0x00, 0x3a)
	b = append(b, 0x51, 0x00, 0x00, 0x04, 0x00, 0x00, 0x40, 0x00)
	b = append(b, 0x52, 0x00, 0x00, 0x1b)
	b = append(b, []byte("1.2.276.0.7230010.3.0.3.6.7")...)
	b = append(b, 0x55, 0x00, 0x00, 0x0f)
	b = append(b, []byte("OFFIS_DCMTK_367")...)
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)-6))

	p, err := ReadPDU(bytes.NewReader(b), 1<<20)
	if err != nil {
		t.Fatalf("ReadPDU: %v", err)
	}
	rq := p.(*AssociateRQ)
	want := &AssociateRQ{
		ProtocolVersion: 1, CalledAE: "ANY-SCP", CallingAE: "ECHOSCU", ApplicationContext: ApplicationContextName,
		PresentationContexts: []PresentationContextRQ{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}},
		UserInfo:             UserInfo{MaxLength: 16384, hasMaxLength: true, ImplementationClassUID: "1.2.276.0.7230010.3.0.3.6.7", ImplementationVersionName: "OFFIS_DCMTK_367"},
		hasUserInfo:          true,
	}
	if !reflect.DeepEqual(rq, want) {
		t.Fatalf("got %#v\nwant %#v", rq, want)
	}
}

func TestReadPDUErrors(t *testing.T) {
	valid := EncodePDU(samplePDUs()["associate-rq"])
	withLength := func(b []byte, n uint32) []byte {
		c := append([]byte{}, b...)
		binary.BigEndian.PutUint32(c[2:], n)
		return c
	}
	tests := []struct {
		name   string
		in     []byte
		reason AbortReason // 0xFF: an I/O error, not a protocol error
	}{
		{"length 0xFFFFFFFF", withLength(valid, 0xFFFFFFFF), AbortReasonInvalidParameter},
		{"p-data over the limit", []byte{0x04, 0, 0x00, 0x10, 0x00, 0x01}, AbortReasonInvalidParameter},
		{"unknown type", []byte{0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0}, AbortReasonUnrecognizedPDU},
		{"release with body 5", []byte{0x05, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}, AbortReasonInvalidParameter},
		{"associate too short", []byte{0x01, 0, 0, 0, 0, 10}, AbortReasonInvalidParameter},
		{"truncated body", valid[:len(valid)-3], 0xFF},
		{"item longer than pdu", func() []byte {
			c := append([]byte{}, valid...)
			binary.BigEndian.PutUint16(c[6+68+2:], 0xFFFF)
			return c
		}(), AbortReasonInvalidParameter},
		{"pdv longer than pdu", []byte{0x04, 0, 0, 0, 0, 8, 0, 0, 0, 9, 1, 3, 0, 0}, AbortReasonInvalidParameter},
		{"pdv length 1", []byte{0x04, 0, 0, 0, 0, 6, 0, 0, 0, 1, 1, 3}, AbortReasonInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPDU(bytes.NewReader(tt.in), 64<<10)
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ProtocolError
			if tt.reason == 0xFF {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v, want unexpected EOF", err)
				}
				return
			}
			if !errors.As(err, &pe) || pe.Reason != tt.reason {
				t.Fatalf("error %v, want protocol error with reason %d", err, tt.reason)
			}
		})
	}
}
