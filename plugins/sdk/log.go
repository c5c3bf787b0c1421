package sdk

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// hclogHandler writes slog records as the JSON lines go-plugin's host reads from a plugin's
// stderr (@level, @message, @timestamp, then the attributes), so plugin logs reach the host's
// log at their own level.
type hclogHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
	group string
}

// NewLogger returns the logger a plugin process writes with.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(&hclogHandler{mu: &sync.Mutex{}, w: w, level: level})
}

func (h *hclogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *hclogHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{
		"@level":     hclogLevel(r.Level),
		"@message":   r.Message,
		"@timestamp": r.Time.Format("2006-01-02T15:04:05.000000Z07:00"),
	}
	add := func(a slog.Attr) {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		v := a.Value.Resolve()
		switch v.Kind() {
		case slog.KindTime:
			m[key] = v.Time().Format(time.RFC3339Nano)
		case slog.KindDuration:
			m[key] = v.Duration().String()
		case slog.KindAny:
			if err, ok := v.Any().(error); ok {
				m[key] = err.Error()
			} else {
				m[key] = v.Any()
			}
		default:
			m[key] = v.Any()
		}
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = h.w.Write(append(b, '\n'))
	return err
}

func (h *hclogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *hclogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = strings.Trim(h.group+"."+name, ".")
	return &c
}

func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
