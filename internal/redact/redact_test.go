package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestEmails(t *testing.T) {
	for in, want := range map[string]string{
		"contact jane.doe+footy@example.com.au exists": "contact j***@example.com.au exists",
		"a@b.co and Bob@Example.org":                   "a***@b.co and B***@Example.org",
		"no address here, not even me@localhost":       "no address here, not even me@localhost",
		"open /data/a@b.duckdb: no such file":          "open /data/a@b.duckdb: no such file",
		"module bar@v1.2.3-beta.rc":                    "module bar@v1.2.3-beta.rc",
		"to=<x@y.io>, cc=z@w.io":                       "to=<x***@y.io>, cc=z***@w.io",
		"":                                             "",
	} {
		if got := Emails(in); got != want {
			t.Errorf("Emails(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever a record carries an address in (message, string, error, group, a logger's
// attributes), the written line holds only the masked form.
func TestHandlerMasksEveryPlace(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil))).With("contact", "with@example.com")
	log.WithGroup("g").Warn("refused msg@example.com",
		"email", "str@example.com",
		"err", errors.New("HubSpot: err@example.com already exists"),
		slog.Group("row", "to", "grp@example.com"),
		"fields", map[string]string{"email": "map@example.com"},
		"n", 3)
	out := buf.String()
	for _, local := range []string{"with", "msg", "str", "err", "grp", "map"} {
		if strings.Contains(out, local+"@example.com") {
			t.Errorf("%s@example.com is in the log: %s", local, out)
		}
		if !strings.Contains(out, local[:1]+"***@example.com") {
			t.Errorf("%s***@example.com is missing from the log: %s", local[:1], out)
		}
	}
	if !strings.Contains(out, `"n":3`) {
		t.Errorf("a number was changed: %s", out)
	}
}
