package plugins

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// records captures the host's log.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) find(msg string) (slog.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message == msg {
			return rec, true
		}
	}
	return slog.Record{}, false
}

func start(t *testing.T, role string, log *slog.Logger) *Client {
	t.Helper()
	if log == nil {
		log = slog.New(&records{})
	}
	c, err := Start(context.Background(), self(role), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func settings(t *testing.T, s scriptedSettings) json.RawMessage {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rowsRecord builds a record of seq, event_id, event_type, email and email_key.
func rowsRecord(t *testing.T, emails ...string) arrow.RecordBatch {
	t.Helper()
	rows := make([]schemas.Row, len(emails))
	for i, e := range emails {
		rows[i] = schemas.Row{Seq: int64(i + 1), EventID: fmt.Sprintf("ev-%d", i+1), EventType: "Subscribe", Email: e, EmailKey: strings.ToLower(e)}
	}
	schema, _ := schemas.SchemaFor([]string{"seq", "event_id", "event_type", "email", "email_key"})
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Release)
	return rec
}

func TestRoundTripAndRowOutcomes(t *testing.T) {
	log := &records{}
	c := start(t, "plugin", slog.New(log))
	spec := c.Spec()
	if spec.Name != "scripted" || spec.KeyColumn != "email_key" || !spec.Async || !c.Checks() {
		t.Errorf("spec %+v checks %v", spec, c.Checks())
	}
	dir := t.TempDir()
	set := scriptedSettings{Ledger: filepath.Join(dir, "ledger"), FailEmail: "bad@example.com", RetryEmail: "later@example.com", AsyncEmail: "job@example.com"}
	if err := c.Configure(context.Background(), "crm", settings(t, set), map[string]string{"email": "email"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Errorf("check: %v", err)
	}
	res, err := c.Write(context.Background(), "batch-1", 1, rowsRecord(t, "a@example.com", "bad@example.com", "later@example.com", "job@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	byseq := map[int64]sdk.RowResult{}
	for _, r := range res {
		byseq[r.Seq] = r
	}
	if _, listed := byseq[1]; listed {
		t.Errorf("a delivered row was listed: %+v", byseq[1])
	}
	if r := byseq[2]; r.Outcome != sdk.Failed || r.Reason != "invalid email address" || r.StatusCode != 400 {
		t.Errorf("failed row %+v", r)
	}
	if r := byseq[3]; r.Outcome != sdk.Retry || r.RetryAfter != 3*time.Second || r.StatusCode != 429 {
		t.Errorf("retry row %+v", r)
	}
	if r := byseq[4]; r.Outcome != sdk.Accepted || r.JobID != "job-batch-1" {
		t.Errorf("accepted row %+v", r)
	}
	polled, err := c.Poll(context.Background(), []sdk.Job{{Seq: 4, JobID: "job-batch-1"}})
	if err != nil || len(polled) != 1 || polled[0].Outcome != sdk.Delivered {
		t.Errorf("poll: %v %+v", err, polled)
	}
	if got := ledger(t, set.Ledger)["batch-1"]; got != 1 {
		t.Errorf("ledger has %d rows of batch-1, want 1", got)
	}
	// The plugin's warning reached the host's log as a warning.
	if rec, ok := log.find("scripted sink configured"); !ok || rec.Level != slog.LevelWarn {
		t.Errorf("plugin log line: %v level %v", ok, rec.Level)
	}
}

func TestSinkWideErrorsAndSettings(t *testing.T) {
	c := start(t, "plugin", nil)
	err := c.Configure(context.Background(), "crm", json.RawMessage(`{"ledgr": "x"}`), nil)
	var se *sdk.SettingsError
	if !errors.As(err, &se) || se.Field != "ledgr" {
		t.Fatalf("unknown setting: %v", err)
	}
	if err := c.Configure(context.Background(), "crm", json.RawMessage(`{"ledger": 7}`), nil); !errors.As(err, &se) || se.Field != "ledger" {
		t.Fatalf("wrong type: %v", err)
	}
	if err := c.Configure(context.Background(), "crm", json.RawMessage(`{}`), nil); !errors.As(err, &se) || se.Field != "ledger" || !strings.Contains(se.Message, "required") {
		t.Fatalf("missing setting: %v", err)
	}
	if err := c.Configure(context.Background(), "crm", json.RawMessage(`{"ledger":"x"}`), map[string]string{"emial": "email"}); !errors.As(err, &se) || se.Field != "mapping" {
		t.Fatalf("bad mapping: %v", err)
	}
	set := scriptedSettings{Ledger: filepath.Join(t.TempDir(), "ledger"), Down: true}
	if err := c.Configure(context.Background(), "crm", settings(t, set), nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Write(context.Background(), "b", 1, rowsRecord(t, "a@example.com"))
	sd, ok := sdk.AsSinkDown(err)
	if !ok || sd.RetryAfter != 2*time.Second || sd.StatusCode != 503 || sd.Pause {
		t.Errorf("sink down: %v %+v", err, sd)
	}
	if err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "destination down") {
		t.Errorf("check: %v", err)
	}
}

func TestWrongProtocolVersionRefused(t *testing.T) {
	_, err := Start(context.Background(), self("plugin-v2"), slog.New(&records{}))
	if err == nil || !strings.Contains(err.Error(), "[1]") || !strings.Contains(err.Error(), "rebuild the plugin") {
		t.Fatalf("a protocol-2 plugin: %v", err)
	}
}

// A plugin that never completes its handshake is given up on when the caller's context ends
// (Ctrl-C during serve's start-up), not after the 30-second start timeout.
func TestStartEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, self("silent"), slog.New(&records{}))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("start of a silent plugin under a 300ms context: %v, want the context's error", err)
	}
	// go-plugin's own 30-second wait must not be what ended it.
	if strings.Contains(err.Error(), "timeout while waiting for plugin to start") {
		t.Fatalf("the start waited out go-plugin's timeout: %v", err)
	}
}

// TestSIGKILLMidBatch kills the plugin while a Write is in flight: the call fails with
// ErrPluginExited, nothing is recorded as delivered, and the next call restarts the plugin
// (configured again) and delivers the batch exactly once.
// TestHungPluginIsRestarted: a plugin process that is alive but does not answer (stopped
// here with SIGSTOP) fails the health check before the next call, is killed, and the call goes
// to a new process.
func TestHungPluginIsRestarted(t *testing.T) {
	c := start(t, "plugin", nil)
	set := scriptedSettings{Ledger: filepath.Join(t.TempDir(), "ledger")}
	if err := c.Configure(context.Background(), "crm", settings(t, set), nil); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.healthEvery, c.healthTimeout = 0, 300*time.Millisecond // check before every call
	c.mu.Unlock()
	if _, err := c.Write(context.Background(), "batch-1", 1, rowsRecord(t, "a@example.com")); err != nil {
		t.Fatalf("write to a healthy plugin: %v", err)
	}
	pid := c.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	// SIGSTOP takes effect when the kernel next schedules the process: a health check sent
	// before that would still be answered.
	waitStopped(t, pid)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Write(ctx, "batch-2", 1, rowsRecord(t, "b@example.com")); err != nil {
		t.Fatalf("write after the plugin hung: %v", err)
	}
	if got := c.PID(); got == pid || got == 0 {
		t.Errorf("plugin pid %d after the health check failed (was %d)", got, pid)
	}
	if n := ledger(t, set.Ledger)["batch-2"]; n != 1 {
		t.Errorf("the new process wrote %d rows of batch-2, want 1", n)
	}
}

// waitStopped waits until process pid is stopped by a signal (state T in /proc).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command name, which is in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'T' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not stop", pid)
}

func TestSIGKILLMidBatch(t *testing.T) {
	c := start(t, "plugin", nil)
	dir := t.TempDir()
	set := scriptedSettings{Ledger: filepath.Join(dir, "ledger"), HangOn: "ev-2", Hanging: filepath.Join(dir, "hanging")}
	if err := c.Configure(context.Background(), "crm", settings(t, set), nil); err != nil {
		t.Fatal(err)
	}
	pid := c.PID()
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(context.Background(), "batch-7", 1, rowsRecord(t, "a@example.com", "b@example.com"))
		done <- err
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(set.Hanging); err == nil {
			break
		}
		if i > 1000 {
			t.Fatal("the plugin never started the batch")
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	err := <-done
	if !errors.Is(err, ErrPluginExited) {
		t.Fatalf("write during the kill: %v, want ErrPluginExited", err)
	}
	if n := ledger(t, set.Ledger)["batch-7"]; n != 0 {
		t.Fatalf("a killed batch left %d rows", n)
	}
	// The retry goes to a new process, re-configured (now without the hang).
	set.HangOn = ""
	if err := c.Configure(context.Background(), "crm", settings(t, set), nil); err != nil {
		t.Fatalf("configure after the crash: %v", err)
	}
	if _, err := c.Write(context.Background(), "batch-7", 2, rowsRecord(t, "a@example.com", "b@example.com")); err != nil {
		t.Fatalf("write after the restart: %v", err)
	}
	if got := c.PID(); got == pid || got == 0 {
		t.Errorf("plugin pid %d after the restart (was %d)", got, pid)
	}
	if n := ledger(t, set.Ledger)["batch-7"]; n != 2 {
		t.Errorf("batch-7 delivered %d rows, want its 2 rows once", n)
	}
	if processAlive(pid) {
		t.Errorf("the killed plugin %d still runs", pid)
	}
}

func TestRestartAfterCrashBetweenCalls(t *testing.T) {
	c := start(t, "plugin", nil)
	set := scriptedSettings{Ledger: filepath.Join(t.TempDir(), "ledger")}
	if err := c.Configure(context.Background(), "crm", settings(t, set), nil); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(c.PID(), syscall.SIGKILL)
	for c.Ping() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	// The next call restarts the plugin and hands it its settings again.
	if _, err := c.Write(context.Background(), "after", 1, rowsRecord(t, "a@example.com")); err != nil {
		t.Fatalf("write after a crash: %v", err)
	}
	if n := ledger(t, set.Ledger)["after"]; n != 1 {
		t.Errorf("ledger %d", n)
	}
}

// TestPluginDiesWithItsHost SIGKILLs a host process and checks that its plugin goes too.
func TestPluginDiesWithItsHost(t *testing.T) {
	// "host" runs an SDK plugin, which also watches its parent; "host-bare" runs one that
	// does not, so only the parent-death signal can end it.
	for _, role := range []string{"host", "host-bare"} {
		t.Run(role, func(t *testing.T) {
			host := exec.Command(os.Args[0])
			host.Env = append(os.Environ(), roleEnv+"="+role)
			out, err := host.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := host.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				host.Process.Kill()
				t.Fatalf("host: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || pid == 0 {
				host.Process.Kill()
				t.Fatalf("host said %q", line)
			}
			if !processAlive(pid) {
				t.Fatal("the plugin is not running")
			}
			host.Process.Signal(syscall.SIGKILL)
			host.Wait()
			for i := 0; processAlive(pid); i++ {
				if i > 300 {
					syscall.Kill(pid, syscall.SIGKILL)
					t.Fatalf("plugin %d outlived its SIGKILLed host", pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestLargeBatchesAreSplit(t *testing.T) {
	c := start(t, "plugin", nil)
	set := scriptedSettings{Ledger: filepath.Join(t.TempDir(), "ledger")}
	if err := c.Configure(context.Background(), "crm", settings(t, set), nil); err != nil {
		t.Fatal(err)
	}
	// 40 rows of 250 KB: about 10 MB of IPC, over gRPC's 4 MiB default.
	rows := make([]schemas.Row, 40)
	big := strings.Repeat("x", 250<<10)
	for i := range rows {
		rows[i] = schemas.Row{Seq: int64(i + 1), EventID: fmt.Sprintf("big-%d", i), EventType: "Test", Raw: []byte(big)}
	}
	schema, _ := schemas.SchemaFor([]string{"seq", "event_id", "event_type", "raw"})
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if _, err := c.Write(context.Background(), "big", 1, rec); err != nil {
		t.Fatalf("a 10 MB batch: %v", err)
	}
	total, parts := 0, 0
	for id, n := range ledger(t, set.Ledger) {
		if strings.HasPrefix(id, "big.") {
			total += n
			parts++
		}
	}
	if total != 40 || parts < 4 {
		t.Errorf("%d rows in %d parts, want 40 rows in at least 4 parts", total, parts)
	}
}

// The plugin's socket sits in a folder only this user can enter, and goes with the client.
func TestPluginSocketIsPrivate(t *testing.T) {
	c := start(t, "plugin", nil)
	fi, err := os.Stat(c.sockDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("socket folder mode %v, want 0700", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(c.sockDir)
	sockets := 0
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 {
			sockets++
		}
	}
	if sockets != 1 {
		t.Errorf("%d sockets in the plugin's folder, want 1", sockets)
	}
	c.Close()
	if _, err := os.Stat(c.sockDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket folder left after Close: %v", err)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	r := Resolver{Self: "/usr/bin/hookbridge", Builtins: []string{"jsonl"}, Dir: dir}
	l, err := r.Resolve("jsonl")
	if err != nil || l.Path != "/usr/bin/hookbridge" || strings.Join(l.Args, " ") != "plugin serve jsonl" {
		t.Errorf("built-in: %+v %v", l, err)
	}
	if _, err := r.Resolve("acme"); err == nil || !strings.Contains(err.Error(), "hookbridge-sink-acme") {
		t.Errorf("missing external: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "hookbridge-sink-acme"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "hookbridge-sink-notexec"), []byte(""), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte(""), 0o755)
	if l, err := r.Resolve("acme"); err != nil || l.Path != filepath.Join(dir, "hookbridge-sink-acme") {
		t.Errorf("external: %+v %v", l, err)
	}
	if names, _ := r.External(); strings.Join(names, ",") != "acme" {
		t.Errorf("external plugins %v", names)
	}
}
