package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataFlagNamesTheFile: with a server running on one file, import, keys, reprocess and
// query given --data naming another file work on that file directly (import creates it);
// --data naming the server's own file goes through the server, which holds it; and a --data
// naming no file says which file the running server holds.
func TestDataFlagNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "held.duckdb")
	addr := freeAddr(t)
	startServer(t, addr, "--data", held)
	server := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}

	other := filepath.Join(dir, "other.duckdb")
	lines := filepath.Join(dir, "events.jsonl")
	writeImportFile(t, lines, 7)
	out, _, err := runCmd(t, server, "import", "--data", other, lines)
	if err != nil || !strings.Contains(out, "8 lines: 7 stored") {
		t.Fatalf("import --data %s: %v\n%s", other, err, out)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("import --data did not create the file it names: %v", err)
	}
	out, _, err = runCmd(t, server, "keys", "--data", other)
	if err != nil || !strings.HasPrefix(out, "7 stored bodies") {
		t.Errorf("keys --data the other file: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, server, "reprocess", "--data", other)
	if err != nil || !strings.Contains(out, "7 events re-decoded") {
		t.Errorf("reprocess --data the other file: %v\n%s", err, out)
	}
	for file, want := range map[string]string{other: "\n7\n", held: "\n0\n"} {
		out, _, err := runCmd(t, server, "query", "--data", file, "--format", "csv", "SELECT count(*) FROM events")
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("query --data %s: %v %q, want %q", filepath.Base(file), err, out, want)
		}
	}
	// The server's own file, named by a path that is not the one it was started with, goes
	// through the server.
	rel, err := filepath.Rel(mustGetwd(t), filepath.Join(dir, ".", "held.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCmd(t, server, "import", "--data", rel, lines); err != nil || !strings.Contains(out, "7 stored") {
		t.Errorf("import --data the server's file: %v\n%s", err, out)
	}
	if out, _, err := runCmd(t, server, "query", "--format", "csv", "SELECT count(*) FROM events"); err != nil || !strings.Contains(out, "\n7\n") {
		t.Errorf("the server's file after importing into it: %v %q", err, out)
	}

	missing := filepath.Join(dir, "missing.duckdb")
	_, _, err = runCmd(t, server, "query", "--data", missing, "SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "a server is running at http://"+addr+" (holding "+held+")") ||
		!strings.Contains(err.Error(), "there is no database at "+missing) || strings.Contains(err.Error(), "no server answers") {
		t.Errorf("query --data a missing file with a server running: %v", err)
	}
	_, _, err = runCmd(t, noServer, "query", "--data", missing, "SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "no server answers at http://127.0.0.1:1 and there is no database at "+missing) {
		t.Errorf("query --data a missing file without a server: %v", err)
	}
	// A file held by a process that is not the server asked is not read through that server.
	_, _, err = runCmd(t, noServer, "query", "--data", held, "SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "no server answers at http://127.0.0.1:1") {
		t.Errorf("query --data a held file, asking no server: %v", err)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// noServer points the CLI at a port where no server answers, whatever runs on the default.
var noServer = map[string]string{"HOOKBRIDGE_SERVER": "http://127.0.0.1:1"}

// Working on a file directly without --config (import --data) keeps the file's analytics time
// zone: the built-in configuration's UTC is no statement about it.
func TestDirectOpenKeepsTheFilesZone(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "hb.duckdb")
	cfg := filepath.Join(dir, "hb.yaml")
	os.WriteFile(cfg, []byte("data: "+data+"\nanalytics:\n  timezone: Australia/Melbourne\nsources:\n  - name: rokt\n"), 0o644)
	empty := filepath.Join(dir, "none.jsonl")
	os.WriteFile(empty, nil, 0o644)
	zone := func() string {
		t.Helper()
		out, errOut, err := runCmd(t, noServer, "query", "--data", data, "--format", "csv", "SELECT zone FROM analytics_settings")
		if err != nil {
			t.Fatalf("query: %v %s", err, errOut)
		}
		return strings.TrimSpace(strings.TrimPrefix(out, "zone\n"))
	}
	if _, errOut, err := runCmd(t, noServer, "import", "--config", cfg, empty); err != nil {
		t.Fatalf("import --config: %v %s", err, errOut)
	}
	if z := zone(); z != "Australia/Melbourne" {
		t.Fatalf("after import with the configuration: zone %q", z)
	}
	if _, errOut, err := runCmd(t, noServer, "import", "--data", data, empty); err != nil {
		t.Fatalf("import --data: %v %s", err, errOut)
	}
	if z := zone(); z != "Australia/Melbourne" {
		t.Errorf("import --data without a configuration reset the zone to %q", z)
	}
}
