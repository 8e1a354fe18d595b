package dicomseg

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

const (
	// ImplementationClassUID identifies espnode as the writer in the file meta information.
	// It is a UUID-derived UID (PS3.5 B.2), so it needs no registered root.
	ImplementationClassUID = "2.25.106557202308160720138053501065905396575"
	// ImplementationVersionName is the writer's version in the file meta information (SH, 16).
	ImplementationVersionName = "ESPNODE_SEG_1"
)

// NewUID returns a fresh UUID-derived UID: "2.25." and a random 122-bit number (PS3.5 B.2).
func NewUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new UID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return "2.25." + new(big.Int).SetBytes(b[:]).String(), nil
}
