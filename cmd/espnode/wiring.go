package main

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dicomweb"
	"github.com/espnode/espnode/httpguard"
	"github.com/espnode/espnode/internal/version"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/scp"
	"github.com/espnode/espnode/store/compose"
	"github.com/espnode/espnode/store/s3archive"
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
		out = append(out, pipeline.Peer{AETitle: p.AETitle, Host: p.Host, Port: p.Port, TLS: p.TLS})
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

// pipelineConfig converts the pipeline section, and the model section's guard. rescue_after is
// for a shared queue: on SQLite, where the node requeues its own jobs at start, River's rescuer
// keeps its default (an hour), which a long segmentation on a slow CPU stays below.
func pipelineConfig(c config.Pipeline, m config.Model, sharedQueue bool) pipeline.Config {
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
		RescueAfter:    rescueAfter(c, sharedQueue),

		RejectImplausible: m.RejectImplausible,
	}
}

// storeOptions converts the engine keys (index, archive, s3) and the store section.
func storeOptions(cfg config.Config, log zerolog.Logger) compose.Options {
	return compose.Options{
		Dir:     cfg.DataDir,
		Index:   cfg.Index,
		Archive: cfg.Archive,
		S3: s3archive.Config{Endpoint: cfg.S3.Endpoint, Region: cfg.S3.Region, AccessKeyID: cfg.S3.AccessKeyID,
			SecretAccessKey: cfg.S3.SecretAccessKey, PathStyle: cfg.S3.PathStyle, PartSize: int64(cfg.S3.PartSize)},
		Duplicates:                cfg.Store.Duplicates,
		Logger:                    log,
		ImplementationClassUID:    version.ImplementationClassUID,
		ImplementationVersionName: version.ImplementationVersionName(),
	}
}

// engineNames says which engines a configuration chose, without the index URL's credentials:
// for the start-up log line.
func engineNames(cfg config.Config) (index, archive string) {
	index, archive = cfg.Index, cfg.Archive
	if config.Postgres(index) {
		index = "postgres"
	}
	return index, archive
}

func rescueAfter(c config.Pipeline, sharedQueue bool) time.Duration {
	if !sharedQueue {
		return 0
	}
	return c.RescueAfter
}

// dicomwebOptions converts the http section for the DICOMweb server.
func dicomwebOptions(cfg config.Config, log zerolog.Logger) dicomweb.Options {
	return dicomweb.Options{
		PublicURL:                 cfg.HTTP.PublicURL,
		MaxStoreBytes:             int64(cfg.HTTP.MaxStoreBytes),
		MaxResults:                cfg.HTTP.MaxResults,
		BulkDataThreshold:         int64(cfg.HTTP.BulkDataThreshold),
		TransferSyntaxes:          cfg.DICOM.TransferSyntaxes,
		ImplementationClassUID:    version.ImplementationClassUID,
		ImplementationVersionName: version.ImplementationVersionName(),
		Logger:                    log,
	}
}

// httpGuardOptions converts the http section's security keys; the health probes stay open.
func httpGuardOptions(h config.HTTP) httpguard.Options {
	users := make([]httpguard.User, 0, len(h.Auth.Users))
	for _, u := range h.Auth.Users {
		users = append(users, httpguard.User{Name: u.Name, Password: u.Password})
	}
	return httpguard.Options{
		Tokens:      h.Auth.Tokens,
		Users:       users,
		Open:        []string{"/healthz", "/readyz"},
		MaxBody:     int64(h.MaxStoreBytes),
		CORSOrigins: h.CORSOrigins,
	}
}
