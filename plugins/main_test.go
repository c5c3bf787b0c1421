package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// The test binary doubles as plugin processes and as a host process, so the tests run real
// processes without a separate build:
//
//	HOOKBRIDGE_TEST_ROLE=plugin           serves scriptedSink
//	HOOKBRIDGE_TEST_ROLE=plugin-v2        serves it under protocol version 2
//	HOOKBRIDGE_TEST_ROLE=discard          serves a sink that drops every row (benchmark)
//	HOOKBRIDGE_TEST_ROLE=silent           never answers the handshake (sleeps)
//	HOOKBRIDGE_TEST_ROLE=host             starts a plugin, prints its pid, waits to be killed
const roleEnv = "HOOKBRIDGE_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "plugin":
		sdk.Serve(&scriptedSink{})
		os.Exit(0)
	case "discard":
		sdk.Serve(discardSink{})
		os.Exit(0)
	case "plugin-v2":
		hs := sdk.Handshake
		hs.ProtocolVersion = 2
		plugin.Serve(&plugin.ServeConfig{HandshakeConfig: hs, VersionedPlugins: map[int]plugin.PluginSet{2: {sdk.PluginName: &sdk.GRPCPlugin{Impl: &scriptedSink{}}}},
			GRPCServer: plugin.DefaultGRPCServer, Logger: hclog.NewNullLogger()})
		os.Exit(0)
	case "plugin-bare":
		// go-plugin's server without sdk.Serve: nothing in the plugin watches its parent, so
		// only the parent-death signal the host sets can end it.
		plugin.Serve(&plugin.ServeConfig{HandshakeConfig: sdk.Handshake, VersionedPlugins: map[int]plugin.PluginSet{sdk.ProtocolVersion: {sdk.PluginName: &sdk.GRPCPlugin{Impl: &scriptedSink{}}}},
			GRPCServer: plugin.DefaultGRPCServer, Logger: hclog.NewNullLogger()})
		os.Exit(0)
	case "silent":
		time.Sleep(time.Hour)
		os.Exit(0)
	case "host", "host-bare":
		role := "plugin"
		if os.Getenv(roleEnv) == "host-bare" {
			role = "plugin-bare"
		}
		c, err := Start(context.Background(), self(role), slog.Default())
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(c.PID())
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// self is a Launch of this test binary in a role.
func self(role string) Launch {
	return Launch{Name: "scripted", Path: os.Args[0], Env: []string{roleEnv + "=" + role}}
}

// scriptedSink is a test plugin. Its settings say where to record deliveries and how to
// misbehave. It records each delivered batch id in the ledger file, one line per row.
type scriptedSink struct {
	mu  sync.Mutex
	set scriptedSettings
	log *slog.Logger
}

type scriptedSettings struct {
	Ledger string `json:"ledger"`
	// HangOn makes Write block (until killed) for batches holding this event id.
	HangOn string `json:"hang_on,omitempty"`
	// Hanging is a file created when Write starts hanging, so the test knows when to kill.
	Hanging string `json:"hanging,omitempty"`
	// FailEmail is refused permanently; RetryEmail is retried; AsyncEmail is accepted as a job.
	FailEmail  string `json:"fail_email,omitempty"`
	RetryEmail string `json:"retry_email,omitempty"`
	AsyncEmail string `json:"async_email,omitempty"`
	// Down makes every Write a sink-wide error.
	Down bool `json:"down,omitempty"`
}

func (s *scriptedSink) Spec() sdk.Spec {
	return sdk.Spec{Name: "scripted", Version: "0.1.0", Description: "test sink", Settings: json.RawMessage(`{"type":"object","required":["ledger"]}`),
		KeyColumn: "email_key", MaxBatchRows: 500, Async: true}
}

func (s *scriptedSink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set scriptedSettings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	if set.Ledger == "" {
		return &sdk.SettingsError{Field: "ledger", Message: "is required"}
	}
	s.mu.Lock()
	s.set, s.log = set, cfg.Logger
	s.mu.Unlock()
	cfg.Logger.Warn("scripted sink configured", "ledger", filepath.Base(set.Ledger))
	return nil
}

func (s *scriptedSink) Check(ctx context.Context) error {
	if s.set.Down {
		return sdk.SinkDown(fmt.Errorf("destination down"), 0, 503)
	}
	return nil
}

func (s *scriptedSink) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	set := s.set
	s.mu.Unlock()
	if set.Down {
		return sdk.SinkDown(fmt.Errorf("503 from destination"), 2*time.Second, 503)
	}
	rows, err := b.Rows()
	if err != nil {
		return err
	}
	for _, r := range rows {
		if set.HangOn != "" && r.EventID == set.HangOn {
			os.WriteFile(set.Hanging, []byte(b.ID), 0o644)
			select {} // until the host kills the process
		}
	}
	f, err := os.OpenFile(set.Ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, r := range rows {
		switch {
		case set.FailEmail != "" && r.Email == set.FailEmail:
			b.Fail(r.Seq, "invalid email address", 400)
		case set.RetryEmail != "" && r.Email == set.RetryEmail:
			b.Retry(r.Seq, 3*time.Second, "rate limited", 429)
		case set.AsyncEmail != "" && r.Email == set.AsyncEmail:
			b.Accept(r.Seq, "job-"+b.ID)
		default:
			fmt.Fprintf(f, "%s %s %d\n", b.ID, r.EventID, b.Attempt)
		}
	}
	return f.Sync()
}

func (s *scriptedSink) Poll(ctx context.Context, jobs []sdk.Job) ([]sdk.RowResult, error) {
	var out []sdk.RowResult
	for _, j := range jobs {
		out = append(out, sdk.RowResult{Seq: j.Seq, Outcome: sdk.Delivered})
	}
	return out, nil
}

func (s *scriptedSink) Close(ctx context.Context) error { return nil }

type discardSink struct{}

func (discardSink) Spec() sdk.Spec                                    { return sdk.Spec{Name: "discard", Version: "1"} }
func (discardSink) Configure(ctx context.Context, _ sdk.Config) error { return nil }
func (discardSink) Write(ctx context.Context, b *sdk.Batch) error {
	return b.Each(func(*schemas.Row) error { return nil })
}
func (discardSink) Close(ctx context.Context) error { return nil }

// ReusesRecordMemory: the discard sink keeps nothing.
func (discardSink) ReusesRecordMemory() {}

// ledger reads what the scripted sink recorded: batch id -> rows written.
func ledger(t *testing.T, path string) map[string]int {
	t.Helper()
	b, _ := os.ReadFile(path)
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			out[f[0]]++
		}
	}
	return out
}

// processAlive reports whether pid still runs (and is not a zombie).
func processAlive(pid int) bool {
	out, err := exec.Command("ps", "-o", "stat=", "-p", fmt.Sprint(pid)).Output()
	return err == nil && len(strings.TrimSpace(string(out))) > 0 && !strings.HasPrefix(strings.TrimSpace(string(out)), "Z")
}
