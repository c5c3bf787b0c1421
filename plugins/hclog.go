package plugins

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogAdapter is an hclog.Logger that writes to a *slog.Logger. go-plugin logs through hclog
// and re-levels each JSON line a plugin writes to stderr; this puts both in the host's log.
//
// The host's logger names the sink's plugin under "plugin" (jsonl); go-plugin names the
// plugin's executable under that key too (/usr/libexec/hookbridge-sink-x). So that each key
// appears once, go-plugin's goes under "plugin_path", and a named logger's name (go-plugin's
// "stdio", or the executable's base name on the lines a plugin writes) under "logger".
type slogAdapter struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*slogAdapter)(nil)

func newSlogAdapter(l *slog.Logger) hclog.Logger { return &slogAdapter{l: l} }

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level == hclog.NoLevel {
		level = hclog.Info
	}
	all := renameKeys(append(append([]any(nil), a.args...), args...))
	if a.name != "" {
		all = append(all, "logger", a.name)
	}
	a.l.Log(context.Background(), slogLevel(level), msg, all...)
}

// renameKeys moves go-plugin's "plugin" (the executable's path) to "plugin_path" in
// key-value pairs, in place.
func renameKeys(kvs []any) []any {
	for i := 0; i+1 < len(kvs); i += 2 {
		if k, ok := kvs[i].(string); ok && k == "plugin" {
			kvs[i] = "plugin_path"
		}
	}
	return kvs
}

func (a *slogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *slogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *slogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *slogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *slogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *slogAdapter) enabled(l slog.Level) bool { return a.l.Enabled(context.Background(), l) }

func (a *slogAdapter) IsTrace() bool { return a.enabled(slog.LevelDebug) }
func (a *slogAdapter) IsDebug() bool { return a.enabled(slog.LevelDebug) }
func (a *slogAdapter) IsInfo() bool  { return a.enabled(slog.LevelInfo) }
func (a *slogAdapter) IsWarn() bool  { return a.enabled(slog.LevelWarn) }
func (a *slogAdapter) IsError() bool { return a.enabled(slog.LevelError) }

func (a *slogAdapter) ImpliedArgs() []any { return a.args }

func (a *slogAdapter) With(args ...any) hclog.Logger {
	return &slogAdapter{l: a.l, name: a.name, args: append(append([]any(nil), a.args...), args...)}
}

func (a *slogAdapter) Name() string { return a.name }

func (a *slogAdapter) Named(name string) hclog.Logger {
	n := name
	if a.name != "" {
		n = a.name + "." + name
	}
	return &slogAdapter{l: a.l, name: n, args: a.args}
}

func (a *slogAdapter) ResetNamed(name string) hclog.Logger {
	return &slogAdapter{l: a.l, name: name, args: a.args}
}

// SetLevel is ignored: the slog handler decides.
func (a *slogAdapter) SetLevel(hclog.Level) {}

func (a *slogAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

func (a *slogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}

func (a *slogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(nil).Writer()
}
