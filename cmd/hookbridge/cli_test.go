package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestUsageAndUnknownCommand(t *testing.T) {
	out, _, err := runCmd(t, nil, "help")
	if err != nil || !strings.Contains(out, "serve") || !strings.Contains(out, "replay") {
		t.Errorf("help: %v\n%s", err, out)
	}
	if _, _, err := runCmd(t, nil, "frobnicate"); err == nil || exitCode(err) != 2 {
		t.Errorf("unknown command: %v (exit %d)", err, exitCode(err))
	}
}

func TestConfigCommands(t *testing.T) {
	out, _, err := runCmd(t, nil, "config", "default")
	if err != nil || !strings.Contains(out, "127.0.0.1:8080") || !strings.Contains(out, "name: rokt") {
		t.Errorf("config default: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("sources:\n  - name: rokt\n    auth:\n      token: ${NOPE}\n"), 0o644)
	if _, _, err := runCmd(t, nil, "config", "check", bad); err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("config check of a bad file: %v", err)
	}
	if out, _, err := runCmd(t, map[string]string{"NOPE": "0123456789abcdefgh"}, "config", "check", bad); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("config check with the variable set: %v %s", err, out)
	}
	// Sink settings are checked against the built-in plugins' own schemas.
	sinks := filepath.Join(t.TempDir(), "sinks.yaml")
	os.WriteFile(sinks, []byte(`sources:
  - name: rokt
sinks:
  - name: debug
    plugin: jsonl
    settings:
      pth: ./out.jsonl
  - name: partner
    plugin: webhook
    settings:
      url: 127.0.0.1:9099/hook
      body: orignal
      secret: AAAA
  - name: typo
    plugin: jsnl
`), 0o644)
	_, _, err = runCmd(t, nil, "config", "check", sinks)
	for _, want := range []string{
		"line 7: sinks[0].settings.pth: is not a setting of this sink (did you mean path?)",
		"line 6: sinks[0].settings.path: is required",
		`line 11: sinks[1].settings.url: "127.0.0.1:9099/hook" is not an absolute URL`,
		`line 12: sinks[1].settings.body: "orignal" is not one of "original", "normalised" (did you mean original?)`,
		"line 13: sinks[1].settings.secret: does not match ^whsec_",
		`line 15: sinks[2].plugin: no plugin "jsnl" (did you mean jsonl?)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config check of bad sink settings: %v lacks %q", err, want)
		}
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("sources:\n  - name: rokt\nsinks:\n  - name: debug\n    plugin: jsonl\n    events: [Subscribe, Unsubscibe]\n    settings: {path: "+filepath.Join(dir, "out.jsonl")+"}\n"), 0o644)
	if out, _, err := runCmd(t, nil, "config", "check", good); err != nil || !strings.Contains(out, "ok (1 sources, 1 sinks") ||
		!strings.Contains(out, `warning: line 6: sinks[0].events[1]: "Unsubscibe" is not a documented event type (did you mean Unsubscribe?)`) {
		t.Errorf("config check of good sink settings: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.jsonl")); err == nil {
		t.Error("config check created the sink's file: it must not start the sink")
	}
}

func TestSendAndStatusAgainstARunningServer(t *testing.T) {
	addr := freeAddr(t)
	data := filepath.Join(t.TempDir(), "hb.duckdb")
	srv := startServer(t, addr, "--data", data)
	fixtures, _ := filepath.Glob("../../../shared/fixtures/rokt/*.json")
	args := append([]string{"send", "--url", "http://" + addr + "/webhooks/rokt"}, fixtures...)
	out, _, err := runCmd(t, nil, args...)
	if err != nil || strings.Count(out, ": 200 ") != len(fixtures) || !strings.Contains(out, `"status":"accepted"`) {
		t.Fatalf("send: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, nil, append(args[:3:3], fixtures[0])...)
	if err != nil || !strings.Contains(out, `"status":"duplicate"`) {
		t.Errorf("send again: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"eventId": 1`), 0o644)
	out, _, err = runCmd(t, nil, "send", "--url", "http://"+addr+"/webhooks/rokt", bad)
	if err == nil || !strings.Contains(out, ": 400 ") || !strings.Contains(out, "truncated") {
		t.Errorf("send a truncated body: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}, "status")
	if err != nil || !strings.Contains(out, "store: ready") || !strings.Contains(out, "seq 8") {
		t.Errorf("status: %v\n%s", err, out)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
	if _, _, err := runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}, "status"); err == nil || !strings.Contains(err.Error(), "no hookbridge server answers") {
		t.Errorf("status without a server: %v", err)
	}
}

// TestSinksCheck: `hookbridge sinks check` starts each sink's plugin, validates its settings
// and checks the destination, naming the sinks that fail.
func TestSinksCheck(t *testing.T) {
	t.Setenv(asMainEnv, "1") // the plugin processes are this test binary running as hookbridge
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hookbridge.yaml")
	os.WriteFile(cfg, []byte(`
sources: [{name: rokt}]
sinks:
  - name: debug
    plugin: jsonl
    settings: {path: `+filepath.Join(dir, "out.jsonl")+`}
  - name: warehouse
    plugin: postgres
    settings: {dsn: "postgres://loader:hunter2@127.0.0.1:1/dw", connect_timeout: 2s}
  - name: typo
    plugin: jsonl
    settings: {path: x.jsonl, colour: red}
`), 0o644)
	out, _, err := runCmd(t, nil, "sinks", "check", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "2 of 3 sinks failed") {
		t.Errorf("want two failures, got %v\n%s", err, out)
	}
	for _, want := range []string{"debug (jsonl): settings ok", "warehouse (postgres): FAILED", "connection refused", "typo (jsonl): FAILED: settings.colour"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("the output shows a password:\n%s", out)
	}
	if out, _, err := runCmd(t, nil, "sinks", "check", "debug", "--config", cfg); err != nil || strings.Contains(out, "warehouse") {
		t.Errorf("checking one sink: %v\n%s", err, out)
	}
}

// TestPluginsListTakesTheConfigsFolder: plugins list and describe find external plugins in
// the configuration's plugins_dir with --config.
func TestPluginsListTakesTheConfigsFolder(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\ncat <<'EOF'\n" + `{"name": "hook", "version": "1.2.3", "protocol": 1, "description": "a test plugin", "settings": {"type": "object"}}` + "\nEOF\n"
	if err := os.WriteFile(filepath.Join(dir, "hookbridge-sink-hook"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	// Its secrets need not be set to list plugins.
	os.WriteFile(cfg, []byte("plugins_dir: "+dir+"\nsources:\n  - name: rokt\n    auth:\n      token: ${UNSET_TOKEN_FOR_THIS_TEST}\n"), 0o644)
	out, _, err := runCmd(t, nil, "plugins", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "hook") || !strings.Contains(out, "1.2.3") {
		t.Errorf("plugins list --config: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, nil, "plugins", "describe", "hook", "--config", cfg)
	if err != nil || !strings.Contains(out, "a test plugin") {
		t.Errorf("plugins describe --config: %v\n%s", err, out)
	}
	if _, _, err := runCmd(t, nil, "plugins", "list", "--config", cfg, "--plugins-dir", dir); exitCode(err) != 2 {
		t.Errorf("both --config and --plugins-dir: %v (exit %d), want a usage error", err, exitCode(err))
	}
}
