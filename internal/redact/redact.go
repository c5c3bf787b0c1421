// Package redact keeps email addresses out of logs: a slog.Handler that masks them in every
// message and attribute, whichever package (or plugin, or destination's error text) wrote
// them.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// emailRE matches an address: each label of its domain holds a letter, so a version
// ("lib@v1.2.3") is not one.
var emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]*[A-Za-z][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}`)

// Emails masks every email address in s to its first character and domain
// ("jane.doe@example.com" becomes "j***@example.com"): enough to tell two apart in a log,
// not enough to write to them. A match right after "/" or "\\" is a file name in a path
// ("/data/a@b.duckdb") and is left alone.
func Emails(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range emailRE.FindAllStringIndex(s, -1) {
		if m[0] > 0 && (s[m[0]-1] == '/' || s[m[0]-1] == '\\') {
			continue
		}
		at := strings.LastIndexByte(s[m[0]:m[1]], '@') + m[0]
		b.WriteString(s[last:m[0]])
		b.WriteString(s[m[0] : m[0]+1])
		b.WriteString("***")
		b.WriteString(s[at:m[1]])
		last = m[1]
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// Handler wraps a slog.Handler and masks email addresses (Emails) in each record's message
// and attributes, errors and fmt.Stringers included, before the wrapped handler sees them.
type Handler struct {
	inner slog.Handler
}

// NewHandler returns a Handler that passes masked records to inner.
func NewHandler(inner slog.Handler) *Handler { return &Handler{inner: inner} }

// Enabled reports whether the wrapped handler takes records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle masks r's message and attributes and hands the result to the wrapped handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Emails(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// WithAttrs masks attrs and returns a Handler over the wrapped handler's WithAttrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(masked)}
}

// WithGroup returns a Handler over the wrapped handler's WithGroup.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name)}
}

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Emails(v.String()))
	case slog.KindGroup:
		group := v.Group()
		masked := make([]any, len(group))
		for i, g := range group {
			masked[i] = attr(g)
		}
		return slog.Group(a.Key, masked...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Emails(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, Emails(x.String()))
		case []byte:
			return slog.String(a.Key, Emails(string(x)))
		default:
			// A struct, map or slice (a plugin's logged value): masked as its printed form
			// when that holds an address, else left as it is.
			if p := fmt.Sprint(x); strings.Contains(p, "@") {
				if m := Emails(p); m != p {
					return slog.String(a.Key, m)
				}
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
