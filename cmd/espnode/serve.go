package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/version"
	"github.com/espnode/espnode/scp"
	"github.com/espnode/espnode/store"
)

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: espnode serve [--config FILE] [--port N] [--ae-title AET] [--data-dir DIR]")
		fmt.Fprintln(env.stderr, "Runs the DICOM node with the embedded defaults, overridden by the file, ESPNODE_* variables, then flags.")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML configuration `file` (keys as in config/default.yaml)")
	port := fs.Int("port", 0, "DICOM TCP `port` (dicom.port)")
	aet := fs.String("ae-title", "", "this node's AE title (ae_title)")
	dataDir := fs.String("data-dir", "", "archive `folder` (data_dir)")
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (log.level)")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitError{2}
	}
	cfg, err := config.Load(*configPath, os.Getenv)
	if err != nil {
		return err
	}
	// Flags override the file and the environment; validate again after them.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "port":
			cfg.DICOM.Port = *port
		case "ae-title":
			cfg.AETitle = *aet
		case "data-dir":
			cfg.DataDir = *dataDir
		case "log-level":
			cfg.Log.Level = *logLevel
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log)
}

func serve(ctx context.Context, cfg config.Config, log zerolog.Logger) error {
	st, err := store.Open(ctx, store.Options{
		Dir:                       cfg.DataDir,
		Duplicates:                cfg.Store.Duplicates,
		Logger:                    log.With().Str("component", "store").Logger(),
		ImplementationClassUID:    version.ImplementationClassUID,
		ImplementationVersionName: version.ImplementationVersionName(),
	})
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer st.Close()

	callers := make([]scp.Caller, 0, len(cfg.DICOM.AllowedCallers))
	for _, c := range cfg.DICOM.AllowedCallers {
		callers = append(callers, scp.Caller{AETitle: c.AETitle, Host: c.Host})
	}
	services := scp.New(scp.Options{
		AETitle:          cfg.AETitle,
		StrictCalledAE:   cfg.DICOM.StrictCalledAE,
		AllowedCallers:   callers,
		TransferSyntaxes: cfg.DICOM.TransferSyntaxes,
		Peers:            peers(cfg),
		Logger:           log.With().Str("component", "scp").Logger(),
	}, st)
	srv := &dimse.Server{
		Policy:          services.Policy(),
		Handler:         services.Handler(),
		MaxAssociations: cfg.DICOM.MaxAssociations,
		MaxPDULength:    uint32(cfg.DICOM.MaxPDULength),
		Timeouts: dimse.Timeouts{
			ARTIM: cfg.DICOM.Timeouts.ARTIM,
			Idle:  cfg.DICOM.Timeouts.Idle,
			DIMSE: cfg.DICOM.Timeouts.DIMSE,
		},
		Logger:                    log.With().Str("component", "dimse").Logger(),
		ImplementationClassUID:    version.ImplementationClassUID,
		ImplementationVersionName: version.ImplementationVersionName(),
	}
	log.Info().Str("ae_title", cfg.AETitle).Str("listen", cfg.DICOM.Addr()).Str("data_dir", cfg.DataDir).
		Str("version", version.String()).Msg("espnode serving")
	err = srv.ListenAndServe(ctx, cfg.DICOM.Addr())
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info().Msg("espnode stopped")
	return nil
}
