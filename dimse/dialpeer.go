package dimse

import (
	"context"
	"crypto/tls"
	"fmt"
)

// DialPeer requests an association with a peer of the node's AE table at addr: over TLS with
// tlsConfig when the peer is marked TLS (useTLS), in the clear otherwise. It is the one way the
// node dials a peer (C-MOVE in scp, SEG delivery in pipeline), so that the AE table's TLS setting
// applies to every outgoing association; it lives here because those two packages are on the
// same layer.
func DialPeer(ctx context.Context, addr string, useTLS bool, tlsConfig *tls.Config, cfg ClientConfig) (*Client, error) {
	cfg.TLS = nil
	if useTLS {
		if tlsConfig == nil {
			return nil, fmt.Errorf("peer %s at %s: marked TLS, but the node has no TLS configuration", cfg.CalledAE, addr)
		}
		cfg.TLS = tlsConfig
	}
	return Dial(ctx, addr, cfg)
}
