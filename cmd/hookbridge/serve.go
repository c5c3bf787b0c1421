package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/internal/redact"
)

func cmdServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [--config FILE] [--listen ADDR] [--data PATH] [--log-level debug|info|warn|error] [--log-format text|json]")
	configPath := fs.String("config", "", "configuration file (default: the built-in configuration; see 'hookbridge config default')")
	listen := fs.String("listen", "", "listen address, overriding the configuration's listen")
	data := fs.String("data", "", "DuckDB file, overriding the configuration's data")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments (got %q)", fs.Args())}
	}
	// A reader of serve's standard output (a jsonl sink on "-") that goes away must not stop
	// the server: writes to the closed pipe fail instead.
	signal.Ignore(syscall.SIGPIPE)
	log, err := newLogger(e, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(e, *configPath, *listen, *data)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	r, err := resolver(e, cfg.PluginsDir)
	if err != nil {
		return err
	}
	c, err := connector.New(cfg, connector.Options{Logger: log, OpenSink: connector.PluginOpener(r, log)})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// loadConfig reads the configuration (the built-in one when path is empty) and applies the
// command-line overrides before validating.
func loadConfig(e *env, path, listen, data string) (*connector.Config, error) {
	cfg, err := connector.Load(path, e.getenv)
	if err != nil {
		return nil, err
	}
	if listen != "" {
		cfg.Listen = listen
	}
	if data != "" {
		cfg.Data = data
	}
	if listen != "" || data != "" {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func newLogger(e *env, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: use debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: readableDurations}
	// Every line goes through redact: a destination's error text or a plugin's own log may
	// carry a subscriber's address.
	switch strings.ToLower(format) {
	case "text":
		return slog.New(redact.NewHandler(slog.NewTextHandler(e.stderr, opts))), nil
	case "json":
		return slog.New(redact.NewHandler(slog.NewJSONHandler(e.stderr, opts))), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: use text or json", format)}
}

// readableDurations writes durations as "1.5s" rather than as nanoseconds, which the JSON
// handler would otherwise print.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
