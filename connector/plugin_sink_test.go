package connector

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/plugins"
	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// TestSettingsErrorAtStartNamesItsLine: a plugin refusing a setting stops the start with the
// setting's line and path in the file, not just its name.
func TestSettingsErrorAtStartNamesItsLine(t *testing.T) {
	cfg, err := Parse([]byte("sources:\n  - name: rokt\nsinks:\n  - name: out\n    plugin: jsonl\n    settings:\n      pth: ./out.jsonl\n"), "s.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = filepath.Join(t.TempDir(), "hb.duckdb")
	c, err := New(cfg, Options{Logger: quietLog(), OpenSink: func(ctx context.Context, sc SinkConfig) (*OpenedSink, error) {
		return nil, &sdk.SettingsError{Field: "pth", Message: "is not a setting of this sink"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start(context.Background())
	if err == nil {
		c.Stop()
		t.Fatal("started with a refused setting")
	}
	if want := "sink out (plugin jsonl): line 7: sinks[0].settings.pth: is not a setting of this sink"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
}

// TestCheckSinkPluginsNamesLines checks a configuration's sinks against their plugins'
// settings schemas: an unknown plugin and settings that break the schema are reported with
// their lines, all at once.
func TestCheckSinkPluginsNamesLines(t *testing.T) {
	dir := t.TempDir()
	// An external plugin that only describes itself, as `hookbridge-sink-NAME spec` does.
	script := "#!/bin/sh\ncat <<'EOF'\n" + `{"name": "hook", "version": "1.0.0", "protocol": 1, "settings": {"type": "object", "additionalProperties": false, "required": ["url"],
  "properties": {"url": {"type": "string", "format": "uri"}, "body": {"enum": ["original", "normalised"]}}}}` + "\nEOF\n"
	if err := os.WriteFile(filepath.Join(dir, plugins.ExternalPrefix+"hook"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(`sources:
  - name: rokt
sinks:
  - name: partner
    plugin: hook
    settings:
      url: 127.0.0.1:9099/hook
      body: orignal
  - name: typo
    plugin: jsnl
  - name: fine
    plugin: hook
    settings: {url: "https://example.com/hooks"}
`), "c.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckSinkPlugins(context.Background(), plugins.Resolver{Dir: dir, Builtins: []string{"jsonl"}})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"3 problems",
		`line 7: sinks[0].settings.url: "127.0.0.1:9099/hook" is not an absolute URL`,
		`line 8: sinks[0].settings.body: "orignal" is not one of "original", "normalised" (did you mean original?)`,
		`line 10: sinks[1].plugin: no plugin "jsnl" (did you mean jsonl?)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// The SDK's and the engine's outcome enums are declared apart; rows keep their outcome by
// name whatever order either declares them in, and a number neither knows fails the row.
func TestRowResultsMapOutcomesByName(t *testing.T) {
	in := []sdk.RowResult{
		{Seq: 1, Outcome: sdk.Delivered}, {Seq: 2, Outcome: sdk.Retry}, {Seq: 3, Outcome: sdk.Failed, Reason: "bad email"},
		{Seq: 4, Outcome: sdk.Accepted, JobID: "j"}, {Seq: 5, Outcome: sdk.Outcome(42), Reason: "?"},
	}
	want := []delivery.Outcome{delivery.Delivered, delivery.Retry, delivery.Failed, delivery.Accepted, delivery.Failed}
	got := rowResults(in)
	for i, r := range got {
		if r.Outcome != want[i] || r.Seq != in[i].Seq {
			t.Errorf("row %d: outcome %v, want %v", in[i].Seq, r.Outcome, want[i])
		}
	}
	if got[2].Reason != "bad email" || !strings.Contains(got[4].Reason, "outcome 42") {
		t.Errorf("reasons: %q, %q", got[2].Reason, got[4].Reason)
	}
}
