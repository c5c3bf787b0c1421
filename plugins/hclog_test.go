package plugins

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the log's concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// keys returns the top-level keys of a JSON object, in order and with repeats.
func keys(t *testing.T, line string) ([]string, map[string]any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	var out []string
	vals := map[string]any{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, k.(string))
		vals[k.(string)] = v
	}
	return out, vals
}

// TestPluginLogKeysAreDistinct: the host's log lines about a plugin, go-plugin's own and the
// ones the plugin writes, name the sink's plugin under "plugin" and its executable under
// "plugin_path", each key once.
func TestPluginLogKeysAreDistinct(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := Start(context.Background(), self("plugin"), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Configure(context.Background(), "crm", settings(t, scriptedSettings{Ledger: t.TempDir() + "/ledger"}), nil); err != nil {
		t.Fatal(err)
	}
	c.Close() // go-plugin logs the process's exit, naming its path
	var sawPath, sawPluginLine bool
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		ks, vals := keys(t, sc.Text())
		seen := map[string]bool{}
		for _, k := range ks {
			if seen[k] {
				t.Errorf("key %s twice: %s", k, sc.Text())
			}
			seen[k] = true
		}
		if p, ok := vals["plugin"]; ok && p != "scripted" {
			t.Errorf("plugin=%v, want the plugin's name: %s", p, sc.Text())
		}
		if p, ok := vals["plugin_path"]; ok {
			sawPath = true
			if p != os.Args[0] {
				t.Errorf("plugin_path=%v, want %s: %s", p, os.Args[0], sc.Text())
			}
		}
		if vals["msg"] == "scripted sink configured" {
			sawPluginLine = true
		}
	}
	if !sawPath || !sawPluginLine {
		t.Errorf("the log lacks go-plugin's line naming the executable (%v) or the plugin's own line (%v):\n%s", sawPath, sawPluginLine, buf.String())
	}
}

// TestSlogAdapterKeys: the adapter moves go-plugin's "plugin" (an executable's path) to
// "plugin_path", and a named logger's name to "logger", beside the host's own keys.
func TestSlogAdapterKeys(t *testing.T) {
	var buf lockedBuffer
	host := slog.New(slog.NewJSONHandler(&buf, nil)).With("plugin", "jsonl")
	a := newSlogAdapter(host)
	a.Info("plugin process exited", "plugin", "/tmp/hb", "id", 42)
	a.Named("hb").With("plugin", "/tmp/hb").Warn("from the plugin", "sink", "debug")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := [][]string{
		{"time", "level", "msg", "plugin", "plugin_path", "id"},
		{"time", "level", "msg", "plugin", "plugin_path", "sink", "logger"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, l := range lines {
		ks, vals := keys(t, l)
		if strings.Join(ks, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d keys %v, want %v: %s", i+1, ks, want[i], l)
		}
		if vals["plugin"] != "jsonl" || vals["plugin_path"] != "/tmp/hb" {
			t.Errorf("line %d: %s", i+1, l)
		}
	}
}
