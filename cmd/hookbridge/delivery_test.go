package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// asPluginEnv makes the test binary serve ledgerSink, so a hookbridge child process can run
// it as an external plugin (see writePluginScript).
const asPluginEnv = "HOOKBRIDGE_TEST_AS_PLUGIN"

func init() {
	if os.Getenv(asPluginEnv) == "ledger" {
		sdk.Serve(&ledgerSink{})
		os.Exit(0)
	}
}

// ledgerSink is a destination that records every row it takes in a JSON-lines ledger, like
// a CRM keeping each contact's latest state. It can be slowed down and can refuse an email.
type ledgerSink struct {
	set struct {
		Ledger  string `json:"ledger"`
		SlowMs  int    `json:"slow_ms"`
		Refuse  string `json:"refuse"`
		Unavail bool   `json:"unavailable"`
	}
}

type ledgerLine struct {
	Batch    string `json:"batch"`
	Seq      int64  `json:"seq"`
	EventID  string `json:"event_id"`
	EmailKey string `json:"email_key"`
	Status   string `json:"status"`
}

func (s *ledgerSink) Spec() sdk.Spec {
	return sdk.Spec{Name: "ledger", Version: "1", Description: "test destination", Settings: json.RawMessage(`{"type":"object"}`), KeyColumn: "email_key", MaxBatchRows: 20}
}

func (s *ledgerSink) Configure(ctx context.Context, cfg sdk.Config) error {
	return sdk.DecodeSettings(cfg.Settings, &s.set)
}

func (s *ledgerSink) Write(ctx context.Context, b *sdk.Batch) error {
	if s.set.Unavail {
		return sdk.SinkDown(fmt.Errorf("503 Service Unavailable"), 200*time.Millisecond, 503)
	}
	time.Sleep(time.Duration(s.set.SlowMs) * time.Millisecond)
	rows, err := b.Rows()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.set.Ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range rows {
		if s.set.Refuse != "" && r.EmailKey == s.set.Refuse {
			b.Fail(r.Seq, "contact refused: "+r.EmailKey, 400)
			continue
		}
		enc.Encode(ledgerLine{b.ID, r.Seq, r.EventID, r.EmailKey, r.Status})
	}
	return f.Sync()
}

func (s *ledgerSink) Close(ctx context.Context) error { return nil }

// writePluginScript puts an executable hookbridge-sink-ledger into dir that runs this test
// binary as the ledger plugin.
// startLedgerServer starts hookbridge serve with one sink, name, on the ledger test plugin
// with its ledger file and extra settings ("refuse: x@example.com"); it returns the address.
func startLedgerServer(t *testing.T, name, settings string) string {
	t.Helper()
	dir := t.TempDir()
	pluginsDir := filepath.Join(dir, "plugins")
	os.MkdirAll(pluginsDir, 0o755)
	writePluginScript(t, pluginsDir)
	cfg := filepath.Join(dir, "hookbridge.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data: %s
plugins_dir: %s
sources: [{name: rokt}]
sinks:
  - name: %s
    plugin: ledger
    settings: {ledger: %s, %s}
`, filepath.Join(dir, "hb.duckdb"), pluginsDir, name, filepath.Join(dir, "ledger"), settings)), 0o644)
	addr := freeAddr(t)
	startServer(t, addr, "--config", cfg)
	return addr
}

func writePluginScript(t *testing.T, dir string) {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\nexec env %s=ledger %q \"$@\"\n", asPluginEnv, os.Args[0])
	if err := os.WriteFile(filepath.Join(dir, "hookbridge-sink-ledger"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func readLedger(t *testing.T, path string) []ledgerLine {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []ledgerLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l ledgerLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

func status(t *testing.T, addr string) admin.StatusReport {
	t.Helper()
	var rep admin.StatusReport
	resp, err := http.Get("http://" + addr + "/admin/v1/status")
	if err != nil {
		return rep
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&rep)
	return rep
}

func postEvent(addr, body string) int {
	resp, err := http.Post("http://"+addr+"/webhooks/rokt", "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func subscribeBody(id, sub, email string) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaSms","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"a","subscription":{"calendarSubscriptionId":%q,"calendarId":"c","calendarTitle":"T","calendarCode":"t","subscriberEmail":%q}}}`, id, sub, sub, email)
}

func unsubscribeBody(id, sub string) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Unsubscribe","eventDetails":{"actionType":"SubscriptionViaCalendarPage","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"a","subscription":{"removedDateTimeUtc":"2025-09-29 07:42:11.318204"}}}`, id, sub)
}

// TestDeliveryThroughARealPluginSurvivesSIGKILL runs hookbridge serve with an external plugin,
// SIGKILLs the server while batches are in flight, restarts it, and checks that every event
// reached the destination, nothing was lost, re-sends kept their batch ids, and the
// destination's final state equals what a run without the kill would give.
func TestDeliveryThroughARealPluginSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	pluginsDir := filepath.Join(dir, "plugins")
	os.MkdirAll(pluginsDir, 0o755)
	writePluginScript(t, pluginsDir)
	ledgerPath := filepath.Join(dir, "ledger.jsonl")
	cfg := filepath.Join(dir, "hookbridge.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data: %s
plugins_dir: %s
sources:
  - name: rokt
sinks:
  - name: crm
    plugin: ledger
    start: earliest
    mapping: {email: email, status: status}
    retry: {schedule: [100ms, 200ms], max_attempts: 5}
    settings:
      ledger: %s
      slow_ms: 30
      refuse: refused@example.com
`, filepath.Join(dir, "hb.duckdb"), pluginsDir, ledgerPath)), 0o644)
	addr := freeAddr(t)
	srv := startServer(t, addr, "--config", cfg)

	// 60 subscribers; every fifth unsubscribes again; one is refused by the destination.
	expected := map[string]string{}
	n := 0
	for i := 0; i < 60; i++ {
		email := fmt.Sprintf("u%02d@example.com", i)
		if i == 13 {
			email = "refused@example.com"
		}
		sub := fmt.Sprintf("s%02d", i)
		if postEvent(addr, subscribeBody(fmt.Sprintf("sub-%02d", i), sub, email)) != 200 {
			t.Fatal("event not accepted")
		}
		n++
		expected[email] = "subscribed"
		if i%5 == 0 {
			postEvent(addr, unsubscribeBody(fmt.Sprintf("unsub-%02d", i), sub))
			n++
			expected[email] = "unsubscribed"
		}
	}
	delete(expected, "refused@example.com")
	// Kill the server (and with it the plugin) while deliveries run.
	for len(readLedger(t, ledgerPath)) < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.exited
	before := len(readLedger(t, ledgerPath))
	if before >= len(expected) {
		t.Logf("the kill came late: %d rows already delivered", before)
	}
	srv = startServer(t, addr, "--config", cfg)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := status(t, addr)
		if len(st.Sinks) == 1 && st.Sinks[0].Cursor == int64(n) {
			if st.Sinks[0].DeadLetters != 1 {
				t.Errorf("dead letters %d, want the refused contact", st.Sinks[0].DeadLetters)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink never caught up: %+v", st.Sinks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lines := readLedger(t, ledgerPath)
	final := map[string]ledgerLine{}
	batchesOf := map[string]map[string]bool{} // event id -> batch ids it went in
	for _, l := range lines {
		if prev, ok := final[l.EmailKey]; !ok || l.Seq >= prev.Seq {
			final[l.EmailKey] = l
		}
		if batchesOf[l.EventID] == nil {
			batchesOf[l.EventID] = map[string]bool{}
		}
		batchesOf[l.EventID][l.Batch] = true
	}
	for email, want := range expected {
		if got, ok := final[email]; !ok || got.Status != want {
			t.Errorf("%s: destination holds %+v, want status %s", email, got, want)
		}
	}
	if _, ok := final["refused@example.com"]; ok {
		t.Error("the refused contact reached the destination")
	}
	for id, batches := range batchesOf {
		if len(batches) > 1 {
			t.Errorf("event %s was re-sent under different batch ids %v", id, batches)
		}
	}
	t.Logf("%d rows delivered (%d before the kill), %d events, %d contacts", len(lines), before, n, len(final))
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
}

// TestSinkUnavailableIsVisible: a destination that answers 503 backs the sink off,
// status and the delivery history say so, and an operator can pause the sink with a reason.
func TestSinkUnavailableIsVisible(t *testing.T) {
	addr := startLedgerServer(t, "crm", "unavailable: true")
	postEvent(addr, subscribeBody("e1", "s1", "a@example.com"))
	var mu sync.Mutex
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		st := status(t, addr)
		mu.Unlock()
		if len(st.Sinks) == 1 && strings.Contains(st.Sinks[0].LastError, "503") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status shows no alert: %+v", st.Sinks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _, err := runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}, "deliveries", "--event", "e1")
	if err != nil || !strings.Contains(out, "not_sent") || !strings.Contains(out, "503") {
		t.Errorf("history by event id: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}, "sinks", "pause", "crm", "--reason", "maintenance")
	if err != nil || !strings.Contains(out, "paused") {
		t.Errorf("pause: %v %s", err, out)
	}
	out, _, _ = runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}, "status")
	if !strings.Contains(out, "paused (maintenance)") {
		t.Errorf("status after pause:\n%s", out)
	}
}
