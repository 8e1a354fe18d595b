package main

import (
	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/scp"
)

// peers converts the configured AE table for the DICOM services.
func peers(cfg config.Config) []scp.Peer {
	out := make([]scp.Peer, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		out = append(out, scp.Peer{AETitle: p.AETitle, Host: p.Host, Port: p.Port, TLS: p.TLS, OmitGetFailedList: p.OmitGetFailedList})
	}
	return out
}
