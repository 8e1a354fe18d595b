package dimse

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadPDU: any bytes give a PDU or an error, never a panic or an allocation beyond the limits;
// a decoded PDU re-encodes to something that decodes to the same PDU.
func FuzzReadPDU(f *testing.F) {
	for _, p := range samplePDUs() {
		f.Add(EncodePDU(p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPDU(bytes.NewReader(b), 64<<10)
		if err != nil {
			return
		}
		again, err := ReadPDU(bytes.NewReader(EncodePDU(p)), 64<<10)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", p, err)
		}
		if !bytes.Equal(EncodePDU(again), EncodePDU(p)) {
			t.Fatalf("%T changes on a second round trip", p)
		}
	})
}

// FuzzDecodeCommand: any command set decodes or fails cleanly; decoded messages round-trip.
func FuzzDecodeCommand(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(EncodeCommand(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeCommand(b)
		if err != nil {
			var u *UnknownCommandError
			_ = errors.As(err, &u)
			return
		}
		m2, err := DecodeCommand(EncodeCommand(m))
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", m, err)
		}
		if !bytes.Equal(EncodeCommand(m2), EncodeCommand(m)) {
			t.Fatalf("%T changes on a second round trip", m)
		}
	})
}
