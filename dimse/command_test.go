package dimse

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

func sampleMessages() []Message {
	failed := Status{Code: StatusCannotUnderstand, ErrorComment: "cannot parse", ErrorID: 3, OffendingElements: []uint32{0x00080018}}
	return []Message{
		&CEchoRQ{MessageID: 1, AffectedSOPClassUID: VerificationSOPClass},
		&CEchoRSP{MessageIDBeingRespondedTo: 1, AffectedSOPClassUID: VerificationSOPClass, Status: Status{Code: StatusSuccess}},
		&CStoreRQ{MessageID: 2, Priority: PriorityHigh, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstanceUID: "1.2.3.4.5", MoveOriginatorAETitle: "MOVER", MoveOriginatorMessageID: 9},
		&CStoreRSP{MessageIDBeingRespondedTo: 2, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstanceUID: "1.2.3.4.5", Status: failed},
		&CFindRQ{MessageID: 3, Priority: PriorityLow, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1"},
		&CFindRSP{MessageIDBeingRespondedTo: 3, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1", Status: Status{Code: StatusPending}, Data: true},
		&CFindRSP{MessageIDBeingRespondedTo: 3, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1", Status: Status{Code: StatusSuccess}},
		&CMoveRQ{MessageID: 4, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", MoveDestination: "STORESCP"},
		&CMoveRSP{MessageIDBeingRespondedTo: 4, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", Status: Status{Code: StatusPending}, SubOperations: SubOperations{Remaining: 3, Completed: 1, Present: true}},
		&CMoveRSP{MessageIDBeingRespondedTo: 4, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", Status: Status{Code: StatusWarningSubops}, SubOperations: SubOperations{Completed: 3, Failed: 1, Present: true}, Data: true},
		&CGetRQ{MessageID: 5, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.3"},
		&CGetRSP{MessageIDBeingRespondedTo: 5, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.3", Status: Status{Code: StatusSuccess}, SubOperations: SubOperations{Completed: 4, Present: true}},
		&CCancelRQ{MessageIDBeingRespondedTo: 3},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := EncodeCommand(m)
		if len(b)%2 != 0 {
			t.Errorf("%T: odd command set length %d", m, len(b))
		}
		if gl := binary.LittleEndian.Uint32(b[8:]); int(gl) != len(b)-12 {
			t.Errorf("%T: group length %d, want %d", m, gl, len(b)-12)
		}
		// Elements ascend by tag.
		prev := -1
		for rest := b; len(rest) > 0; {
			tag := int(binary.LittleEndian.Uint16(rest[2:]))
			if tag <= prev {
				t.Errorf("%T: element (0000,%04X) after (0000,%04X)", m, tag, prev)
			}
			prev = tag
			rest = rest[8+binary.LittleEndian.Uint32(rest[4:]):]
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, m)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	echo := EncodeCommand(&CEchoRQ{MessageID: 1, AffectedSOPClassUID: VerificationSOPClass})
	elem := func(group, el uint16, v []byte) []byte {
		b := binary.LittleEndian.AppendUint16(nil, group)
		b = binary.LittleEndian.AppendUint16(b, el)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...)
	}
	us := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated header", echo[:len(echo)-3], "truncated"},
		{"truncated value", echo[:len(echo)-1], "exceeds"},
		{"huge element length", append(append([]byte{}, echo...), 0, 0, 0x02, 0x09, 0xff, 0xff, 0xff, 0xff), "length"},
		{"other group", elem(0x0008, 0x0018, []byte("1.2")), "outside group 0000"},
		{"no command field", elem(0, 0x0800, us(0x0101)), "(0000,0100) missing"},
		{"duplicate", append(elem(0, 0x0100, us(0x30)), elem(0, 0x0100, us(0x30))...), "twice"},
		{"echo with data set", append(append(elem(0, 0x0100, us(0x30)), elem(0, 0x0110, us(1))...), elem(0, 0x0800, us(0))...), "contradicts"},
		{"store without message id", append(elem(0, 0x0100, us(1)), elem(0, 0x0800, us(0))...), "(0000,0110) missing"},
		{"unknown command", append(elem(0, 0x0100, us(0x0150)), elem(0, 0x0800, us(0x0101))...), "unrecognized command field 0x0150"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCommand(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
