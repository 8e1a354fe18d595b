package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/console"
	"github.com/espnode/espnode/dicomweb"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/httpguard"
	"github.com/espnode/espnode/internal/version"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/scp"
	"github.com/espnode/espnode/seg/onnx"
	"github.com/espnode/espnode/seg/segment"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/compose"
	"github.com/espnode/espnode/viewer"
)

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: espnode serve [--config FILE] [--port N] [--ae-title AET] [--data-dir DIR] [--destination AET@HOST:PORT]...")
		fmt.Fprintln(env.stderr, "Runs the DICOM node with the embedded defaults, overridden by the file, ESPNODE_* variables, then flags.")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML configuration `file` (keys as in config/default.yaml)")
	port := fs.Int("port", 0, "DICOM TCP `port` (dicom.port)")
	aet := fs.String("ae-title", "", "this node's AE title (ae_title)")
	dataDir := fs.String("data-dir", "", "archive `folder` (data_dir)")
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (log.level)")
	var dests []config.Peer
	fs.Func("destination", "send every SEG to `AET@HOST:PORT` too (repeatable; adds to pipeline.destinations)", func(s string) error {
		p, err := config.ParsePeer(s)
		if err != nil {
			return err
		}
		dests = append(dests, p)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitError{2}
	}
	cfg, err := config.Load(*configPath, os.Environ())
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
	cfg.Pipeline.Destinations = append(cfg.Pipeline.Destinations, dests...)
	if err := cfg.Validate(); err != nil {
		return err
	}
	logs := console.NewLogRing(console.DefaultLogEntries)
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format, logs)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log, logs)
}

// serve runs the node; logs, when not nil, is fed by log and shown by the console.
func serve(ctx context.Context, cfg config.Config, log zerolog.Logger, logs *console.LogRing) error {
	st, err := compose.Open(ctx, storeOptions(cfg, log.With().Str("component", "store").Logger()))
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer st.Close()

	serverTLS, clientTLS, err := tlsConfigs(cfg.DICOM.TLS)
	if err != nil {
		return err
	}
	metrics := pipeline.NewMetrics()
	pl, err := pipeline.New(ctx, pipeline.Options{
		Store:                     st,
		Config:                    pipelineConfig(cfg.Pipeline, cfg.Model, config.Postgres(cfg.Index)),
		Peers:                     pipelinePeers(cfg.Peers),
		AETitle:                   cfg.AETitle,
		Metrics:                   metrics,
		NoWorkers:                 cfg.Role == config.RoleIngest,
		TLS:                       clientTLS,
		Logger:                    log.With().Str("component", "pipeline").Logger(),
		ImplementationClassUID:    version.ImplementationClassUID,
		ImplementationVersionName: version.ImplementationVersionName(),
	})
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	// The workers outlive ctx by the grace period Stop gives them.
	if err := pl.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	// The model loads in the background: a GPU provider may take minutes to
	// compile it, and storing must not wait for that.
	engineCh := make(chan *onnx.Engine, 1)
	if cfg.Role == config.RoleIngest {
		engineCh <- nil // the workers of other nodes segment
	} else {
		go func() {
			engine, err := loadModel(cfg, pl, log.With().Str("component", "model").Logger())
			if err != nil {
				pl.ModelFailed(err)
				log.Error().Err(err).Msg("no model: instances are stored and their segmentation jobs wait")
			}
			engineCh <- engine
		}()
	}
	defer func() {
		// Running jobs finish (or are cancelled, to run again at the next
		// start) before the model they use closes.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pl.Stop(sctx); err != nil {
			log.Warn().Err(err).Msg("stopping the pipeline")
		}
		if engine := <-engineCh; engine != nil {
			engine.Close()
		}
	}()

	index, archive := engineNames(cfg)
	if cfg.Role == config.RoleWorker {
		// Workers only: the jobs of the shared queue, with /metrics and the probes.
		stopHTTP, err := serveHTTP(cfg, log, metrics, pl, st, logs)
		if err != nil {
			return err
		}
		defer stopHTTP()
		log.Info().Str("role", cfg.Role).Str("index", index).Str("archive", archive).Str("version", version.String()).
			Msg("espnode working the job queue (no DICOM listener)")
		<-ctx.Done()
		log.Info().Msg("espnode stopped")
		return nil
	}

	// Instances are stored through the pipeline, which creates each routed
	// one's job in its index transaction; Query/Retrieve reads the store.
	services := scp.New(scp.Options{
		AETitle:          cfg.AETitle,
		StrictCalledAE:   cfg.DICOM.StrictCalledAE,
		AllowedCallers:   scpCallers(cfg),
		TransferSyntaxes: cfg.DICOM.TransferSyntaxes,
		Peers:            scpPeers(cfg),
		TLS:              clientTLS,
		Logger:           log.With().Str("component", "scp").Logger(),
	}, pl, st)
	srv := &dimse.Server{
		Policy:          services.Policy(),
		Handler:         services.Handler(),
		MaxAssociations: cfg.DICOM.MaxAssociations,
		MaxPending:      cfg.DICOM.MaxPending,
		MaxPerHost:      cfg.DICOM.MaxPerHost,
		MaxPDULength:    uint32(cfg.DICOM.MaxPDULength),
		MaxOperations:   cfg.DICOM.MaxOperations,
		Timeouts: dimse.Timeouts{
			ARTIM:    cfg.DICOM.Timeouts.ARTIM,
			FirstPDU: cfg.DICOM.Timeouts.FirstPDU,
			Idle:     cfg.DICOM.Timeouts.Idle,
			DIMSE:    cfg.DICOM.Timeouts.DIMSE,
		},
		Logger:                    log.With().Str("component", "dimse").Logger(),
		ImplementationClassUID:    version.ImplementationClassUID,
		ImplementationVersionName: version.ImplementationVersionName(),
	}
	ln, err := net.Listen("tcp", cfg.DICOM.Addr())
	if err != nil {
		return err
	}
	// The TLS listener (PS3.15 B) is served by the same Server: the limits are shared. Either
	// listener failing stops both.
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	tlsDone := make(chan error, 1)
	if serverTLS != nil {
		tln, err := net.Listen("tcp", cfg.DICOM.TLSAddr())
		if err != nil {
			ln.Close()
			return fmt.Errorf("dicom.tls.port: %w", err)
		}
		log.Info().Str("listen", tln.Addr().String()).Str("client_certs", cfg.DICOM.TLS.ClientCerts).Msg("DICOM TLS")
		go func() {
			err := srv.Serve(serveCtx, tls.NewListener(countingListener{Listener: tln, n: metrics.Associations}, serverTLS))
			stopServing()
			tlsDone <- err
		}()
	} else {
		tlsDone <- nil
	}
	stopHTTP, err := serveHTTP(cfg, log, metrics, pl, st, logs)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopHTTP()
	log.Info().Str("ae_title", cfg.AETitle).Str("listen", ln.Addr().String()).Str("data_dir", cfg.DataDir).
		Str("role", cfg.Role).Str("index", index).Str("archive", archive).
		Int("destinations", len(cfg.Pipeline.Destinations)).Str("version", version.String()).Msg("espnode serving")
	err = srv.Serve(serveCtx, countingListener{Listener: ln, n: metrics.Associations})
	stopServing()
	if terr := <-tlsDone; err == nil {
		err = terr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info().Msg("espnode stopped")
	return nil
}

// countingListener counts accepted connections for espnode_associations_total.
type countingListener struct {
	net.Listener
	n prometheus.Counter
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Inc()
	}
	return c, err
}

// loadModel opens the configured model, or the shipped one, and starts the
// segmentation workers on it.
func loadModel(cfg config.Config, pl *pipeline.Pipeline, log zerolog.Logger) (*onnx.Engine, error) {
	path := cfg.Model.Path
	if path == "" {
		var err error
		if path, err = segment.WriteShippedModel(filepath.Join(cfg.DataDir, "models")); err != nil {
			return nil, err
		}
	}
	batch := cfg.Model.Batch
	if batch == 0 {
		batch = onnx.DefaultBatch(cfg.Model.Provider)
	}
	engine, err := onnx.OpenUniversal(path, onnx.Options{
		Library:   cfg.Model.ONNXRuntime,
		Provider:  cfg.Model.Provider,
		Threads:   cfg.Model.Threads,
		MaxBatch:  batch,
		BatchWait: cfg.Model.BatchWait,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	provider := ""
	for _, ch := range engine.Channels() {
		if r, err := engine.Route(ch); err == nil {
			provider = r.Model.Provider()
			break
		}
	}
	workers := pipeline.Workers(cfg.Pipeline.Workers, provider, batch)
	if err := pl.EnableSegmentation(segment.New(engine), workers); err != nil {
		engine.Close()
		return nil, err
	}
	log.Info().Str("model", path).Str("provider", provider).Int("workers", workers).Int("batch", batch).
		Strs("channels", engine.Channels()).Msg("model loaded: segmenting")
	return engine, nil
}

// serveHTTP starts the HTTP listeners: http.addr (health, metrics and DICOMweb) and the viewer's
// (OHIF and DICOMweb on one origin), both behind the guard and, when configured, TLS. The
// function it returns closes them.
func serveHTTP(cfg config.Config, log zerolog.Logger, metrics *pipeline.Metrics, pl *pipeline.Pipeline, st *store.Store, logs *console.LogRing) (func(), error) {
	h := cfg.HTTP
	var servers []*http.Server
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	var tlsConfig *tls.Config
	if h.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(h.TLS.Cert, h.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("http.tls: %w", err)
		}
		tlsConfig = dimse.BCP195(&tls.Config{Certificates: []tls.Certificate{cert}})
		tlsConfig.NextProtos = []string{"h2", "http/1.1"}
	}
	guard := httpguard.New(httpGuardOptions(h))
	// A worker serves the probes and /metrics only: it answers no DICOM.
	worker := cfg.Role == config.RoleWorker
	var web *dicomweb.Server
	if h.DICOMweb && !worker {
		web = dicomweb.New(dicomwebOptions(cfg, log.With().Str("component", "dicomweb").Logger()), pl, st)
	}
	listen := func(key, addr string, handler http.Handler) (string, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		scheme := "http"
		if tlsConfig != nil {
			ln = tls.NewListener(ln, tlsConfig)
			scheme = "https"
		}
		hs := &http.Server{Handler: guard.Wrap(handler), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
			IdleTimeout: 2 * time.Minute}
		servers = append(servers, hs)
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Str("listen", ln.Addr().String()).Msg("HTTP server")
			}
		}()
		return scheme + "://" + ln.Addr().String(), nil
	}
	if h.Addr != "" {
		mux := http.NewServeMux()
		mux.Handle("/", pipeline.HTTPHandler(metrics, pl.Ready))
		served := "/healthz, /readyz, /metrics"
		if web != nil {
			mux.Handle(web.Root()+"/", web)
			served += ", " + web.Root()
		}
		if h.Console && !worker {
			con, err := newConsole(cfg, log.With().Str("component", "console").Logger(), logs, metrics, pl, st, web)
			if err != nil {
				stop()
				return nil, err
			}
			mux.Handle(console.Root, con)
			served += ", " + console.Root
		}
		u, err := listen("http.addr", h.Addr, mux)
		if err != nil {
			stop()
			return nil, err
		}
		log.Info().Str("listen", strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")).Str("url", u).
			Bool("authentication", guard.Authenticating()).Msg("HTTP: " + served)
	}
	if h.Viewer.Addr != "" && web != nil {
		dir := viewerDir(h.Viewer.Dir)
		site, err := viewer.New(viewer.Options{Dir: dir, DICOMwebRoot: web.Root()}, web)
		if err != nil {
			log.Warn().Err(err).Msg("no viewer: run scripts/deps.sh run to fetch OHIF, or set http.viewer.dir")
			return stop, nil
		}
		u, err := listen("http.viewer.addr", h.Viewer.Addr, site)
		if err != nil {
			site.Close()
			stop()
			return nil, err
		}
		log.Info().Str("url", u+"/").Str("dir", dir).Bool("authentication", guard.Authenticating()).
			Msg("OHIF viewer: open this URL in a browser")
	}
	return stop, nil
}

// viewerDir is the configured viewer folder, or third_party/ohif beside the binary's folder
// (bin/espnode in a checkout) when it holds one, else in the working directory.
func viewerDir(configured string) string {
	if configured != "" {
		return configured
	}
	if exe, err := os.Executable(); err == nil {
		d := filepath.Join(filepath.Dir(filepath.Dir(exe)), "third_party", "ohif")
		if _, err := os.Stat(filepath.Join(d, "index.html")); err == nil {
			return d
		}
	}
	return filepath.Join("third_party", "ohif")
}
