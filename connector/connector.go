// Package connector is hookbridge's host runtime: it loads and validates the configuration
// and wires the store, the webhook receiver, delivery and the admin API together. This file
// is the one place where the parts meet.
package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookbridge/hookbridge/connector/receiver"
	"github.com/hookbridge/hookbridge/connector/store"
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
}

// Connector is a running hookbridge server.
type Connector struct {
	cfg   *Config
	opts  Options
	log   *slog.Logger
	reg   *prometheus.Registry
	store *store.Store
	srv   *http.Server
	ln    net.Listener

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
	return &Connector{cfg: cfg, opts: opts, log: opts.Logger, serveErr: make(chan error, 1)}, nil
}

// Start opens the database, binds the listener and starts serving.
func (c *Connector) Start(ctx context.Context) error {
	c.reg = prometheus.NewRegistry()
	c.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := store.Open(ctx, store.Options{
		Path:              c.cfg.Data,
		QueueEvents:       c.cfg.Limits.QueueEvents,
		QueueBytes:        int64(c.cfg.Limits.QueueBytes),
		MaxGroup:          c.opts.MaxGroup,
		MemoryLimit:       c.cfg.DuckDB.MemoryLimit,
		Threads:           c.cfg.DuckDB.Threads,
		CheckpointIdleWAL: int64(c.cfg.DuckDB.CheckpointWAL),
		Logger:            c.log,
		Registerer:        c.reg,
	})
	if err != nil {
		return err
	}
	c.store = st
	rc, err := c.newReceiver()
	if err != nil {
		st.Close()
		return err
	}
	mux := http.NewServeMux()
	rc.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", c.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg}))

	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		st.Close()
		return fmt.Errorf("connector: listen on %s: %w", c.cfg.Listen, err)
	}
	c.ln = ln
	c.srv = &http.Server{
		Handler:           receiver.NoRedirect(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Duration(c.cfg.Limits.ReadTimeout),
		WriteTimeout:      time.Duration(c.cfg.Limits.ReadTimeout) + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
	}
	go func() { c.serveErr <- c.srv.Serve(ln) }()
	c.log.Info("hookbridge: listening", "addr", ln.Addr().String(), "data", c.cfg.Data, "sources", c.cfg.SourceNames())
	return nil
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
