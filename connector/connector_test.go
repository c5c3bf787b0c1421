package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/store"
)

const fixtures = "../../shared/fixtures/rokt"

// startServer runs a real connector (real DuckDB file, real listener) on cfgYAML.
func startServer(t *testing.T, cfgYAML string, vars map[string]string) *Connector {
	t.Helper()
	return startWith(t, cfgYAML, vars, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// startWith runs a real connector on cfgYAML with opts; it stops when the test ends.
func startWith(t *testing.T, cfgYAML string, vars map[string]string, opts Options) *Connector {
	t.Helper()
	dir := t.TempDir()
	cfg, err := Parse([]byte(cfgYAML), "test.yaml", env(vars))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = filepath.Join(dir, "hb.duckdb")
	c, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

func postBody(t *testing.T, url string, body []byte, header http.Header) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func count(t *testing.T, c *Connector, q string, args ...any) int {
	t.Helper()
	var n int
	if err := c.Store().DB().QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEveryFixtureStoredOnce(t *testing.T) {
	c := startServer(t, "sources:\n  - name: rokt\n", nil)
	url := "http://" + c.Addr() + "/webhooks/rokt"
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.json"))
	if len(files) != 8 {
		t.Fatalf("%d fixtures", len(files))
	}
	for round := 0; round < 2; round++ {
		for _, f := range files {
			body, _ := os.ReadFile(f)
			status, m := postBody(t, url, body, nil)
			want := "accepted"
			if round == 1 {
				want = "duplicate"
			}
			if status != 200 || m["status"] != want {
				t.Errorf("%s round %d: %d %v, want 200 %s", filepath.Base(f), round, status, m, want)
			}
		}
	}
	if n := count(t, c, "SELECT count(*) FROM events"); n != 8 {
		t.Errorf("%d events, want 8", n)
	}
	if n := count(t, c, "SELECT count(DISTINCT event_type) FROM events"); n != 8 {
		t.Errorf("%d event types stored, want 8", n)
	}
}

func TestRefusalsOverHTTP(t *testing.T) {
	c := startServer(t, "sources:\n  - name: rokt\n    max_body: 2KiB\n", nil)
	url := "http://" + c.Addr() + "/webhooks/rokt"
	tests := []struct {
		body   string
		status int
		rule   string
	}{
		{`{"eventId":"a","eventType":"Subscribe","eventDetails":{`, 400, "truncated"},
		{`<html>`, 400, "not_json"},
		{`{"eventId":"a","eventType":"Test","eventDetails":null}`, 400, "missing_event_details"},
		{`{"eventId":"a","eventType":"Test","eventDetails":"x"}`, 400, "invalid_event_details"},
		{`[]`, 400, "not_envelope"},
		{`{"eventId":"a","eventType":"Test","eventDetails":{"pad":"` + strings.Repeat("x", 3000) + `"}}`, 413, "too_large"},
	}
	for _, tt := range tests {
		status, m := postBody(t, url, []byte(tt.body), nil)
		e, _ := m["error"].(map[string]any)
		if status != tt.status || e["rule"] != tt.rule || e["detail"] == "" {
			t.Errorf("%.30s: %d %v, want %d %s", tt.body, status, m, tt.status, tt.rule)
		}
	}
	if n := count(t, c, "SELECT count(*) FROM rejected"); n != len(tests) {
		t.Errorf("%d rejected rows, want %d", n, len(tests))
	}
	if n := count(t, c, "SELECT count(*) FROM rejected WHERE reason = 'truncated' AND body = ?", []byte(tests[0].body)); n != 1 {
		t.Error("truncated body not kept byte for byte")
	}
	if n := count(t, c, "SELECT count(*) FROM events"); n != 0 {
		t.Errorf("%d events from refused bodies", n)
	}
}

func TestAuthSchemesEndToEnd(t *testing.T) {
	vars := map[string]string{"TOKEN": "rokt-token-0123456789", "PW": "basic-password"}
	c := startServer(t, `
sources:
  - name: rokt
    auth:
      token: ${TOKEN}
  - name: basic
    auth:
      basic: {user: rokt, password: "${PW}"}
`, vars)
	base := "http://" + c.Addr() + "/webhooks/"
	body, _ := os.ReadFile(filepath.Join(fixtures, "test.json"))
	if s, _ := postBody(t, base+"rokt", body, nil); s != 401 {
		t.Errorf("no token: %d", s)
	}
	if s, _ := postBody(t, base+"basic", body, nil); s != 401 {
		t.Errorf("no basic: %d", s)
	}
	if n := count(t, c, "SELECT count(*) FROM events") + count(t, c, "SELECT count(*) FROM rejected"); n != 0 {
		t.Fatalf("unauthenticated requests stored %d rows", n)
	}
	if s, _ := postBody(t, base+"rokt/"+vars["TOKEN"], body, nil); s != 200 {
		t.Errorf("token in path: %d", s)
	}
	h := http.Header{}
	req, _ := http.NewRequest("POST", "/", nil)
	req.SetBasicAuth("rokt", vars["PW"])
	h.Set("Authorization", req.Header.Get("Authorization"))
	body2 := bytes.Replace(body, []byte(`2a58"`), []byte(`2a59"`), 1)
	if s, _ := postBody(t, base+"basic", body2, h); s != 200 {
		t.Errorf("basic: %d", s)
	}
	var sources string
	c.Store().DB().QueryRow("SELECT string_agg(source, ',' ORDER BY seq) FROM events").Scan(&sources)
	if sources != "rokt,basic" {
		t.Errorf("sources %q", sources)
	}
}

func TestOutOfOrderOverHTTP(t *testing.T) {
	c := startServer(t, "sources:\n  - name: rokt\n", nil)
	url := "http://" + c.Addr() + "/webhooks/rokt"
	sub, _ := os.ReadFile(filepath.Join(fixtures, "subscribe.json"))
	unsub, _ := os.ReadFile(filepath.Join(fixtures, "unsubscribe.json"))
	// Both fixtures name subscription 5e0b7c2a-…; the Unsubscribe arrives first, then a
	// (late) Subscribe for the same subscription.
	if s, _ := postBody(t, url, unsub, nil); s != 200 {
		t.Fatal(s)
	}
	if s, _ := postBody(t, url, sub, nil); s != 200 {
		t.Fatal(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Store().WaitState(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var status, calendar string
	c.Store().DB().QueryRow("SELECT status, calendar_code FROM subscriptions WHERE subscription_id = '5e0b7c2a-91f4-4d6e-8b3a-2c7f1e9d0a48'").Scan(&status, &calendar)
	if status != "unsubscribed" || calendar != "scfl-2025-fixtures" {
		t.Errorf("subscription after Unsubscribe then late Subscribe: status %q calendar %q", status, calendar)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	c := startServer(t, "sources:\n  - name: rokt\n", nil)
	body, _ := os.ReadFile(filepath.Join(fixtures, "test.json"))
	postBody(t, "http://"+c.Addr()+"/webhooks/rokt", body, nil)
	postBody(t, "http://"+c.Addr()+"/webhooks/rokt", []byte("nope"), nil)
	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"ready"`,
		"/metrics": `hookbridge_webhooks_accepted_total{event_type="Test",source="rokt"} 1`,
	} {
		resp, err := http.Get("http://" + c.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, body lacks %q", path, resp.StatusCode, want)
		}
		if path == "/metrics" {
			for _, m := range []string{`hookbridge_webhooks_rejected_total{reason="not_json",source="rokt"} 1`, "hookbridge_store_commit_seconds_bucket", "hookbridge_store_commit_batch_size"} {
				if !strings.Contains(string(b), m) {
					t.Errorf("metrics lack %s", m)
				}
			}
		}
	}
}

// TestShutdownUnderLoadLosesNothing stops the server while clients post; every event that got
// a 2xx must be in the file afterwards.
func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	c := startServer(t, "sources:\n  - name: rokt\n", nil)
	url := "http://" + c.Addr() + "/webhooks/rokt"
	var mu sync.Mutex
	var acked []string
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("shutdown-%06d", n.Add(1))
				body := fmt.Sprintf(`{"eventId":%q,"eventType":"Test","eventDetails":{}}`, id)
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					continue // refused once the listener closed
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d requests acknowledged before shutdown; the load did not run", len(acked))
	}
	st, err := store.Open(context.Background(), store.Options{Path: c.cfg.Data, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	missing := 0
	for _, id := range acked {
		var k int
		st.DB().QueryRow("SELECT count(*) FROM events WHERE event_id = ?", id).Scan(&k)
		if k != 1 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged events are not stored exactly once", missing, len(acked))
	}
}
