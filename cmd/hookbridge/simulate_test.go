package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSimulate: --out with a seed is repeatable; the file imports through a running server
// with every line accounted for; live sending is acknowledged and the views see the events.
func TestSimulate(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	for _, p := range []string{a, b} {
		if out, _, err := runCmd(t, nil, "simulate", "--out", p, "--count", "20000", "--seed", "42"); err != nil || !strings.Contains(out, "wrote 20000 events") {
			t.Fatalf("simulate --out: %v %s", err, out)
		}
	}
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if !bytes.Equal(x, y) || bytes.Count(x, []byte("\n")) != 20000 {
		t.Fatal("two runs with --seed 42 wrote different files")
	}

	addr := freeAddr(t)
	srv := startServer(t, addr, "--data", filepath.Join(dir, "hb.duckdb"))
	server := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	// A file bigger than any buffer: the import streams progress while the body comes in.
	out, _, err := runCmd(t, server, "import", a)
	if err != nil || !strings.Contains(out, "20000 lines") || !strings.Contains(out, "0 malformed") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, nil, "simulate", "--url", "http://"+addr+"/webhooks/rokt", "--count", "300", "--rate", "0", "--seed", "9", "--duplicates", "0.05")
	if err != nil || !strings.Contains(out, "sent 300 events") || !strings.Contains(out, "300 acknowledged") || !strings.Contains(out, "0 failed") {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	// Sent events carry times near now, not the --out default's 2025.
	out, _, err = runCmd(t, server, "query", "--format", "csv", `SELECT count(*) FILTER (WHERE event_type = 'Unsubscribe'),
		count(*) FILTER (WHERE occurred_at < now() - INTERVAL 1 HOUR OR occurred_at > now() + INTERVAL 1 MINUTE)
		FROM events WHERE received_at > now() - INTERVAL 1 HOUR`)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); err != nil || len(lines) < 2 || strings.HasPrefix(lines[1], "0,") || !strings.HasSuffix(lines[1], ",0") {
		t.Errorf("live events' times: want Unsubscribes and none far from now (unsubscribes,far): %v\n%s", err, out)
	}
	// --duration stops sending; what is in flight at the deadline is answered, not failed.
	// Every answer of this endpoint takes longer than the whole run, so all of them are.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(700 * time.Millisecond)
		w.Write([]byte(`{"status":"accepted"}`))
	}))
	defer slow.Close()
	out, _, err = runCmd(t, nil, "simulate", "--url", slow.URL, "--duration", "300ms", "--rate", "50", "--seed", "10")
	if err != nil || !strings.Contains(out, " 0 failed") || strings.Contains(out, "without an answer") || strings.Contains(out, "sent 0 ") {
		t.Fatalf("simulate --duration: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, server, "query", "--format", "csv", "SELECT count(*) FROM events WHERE received_at > now() - INTERVAL 1 HOUR")
	if err != nil || strings.Contains(out, "\n0\n") {
		t.Errorf("live events not stored: %v %s", err, out)
	}
	out, _, err = runCmd(t, server, "query", "--format", "csv", "SELECT count(DISTINCT event_type) FROM events")
	if err != nil || !strings.Contains(out, "8") {
		t.Errorf("want all eight event types: %v %s", err, out)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
}

func TestExpectedSending(t *testing.T) {
	for _, tt := range []struct {
		count    int
		rate     float64
		duration time.Duration
		n        int
		took     time.Duration
	}{
		{300, 0, 0, 300, 90 * time.Millisecond},
		{300, 50, 0, 300, 6 * time.Second},
		{0, 50, time.Minute, 3000, time.Minute},
		{0, 0, time.Minute, 1000, 300 * time.Millisecond},
		{1, 0, 0, 1, time.Millisecond},
	} {
		n, took := expectedSending(tt.count, tt.rate, tt.duration)
		if n != tt.n || took != tt.took {
			t.Errorf("expectedSending(%d, %v, %v) = %d, %v; want %d, %v", tt.count, tt.rate, tt.duration, n, took, tt.n, tt.took)
		}
	}
}
