// Package connector is hookbridge's host runtime: it loads and validates the configuration
// and wires the store, the webhook receiver, delivery and the admin API together. This file
// is the one place where the parts meet.
package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/connector/receiver"
	"github.com/hookbridge/hookbridge/connector/store"
	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Options are the runtime's dependencies that do not come from the configuration file.
type Options struct {
	// Logger receives every log line (default slog.Default()).
	Logger *slog.Logger
	// MaxGroup overrides the store's commit group bound (1: a transaction per request).
	MaxGroup int
	// ShutdownTimeout bounds the graceful shutdown (default 30s).
	ShutdownTimeout time.Duration
	// OpenSink connects a configured sink's plugin. Required when sinks are configured.
	OpenSink SinkOpener
	// Now and After are the delivery engine's clock (default: the real one).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// Connector is a running hookbridge server.
type Connector struct {
	cfg   *Config
	opts  Options
	log   *slog.Logger
	reg   *prometheus.Registry
	store *store.Store
	eng   *delivery.Engine
	sinks []io.Closer
	srv   *http.Server
	ln    net.Listener
	admin *http.Server // its own listener when admin.listen is set
	api   *admin.API

	serveErr chan error
	stopOnce sync.Once
	stopErr  error
}

// New checks cfg and prepares a Connector; nothing is opened until Start.
func New(cfg *Config, opts Options) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	return &Connector{cfg: cfg, opts: opts, log: opts.Logger, serveErr: make(chan error, 2)}, nil
}

// Start binds the listeners, opens the database and starts serving. The listeners come
// first, so an address in use fails the start before the database file is created, migrated
// or touched; until the rest has started they answer 503 + Retry-After.
func (c *Connector) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("connector: listen on %s: %w", c.cfg.Listen, err)
	}
	var aln net.Listener
	if c.cfg.Admin.Listen != "" {
		if aln, err = net.Listen("tcp", c.cfg.Admin.Listen); err != nil {
			ln.Close()
			return fmt.Errorf("connector: admin listen on %s: %w", c.cfg.Admin.Listen, err)
		}
	}
	// Until everything has started, the listeners answer 503 + Retry-After (and /healthz
	// 200), so a sender is told to come back rather than left waiting while the store opens
	// and migrates.
	web, adm := &startingHandler{}, &startingHandler{}
	c.ln = ln
	c.srv = c.httpServer(web)
	go func() { c.serveErr <- c.srv.Serve(ln) }()
	if aln != nil {
		c.admin = c.httpServer(adm)
		go func() {
			if err := c.admin.Serve(aln); !errors.Is(err, http.ErrServerClosed) {
				c.serveErr <- fmt.Errorf("admin: %w", err)
			}
		}()
	}
	closeListeners := func() {
		c.srv.Close()
		if c.admin != nil {
			c.admin.Close()
		}
	}
	c.reg = prometheus.NewRegistry()
	c.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The exports folder is made by the first export or snapshot (see admin), not here.
	st, err := store.Open(ctx, store.Options{
		Path:               c.cfg.Data,
		AllowedDirectories: []string{c.cfg.ExportDir()},
		AnalyticsZone:      c.cfg.Analytics.TimeZone,
		QueueEvents:        c.cfg.Limits.QueueEvents,
		QueueBytes:         int64(c.cfg.Limits.QueueBytes),
		MaxGroup:           c.opts.MaxGroup,
		GroupWait:          c.cfg.Limits.GroupWaitOrDefault(),
		MemoryLimit:        c.cfg.DuckDB.MemoryLimit,
		Threads:            c.cfg.DuckDB.Threads,
		CheckpointIdleWAL:  int64(c.cfg.DuckDB.CheckpointWAL),
		Logger:             c.log,
		Registerer:         c.reg,
	})
	if err != nil {
		closeListeners()
		return err
	}
	c.store = st
	rc, err := c.newReceiver()
	if err != nil {
		st.Close()
		closeListeners()
		return err
	}
	if err := c.startDelivery(ctx); err != nil {
		c.closeSinks()
		st.Close()
		closeListeners()
		return err
	}
	mux := http.NewServeMux()
	rc.Register(mux)
	mux.HandleFunc("GET /healthz", c.healthz)
	mux.HandleFunc("GET /readyz", c.readyz)
	metrics := promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg})
	mux.Handle("GET /metrics", metrics)

	adminMux := mux
	if c.cfg.Admin.Listen != "" {
		adminMux = http.NewServeMux()
		adminMux.Handle("GET /metrics", metrics) // scrapers may reach only the admin listener
	}
	api := c.adminAPI(c.cfg.Admin.Listen == "" && IsLoopback(c.cfg.Listen) || c.cfg.Admin.Listen != "" && IsLoopback(c.cfg.Admin.Listen))
	c.api = api
	api.Register(adminMux)
	if err := api.RegisterDashboard(adminMux); err != nil {
		c.stopDelivery()
		st.Close()
		closeListeners()
		return err
	}

	web.serve(receiver.NoRedirect(mux))
	if aln != nil {
		adm.serve(adminMux)
		c.log.Info("hookbridge: admin API listening", "addr", aln.Addr().String())
	}
	c.log.Info("hookbridge: listening", "addr", ln.Addr().String(), "data", c.cfg.Data, "sources", c.cfg.SourceNames(), "sinks", len(c.cfg.Sinks))
	return nil
}

// startingHandler answers 503 + Retry-After (and /healthz 200: the process is alive) until
// serve gives it the real handler.
type startingHandler struct{ h atomic.Pointer[http.Handler] }

func (s *startingHandler) serve(h http.Handler) { s.h.Store(&h) }

func (s *startingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
		fmt.Fprintln(w, `{"status":"starting"}`)
		return
	}
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintln(w, `{"error":{"rule":"unavailable","detail":"hookbridge is starting; retry shortly"}}`)
}

func (c *Connector) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Duration(c.cfg.Limits.ReadTimeout),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
	}
}

func (c *Connector) adminAPI(loopback bool) *admin.API {
	decoders, _ := c.cfg.Decoders() // validated with the configuration
	opts := admin.Options{Token: c.cfg.Admin.Token.Reveal(), Loopback: loopback, Store: c.store, Data: c.store,
		ExportDir: c.cfg.ExportDir(), Decoders: decoders, Gatherer: c.reg, Logger: c.log}
	if c.eng != nil {
		opts.Engine = c.eng
	}
	if c.cfg.Admin.PublicURL != "" {
		opts.PublicURL, _ = url.Parse(c.cfg.Admin.PublicURL) // validated with the configuration
	}
	return admin.New(opts)
}

// startDelivery opens every configured sink's plugin and starts the delivery engine.
func (c *Connector) startDelivery(ctx context.Context) error {
	if len(c.cfg.Sinks) == 0 {
		return nil
	}
	if c.opts.OpenSink == nil {
		return errors.New("connector: sinks are configured but no plugin host was given")
	}
	var sinks []delivery.SinkOptions
	for i, sc := range c.cfg.Sinks {
		o, err := c.opts.OpenSink(ctx, sc)
		if se := (*sdk.SettingsError)(nil); errors.As(err, &se) {
			return fmt.Errorf("connector: sink %s (plugin %s): %s: %s", sc.Name, sc.Plugin, c.cfg.locate(fmt.Sprintf("sinks[%d].settings.%s", i, se.Field)), se.Message)
		}
		if err != nil {
			return fmt.Errorf("connector: sink %s (plugin %s): %w", sc.Name, sc.Plugin, err)
		}
		if o.Closer != nil {
			c.sinks = append(c.sinks, o.Closer)
		}
		so, err := sinkOptions(sc, o)
		if err != nil {
			return fmt.Errorf("connector: sink %s: %w", sc.Name, err)
		}
		sinks = append(sinks, so)
	}
	eng, err := delivery.New(delivery.Options{Store: c.store, Sinks: sinks, Logger: c.log, Registerer: c.reg, Now: c.opts.Now, After: c.opts.After})
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	c.eng = eng
	return nil
}

func (c *Connector) stopDelivery() {
	if c.eng != nil {
		c.eng.Stop()
	}
	c.closeSinks()
}

func (c *Connector) closeSinks() {
	for _, s := range c.sinks {
		if err := s.Close(); err != nil {
			c.log.Warn("connector: closing sink", "err", err)
		}
	}
	c.sinks = nil
}

func (c *Connector) newReceiver() (*receiver.Receiver, error) {
	var sources []receiver.Source
	for _, sc := range c.cfg.Sources {
		dec, err := schemas.NewDecoder(sc.ContactFields)
		if err != nil {
			return nil, fmt.Errorf("connector: source %s: %w", sc.Name, err)
		}
		auth, err := authenticators(sc.Auth)
		if err != nil {
			return nil, fmt.Errorf("connector: source %s: %w", sc.Name, err)
		}
		sources = append(sources, receiver.Source{Name: sc.Name, Decoder: dec, MaxBody: int64(sc.MaxBody), Auth: auth})
	}
	return receiver.New(receiver.Options{Sources: sources, Store: c.store, Logger: c.log, Registerer: c.reg})
}

func authenticators(a AuthConfig) ([]receiver.Authenticator, error) {
	var out []receiver.Authenticator
	if a.Token != "" || len(a.Tokens) > 0 {
		out = append(out, receiver.NewTokenAuth(reveal(append([]Secret{a.Token}, a.Tokens...))...))
	}
	if a.Basic != nil {
		out = append(out, receiver.NewBasicAuth(a.Basic.User, a.Basic.Password.Reveal()))
	}
	if sw := a.StandardWebhooks; sw != nil {
		v, err := receiver.NewStandardWebhooks(reveal(append([]Secret{sw.Secret}, sw.Secrets...)), time.Duration(sw.Tolerance), nil)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if h := a.HMAC; h != nil {
		out = append(out, receiver.NewHMACAuth(h.Header, reveal(append([]Secret{h.Secret}, h.Secrets...)), h.Encoding, h.Prefix))
	}
	return out, nil
}

func reveal(secrets []Secret) []string {
	out := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s != "" {
			out = append(out, s.Reveal())
		}
	}
	return out
}

// healthz answers 200 while the process can recover by itself, and 503 once the database has
// failed in a way only a restart repairs (a liveness probe then restarts it).
func (c *Connector) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := c.store.Fatal(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"status\":\"failed\",\"reason\":%q}\n", err.Error())
		return
	}
	fmt.Fprintln(w, `{"status":"ok"}`)
}

func (c *Connector) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := c.store.Ready(); err != nil {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"status\":\"unavailable\",\"reason\":%q}\n", err.Error())
		return
	}
	fmt.Fprintln(w, `{"status":"ready"}`)
}

// Addr returns the address the webhook listener is bound to (after Start).
func (c *Connector) Addr() string { return c.ln.Addr().String() }

// Engine returns the delivery engine (after Start; nil without sinks).
func (c *Connector) Engine() *delivery.Engine { return c.eng }

// Metrics returns the registry behind /metrics.
func (c *Connector) Metrics() prometheus.Gatherer { return c.reg }

// Store returns the open store (after Start).
func (c *Connector) Store() *store.Store { return c.store }

// Stop shuts down gracefully: stop accepting connections, let in-flight requests finish
// (each waits for its commit), commit whatever is queued, then close the database.
func (c *Connector) Stop() error {
	c.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.ShutdownTimeout)
		defer cancel()
		c.log.Info("hookbridge: shutting down")
		if err := c.srv.Shutdown(ctx); err != nil {
			c.stopErr = fmt.Errorf("connector: shutdown: %w", err)
		}
		if c.admin != nil {
			if err := c.admin.Shutdown(ctx); err != nil && c.stopErr == nil {
				c.stopErr = fmt.Errorf("connector: admin shutdown: %w", err)
			}
		}
		c.stopDelivery()
		if c.api != nil {
			c.api.Close() // its background reads end before the store closes
		}
		if err := c.store.Close(); err != nil && c.stopErr == nil {
			c.stopErr = err
		}
		c.log.Info("hookbridge: stopped")
	})
	return c.stopErr
}

// Run starts the connector and serves until ctx is cancelled, then stops gracefully.
func (c *Connector) Run(ctx context.Context) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-c.serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			c.Stop()
			return fmt.Errorf("connector: serve: %w", err)
		}
	}
	return c.Stop()
}
