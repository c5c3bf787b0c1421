package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // reads the parquet lake back
	"github.com/jackc/pgx/v5"
)

// TestBuiltinSinksEndToEnd runs hookbridge serve with three built-in sinks (each a
// re-executed hookbridge plugin process): the PostgreSQL warehouse, a JSON-lines file and a
// Parquet lake on a schedule. The server is SIGKILLed while it delivers and restarted; in the
// end the warehouse holds every event once and the current subscriptions, the lake every
// event once, and the file every event at least once.
func TestBuiltinSinksEndToEnd(t *testing.T) {
	dsn := os.Getenv("HOOKBRIDGE_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("HOOKBRIDGE_CI") != "" {
			t.Fatal("HOOKBRIDGE_TEST_POSTGRES is not set in CI (.ci/run sets it)")
		}
		t.Skip("no PostgreSQL: set HOOKBRIDGE_TEST_POSTGRES or run .ci/run")
	}
	ctx := context.Background()
	pg, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := fmt.Sprintf("hbtest_e2e_%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() { pg.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); pg.Close(ctx) })

	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`sinks:
  - name: warehouse
    plugin: postgres
    start: earliest
    batch: {max_rows: 25}
    settings: {dsn: "${TEST_WAREHOUSE_DSN}", schema: %s}
  - name: debug
    plugin: jsonl
    start: earliest
    mapping: {email: email, status: status}
    settings: {path: %s}
  - name: lake
    plugin: parquet
    start: earliest
    trigger: "@every 1s"
    settings: {path: %s}
`, schema, filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "lake")))
	t.Setenv("TEST_WAREHOUSE_DSN", dsn)
	addr := freeAddr(t)
	srv := startServer(t, addr, "--config", cfg)

	n, ended := 0, 0
	for i := 0; i < 300; i++ {
		if postEvent(addr, subscribeBody(fmt.Sprintf("sub-%03d", i), fmt.Sprintf("s%03d", i), fmt.Sprintf("u%03d@example.com", i))) != 200 {
			t.Fatal("event not accepted")
		}
		n++
		if i%4 == 0 {
			postEvent(addr, unsubscribeBody(fmt.Sprintf("unsub-%03d", i), fmt.Sprintf("s%03d", i)))
			n++
			ended++
		}
		if i == 150 {
			srv.cmd.Process.Signal(syscall.SIGKILL)
			<-srv.exited
			srv = startServer(t, addr, "--config", cfg)
		}
	}
	count := func(q string) int {
		var c int
		if err := pg.QueryRow(ctx, q).Scan(&c); err != nil {
			return -1
		}
		return c
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := status(t, addr)
		done := len(st.Sinks) == 3
		for _, s := range st.Sinks {
			done = done && s.Cursor == int64(n)
		}
		if done && count("SELECT count(*) FROM "+schema+".events") == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sinks never caught up: %+v; warehouse has %d of %d events", st.Sinks, count("SELECT count(*) FROM "+schema+".events"), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := count("SELECT count(DISTINCT event_id) FROM " + schema + ".events"); got != n {
		t.Errorf("%d distinct events in the warehouse, want %d", got, n)
	}
	if got := count("SELECT count(*) FROM " + schema + ".subscriptions WHERE status = 'unsubscribed' AND email IS NOT NULL"); got != ended {
		t.Errorf("%d ended subscriptions with their email, want %d", got, ended)
	}
	if got := count("SELECT count(*) FROM " + schema + ".subscriptions WHERE status = 'subscribed'"); got != 300-ended {
		t.Errorf("%d active subscriptions, want %d", got, 300-ended)
	}
	lines, _ := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	seen := map[string]bool{}
	for _, l := range splitLines(lines) {
		seen[l] = true
	}
	if len(seen) < n {
		t.Errorf("the jsonl file holds %d distinct lines, want at least %d", len(seen), n)
	}
	// The lake holds every event once, whatever the kill did to the files being written.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, distinct int
	if err := db.QueryRow("SELECT count(*), count(DISTINCT event_id) FROM read_parquet('"+filepath.Join(dir, "lake")+"/*/*.parquet', hive_partitioning = true)").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n {
		t.Errorf("the lake holds %d rows (%d distinct events), want %d", rows, distinct, n)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
}

func splitLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}

// A jsonl sink given "-" as its path prints each row on the standard output of hookbridge
// serve, although it runs in a plugin process of its own.
func TestJSONLSinkWritesToServeStdout(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `sinks:
  - name: tail
    plugin: jsonl
    mapping: {event_id: event_id, email: email}
    settings: {path: "-"}
`)
	addr := freeAddr(t)
	srv := startServer(t, addr, "--config", cfg)
	for i := 0; i < 3; i++ {
		if code := postEvent(addr, subscribeBody(fmt.Sprintf("out-%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i))); code != 200 {
			t.Fatalf("event %d answered %d", i, code)
		}
	}
	waitFor(t, "three rows on stdout", func() bool { return strings.Count(srv.stdout.String(), "\n") >= 3 })
	for i, line := range strings.Split(strings.TrimSpace(srv.stdout.String()), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("stdout line %d is not a JSON row: %q", i, line)
		}
		if row["event_id"] != fmt.Sprintf("out-%d", i) || row["email"] != fmt.Sprintf("u%d@example.com", i) {
			t.Errorf("stdout line %d: %v", i, row)
		}
	}
}

// A registered endpoint that answers 410 Gone pauses the
// webhook sink; the pause survives a restart and shows in status; events wait behind the
// cursor and go out, signed, once an operator resumes the sink.
func TestWebhookGonePausesAcrossRestarts(t *testing.T) {
	var mu sync.Mutex
	gone := true
	got := map[string]bool{}
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("webhook-signature") == "" {
			w.WriteHeader(401)
			return
		}
		if gone {
			w.WriteHeader(http.StatusGone)
			return
		}
		got[r.Header.Get("webhook-id")] = true
		w.WriteHeader(204)
	}))
	defer endpoint.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`sinks:
  - name: partner
    plugin: webhook
    trigger: realtime
    settings: {url: %q, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}
`, endpoint.URL+"/hooks"))
	addr := freeAddr(t)
	srv := startServer(t, addr, "--config", cfg)
	server := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	for i := 0; i < 5; i++ {
		postEvent(addr, subscribeBody(fmt.Sprintf("ev-%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i)))
	}
	waitFor(t, "the sink to pause", func() bool {
		st := status(t, addr)
		return len(st.Sinks) == 1 && st.Sinks[0].State == "paused"
	})
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
	mu.Lock()
	gone = false
	mu.Unlock()
	srv = startServer(t, addr, "--config", cfg)
	postEvent(addr, subscribeBody("ev-5", "s5", "u5@example.com"))
	time.Sleep(300 * time.Millisecond)
	out, _, _ := runCmd(t, server, "status")
	if !strings.Contains(out, "paused") || !strings.Contains(out, "410") {
		t.Errorf("after a restart, status should still show the pause and why:\n%s", out)
	}
	mu.Lock()
	if len(got) != 0 {
		t.Errorf("a paused sink delivered %d events", len(got))
	}
	mu.Unlock()
	if out, _, err := runCmd(t, server, "sinks", "resume", "partner"); err != nil {
		t.Fatalf("resume: %v %s", err, out)
	}
	waitFor(t, "all six events delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 6
	})
	for i := 0; i < 6; i++ {
		if !got[fmt.Sprintf("ev-%d", i)] {
			t.Errorf("ev-%d not delivered under its eventId", i)
		}
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestSinksCheckNamesTheConfiguration: a sink name the configuration lacks is refused, saying
// which configuration was read (the built-in one has no sinks) and naming the sink plainly.
func TestSinksCheckNamesTheConfiguration(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hookbridge.yaml")
	os.WriteFile(cfg, []byte("sources: [{name: rokt}]\nsinks:\n  - name: warehouse\n    plugin: jsonl\n    settings: {path: "+filepath.Join(dir, "out.jsonl")+"}\n"), 0o644)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"sinks", "check", "warehouse"}, []string{"no sink named warehouse in the built-in configuration, which has no sinks (pass --config FILE)"}},
		{[]string{"sinks", "check"}, []string{"the built-in configuration has no sinks (pass --config FILE)"}},
		{[]string{"sinks", "check", "warehose", "--config", cfg}, []string{"no sink named warehose in " + cfg + " (its sinks: warehouse; did you mean warehouse?)"}},
		{[]string{"sinks", "check", "a", "b", "--config", cfg}, []string{"no sinks named a, b in " + cfg}},
	} {
		out, _, err := runCmd(t, nil, c.args...)
		if err == nil {
			t.Errorf("%v: no error\n%s", c.args, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q lacks %q", c.args, err, w)
			}
		}
		if strings.Contains(err.Error(), "[") {
			t.Errorf("%v: %q shows a Go slice", c.args, err)
		}
		if out != "" {
			t.Errorf("%v checked sinks before refusing an unknown name:\n%s", c.args, out)
		}
	}
}
