package main

import (
	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/scp"
)

// The packages below the command take their own option types; these translate the
// configuration into them, so that none of them depends on config.

// scpPeers converts the AE table for the DICOM services (C-MOVE destinations).
func scpPeers(cfg config.Config) []scp.Peer {
	out := make([]scp.Peer, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		out = append(out, scp.Peer{AETitle: p.AETitle, Host: p.Host, Port: p.Port, TLS: p.TLS, OmitGetFailedList: p.OmitGetFailedList})
	}
	return out
}

// scpCallers converts the calling-AE allow-list.
func scpCallers(cfg config.Config) []scp.Caller {
	out := make([]scp.Caller, 0, len(cfg.DICOM.AllowedCallers))
	for _, c := range cfg.DICOM.AllowedCallers {
		out = append(out, scp.Caller{AETitle: c.AETitle, Host: c.Host, CertName: c.CertName})
	}
	return out
}

func pipelinePeers(ps []config.Peer) []pipeline.Peer {
	out := make([]pipeline.Peer, 0, len(ps))
	for _, p := range ps {
		out = append(out, pipeline.Peer{AETitle: p.AETitle, Host: p.Host, Port: p.Port})
	}
	return out
}

// routes converts the routing rules.
func routes(rs []config.Route) []pipeline.Route {
	out := make([]pipeline.Route, 0, len(rs))
	for _, r := range rs {
		out = append(out, pipeline.Route{Channel: r.Channel, Modality: r.Modality, SOPClassUID: r.SOPClassUID,
			BodyPartExamined: r.BodyPartExamined, AnatomicRegion: r.AnatomicRegion, ViewPosition: r.ViewPosition,
			Description: r.Description, ImageType: r.ImageType, CallingAE: r.CallingAE, Reason: r.Reason})
	}
	return out
}

// pipelineConfig converts the pipeline section, and the model section's guard.
func pipelineConfig(c config.Pipeline, m config.Model) pipeline.Config {
	retry := func(r config.Retry) pipeline.Retry {
		return pipeline.Retry{MaxAttempts: r.MaxAttempts, Initial: r.Initial, Max: r.Max}
	}
	return pipeline.Config{
		SeriesMode:     c.SeriesMode,
		SeriesIdle:     c.SeriesIdle,
		SegmentRetry:   retry(c.SegmentRetry),
		PollInterval:   c.PollInterval,
		Routing:        routes(c.Routing),
		Destinations:   pipelinePeers(c.Destinations),
		ReplyToSender:  c.ReplyToSender,
		DeliveryRetry:  retry(c.DeliveryRetry),
		DeliverTimeout: c.DeliverTimeout,

		RejectImplausible: m.RejectImplausible,
	}
}
