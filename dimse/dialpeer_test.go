package dimse

import (
	"context"
	"strings"
	"testing"
)

// TestDialPeerTLSWithoutConfiguration: a peer marked TLS is never dialled in the clear.
func TestDialPeerTLSWithoutConfiguration(t *testing.T) {
	_, err := DialPeer(context.Background(), "127.0.0.1:1", true, nil, ClientConfig{CallingAE: "A", CalledAE: "PACS"})
	if err == nil || !strings.Contains(err.Error(), "PACS") || !strings.Contains(err.Error(), "no TLS configuration") {
		t.Fatalf("DialPeer: %v, want a refusal naming the peer", err)
	}
}
