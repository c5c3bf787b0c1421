package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/store"
)

func writeImportFile(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at := time.Date(2025, 9, 1, 8, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"eventId":"imp-%d","eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaSms","calendarSubscriptionId":"isub-%d","accountId":"a","accountName":"A","accountCode":"a","subscription":{"calendarSubscriptionId":"isub-%d","calendarId":"c","calendarTitle":"T","calendarCode":"t","subscriberEmail":"i%d@example.com","contactPostcode":"2000"}}}`, i, i, i, i)
		line, _ := json.Marshal(map[string]any{"received_at": at.Add(time.Duration(i) * time.Minute), "source": "rokt", "body": body})
		fmt.Fprintln(f, string(line))
	}
	fmt.Fprintln(f, `{"received_at":"2025-09-01T00:00:00Z","source":"rokt","body":"{\"eventId\":"}`) // refused: truncated
}

// TestAnalyticsCommands drives query, export, snapshot, import, reprocess and keys through a
// running server, then again on the file directly once the server is stopped.
func TestAnalyticsCommands(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "hb.duckdb")
	cfg := filepath.Join(dir, "hookbridge.yaml")
	os.WriteFile(cfg, []byte("data: "+data+"\nsources:\n  - name: rokt\n    contact_fields:\n      postcode: [subscription.contactPostcode]\n"), 0o644)
	addr := freeAddr(t)
	srv := startServer(t, addr, "--config", cfg)
	server := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}

	imp := filepath.Join(dir, "events.jsonl")
	writeImportFile(t, imp, 120)
	out, _, err := runCmd(t, server, "import", imp)
	if err != nil || !strings.Contains(out, "121 lines: 120 stored, 0 duplicates, 1 refused") {
		t.Fatalf("import through the server: %v\n%s", err, out)
	}
	// --data naming another file than the server's reads that file; naming the server's
	// own file goes through the server, which holds it.
	other := filepath.Join(dir, "other.duckdb")
	small := filepath.Join(dir, "small.jsonl")
	writeImportFile(t, small, 7)
	if out, _, err := runCmd(t, noServer, "import", "--data", other, small); err != nil {
		t.Fatalf("import into another file: %v\n%s", err, out)
	}
	for file, want := range map[string]string{other: "\n7\n", data: "\n120\n"} {
		if out, _, err := runCmd(t, server, "query", "--data", file, "--format", "csv", "SELECT count(*) FROM events"); err != nil || !strings.Contains(out, want) {
			t.Errorf("query --data %s with a server running: %v %q, want %q", filepath.Base(file), err, out, want)
		}
	}
	out, _, err = runCmd(t, server, "query", "--format", "json", "SELECT count(*) AS n, min(received_at) AS first FROM events")
	if err != nil || !strings.Contains(out, `"n": 120`) || !strings.Contains(out, "2025-09-01T08:00:00") {
		t.Fatalf("query: %v\n%s", err, out)
	}
	// JSON keeps the SELECT's column order; csv and json say on stderr that rows were cut.
	out, stderr, err := runCmd(t, server, "query", "--format", "json", "--limit", "3", "SELECT range AS zeta, 'a' AS alpha, 'b' AS alpha FROM range(10)")
	if err != nil || !strings.Contains(out, "\"zeta\": 0,\n    \"alpha\": \"a\",\n    \"alpha_2\": \"b\"") || !strings.Contains(stderr, "only the first 3 rows") {
		t.Fatalf("query json with a limit: %v\n%s\n%s", err, out, stderr)
	}
	for _, q := range []string{"COPY events TO '/tmp/hookbridge-leak.csv'", "ATTACH '/tmp/other.duckdb' AS o", "SET threads = 1",
		"EXPLAIN ANALYZE COPY (SELECT 1) TO '" + filepath.Join(dir, "hookbridge-exports", "leak.csv") + "'", "SELECT * FROM checkpoint()"} {
		if _, stderr, err := runCmd(t, server, "query", q); err == nil || !strings.Contains(stderr+err.Error(), "only read statements") && !strings.Contains(stderr+err.Error(), "disabled") {
			t.Errorf("%s through the query API: %v %s", q, err, stderr)
		}
	}
	// The export folder is the one place SQL may write to: no statement of the query API did.
	if _, err := os.Stat(filepath.Join(dir, "hookbridge-exports", "leak.csv")); err == nil {
		t.Error("a query wrote into the export folder")
	}
	if _, _, err := runCmd(t, server, "query", "SELECT * FROM read_csv('/etc/passwd')"); err == nil {
		t.Error("read_csv through the query API")
	}
	if _, _, err := runCmd(t, server, "query", "DELETE FROM events"); err == nil {
		t.Error("DELETE through the query API")
	}
	out, _, err = runCmd(t, server, "query", "SELECT count(*) FROM mailing_list WHERE postcode = '2000'")
	if err != nil || !strings.Contains(out, "120") {
		t.Errorf("mailing list with the configured postcode path: %v\n%s", err, out)
	}
	csvPath := filepath.Join(dir, "out", "events.csv")
	if out, _, err := runCmd(t, server, "export", "--table", "events", "--format", "csv", "--out", csvPath); err != nil {
		t.Fatalf("export: %v %s", err, out)
	}
	f, _ := os.Open(csvPath)
	recs, _ := csv.NewReader(f).ReadAll()
	f.Close()
	if len(recs) != 121 || recs[0][0] != "seq" {
		t.Errorf("exported CSV has %d records", len(recs))
	}
	snap := filepath.Join(dir, "snap.duckdb")
	if out, _, err := runCmd(t, server, "snapshot", snap); err != nil {
		t.Fatalf("snapshot: %v %s", err, out)
	}
	if n := countIn(t, snap, "SELECT count(*) FROM events"); n != 120 {
		t.Errorf("snapshot has %d events", n)
	}
	out, _, err = runCmd(t, server, "keys")
	if err != nil || !strings.Contains(out, "* eventDetails.subscription.subscriberEmail") || !strings.Contains(out, "eventDetails.subscription.calendarCode") {
		t.Errorf("keys: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, server, "reprocess")
	if err != nil || !strings.Contains(out, "120 events re-decoded, 0 changed") {
		t.Errorf("reprocess: %v\n%s", err, out)
	}

	// No server: the same commands work on the file.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
	local := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	out, _, err = runCmd(t, local, "query", "--config", cfg, "SELECT count(*) AS n FROM events")
	if err != nil || !strings.Contains(out, "120") {
		t.Errorf("query on the file: %v\n%s", err, out)
	}
	pq := filepath.Join(dir, "out", "list.parquet")
	if _, _, err := runCmd(t, local, "export", "--config", cfg, "--query", "SELECT * FROM mailing_list", "--format", "parquet", "--out", pq); err != nil {
		t.Errorf("export on the file: %v", err)
	}
	writeImportFile(t, imp, 130)
	out, _, err = runCmd(t, local, "import", "--config", cfg, imp)
	if err != nil || !strings.Contains(out, "10 stored, 120 duplicates, 1 refused") {
		t.Errorf("import on the file: %v\n%s", err, out)
	}
	// Without a server, import creates a file that does not exist yet.
	fresh := filepath.Join(dir, "fresh", "new.duckdb")
	os.MkdirAll(filepath.Dir(fresh), 0o755)
	out, _, err = runCmd(t, local, "import", "--data", fresh, imp)
	if err != nil || !strings.Contains(out, "130 stored, 0 duplicates, 1 refused") {
		t.Errorf("import into a new file: %v\n%s", err, out)
	} else if n := countIn(t, fresh, "SELECT count(*) FROM events"); n != 130 {
		t.Errorf("the new file has %d events, want 130", n)
	}
	snap2 := filepath.Join(dir, "snap2.duckdb")
	if _, _, err := runCmd(t, local, "snapshot", "--config", cfg, snap2); err != nil {
		t.Errorf("snapshot on the file: %v", err)
	} else if n := countIn(t, snap2, "SELECT count(*) FROM events"); n != 130 {
		t.Errorf("snapshot on the file has %d events", n)
	}
}

func countIn(t *testing.T, path, q string) int {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Path: path, ReadOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer st.Close()
	var n int
	if err := st.DB().QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Work of unknown size shows its elapsed time once it lasts a second, and ends its line; off
// a terminal (a buffer here) that is one line, without \r (TestElapsedLineOnATerminal shows
// the redrawn one).
func TestElapsedLine(t *testing.T) {
	var quick, slow syncBuffer
	elapsedLine(&quick, "writing a.parquet")()
	stop := elapsedLine(&slow, "writing b.parquet")
	time.Sleep(1100 * time.Millisecond)
	stop()
	stop()
	if quick.String() != "" {
		t.Errorf("a quick export printed %q", quick.String())
	}
	if out := slow.String(); out != "writing b.parquet … 1s\n" {
		t.Errorf("a slow export printed %q", out)
	}
}
