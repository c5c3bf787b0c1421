// Package sinktest is the conformance suite every hookbridge sink runs in its tests:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.Config{New: mysink.New, Settings: json.RawMessage(`{"path": "…"}`), …})
//	}
//
// It drives the sink through the real protocol (gRPC shims and Arrow IPC, in-process) and
// checks that the spec is valid, bad settings are refused with the field named, a batch
// round-trips, partial failures are reported per row, a re-sent batch changes nothing, and
// Close leaves no goroutines behind. Switches in Config turn the capability checks on.
package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/hashicorp/go-plugin"

	"github.com/hookbridge/hookbridge/plugins/proto/sinkpb"
	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Config describes the sink under test.
type Config struct {
	// New makes a fresh, unconfigured sink.
	New func() sdk.Sink
	// Settings are valid settings.
	Settings json.RawMessage
	// Mapping is the mapping configured with Settings (nil for none).
	Mapping map[string]string
	// BadSettings maps a settings field to settings that must be refused naming that field.
	BadSettings map[string]json.RawMessage
	// Rows are written in the round trip (default: DefaultRows()).
	Rows []schemas.Row
	// Delivered checks the destination after rows were written once (the round trip) and
	// again after the same batch was re-sent; it must find the same state both times.
	Delivered func(t *testing.T, rows []schemas.Row)
	// Reset empties the destination between checks (optional).
	Reset func(t *testing.T)
	// Failing, when set, are settings and rows under which the rows whose seqs are listed in
	// FailingSeqs must come back failed or retried, and the others delivered, also when the
	// same batch is sent a second time.
	Failing     json.RawMessage
	FailingRows []schemas.Row
	FailingSeqs []int64
}

// DefaultRows returns rows shaped like real deliveries: a Subscribe with contact data, an
// Unsubscribe joined with the email it ended, and a Test event.
func DefaultRows() []schemas.Row {
	t0 := time.Date(2025, 9, 1, 9, 30, 0, 0, time.UTC)
	consent := true
	active, none := int64(1), int64(0)
	return []schemas.Row{
		{Seq: 101, EventID: "a41c9e07-3b6d-4f28-9e51-7d0c2b8f6e13", EventType: "Subscribe", EventTypeSent: "Subscribe", Source: "rokt", ReceivedAt: t0, OccurredAt: t0,
			SubscriptionID: "5e0b7c2a-91f4-4d6e-8b3a-2c7f1e9d0a48", CalendarCode: "scfl-2025-fixtures", CalendarTitle: "SCFL 2025 Fixtures", TagIDs: []string{"t-home"},
			Email: "Charlotte.Nguyen+footy@example.com", EmailKey: "charlotte.nguyen+footy@example.com", FirstName: "Charlotte", LastName: "Nguyen", Postcode: "3121",
			CountryCode: "AU", MarketingConsent: &consent, Status: schemas.StatusSubscribed, ContactStatus: schemas.StatusSubscribed, ContactActiveSubscriptions: &active,
			ContactCalendars: []string{"scfl-2025-fixtures"}, SubscribedAt: &t0, Raw: []byte(`{"eventId":"a41c9e07-3b6d-4f28-9e51-7d0c2b8f6e13","eventType":"Subscribe","eventDetails":{}}`)},
		{Seq: 102, EventID: "c7f20b8e-4a19-4d3c-9b6e-1e5d8a2f7c34", EventType: "Unsubscribe", EventTypeSent: "Unsubscribe", Source: "rokt", ReceivedAt: t0.Add(time.Hour), OccurredAt: t0.Add(time.Hour),
			SubscriptionID: "0d9c8b7a-6e5f-4d3c-a2b1-f0e9d8c7b6a5", CalendarCode: "tvrc-home-fixtures", CalendarTitle: "TVRC Home Fixtures 2025/26",
			Email: "ann.smith@example.org", EmailKey: "ann.smith@example.org", Postcode: "SW1A 1AA", Status: schemas.StatusUnsubscribed, UnsubscribeReason: "season over",
			ContactStatus: schemas.StatusUnsubscribed, ContactActiveSubscriptions: &none, ContactEndedCalendars: []string{"tvrc-home-fixtures"},
			Raw: []byte(`{"eventId":"c7f20b8e-4a19-4d3c-9b6e-1e5d8a2f7c34","eventType":"Unsubscribe","eventDetails":{}}`)},
		{Seq: 103, EventID: "00c5d8e1-4f2a-4b97-a6e3-7d1c9b0f2a58", EventType: "Test", EventTypeSent: "Test", Source: "rokt", ReceivedAt: t0.Add(2 * time.Hour), OccurredAt: t0.Add(2 * time.Hour),
			Raw: []byte(`{"eventId":"00c5d8e1-4f2a-4b97-a6e3-7d1c9b0f2a58","eventType":"Test","eventDetails":{}}`)},
	}
}

// Run runs the suite.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.Rows == nil {
		cfg.Rows = DefaultRows()
	}
	t.Run("spec", func(t *testing.T) { checkSpec(t, cfg.New().Spec()) })
	t.Run("bad settings are refused with the field named", func(t *testing.T) {
		for field, raw := range cfg.BadSettings {
			c := connect(t, cfg.New())
			resp, err := c.Configure(context.Background(), &sinkpb.ConfigureRequest{SinkName: "conformance", SettingsJson: raw, Mapping: cfg.Mapping})
			if err != nil {
				t.Fatal(err)
			}
			if resp.SettingsError == nil || resp.SettingsError.Field != field {
				t.Errorf("settings %s: got %+v (error %q), want a settings error naming %q", raw, resp.SettingsError, resp.Error, field)
			}
		}
	})
	t.Run("a batch round-trips and a re-sent batch changes nothing", func(t *testing.T) {
		if cfg.Reset != nil {
			cfg.Reset(t)
		}
		sink := cfg.New()
		c := connect(t, sink)
		configure(t, c, cfg.Settings, cfg.Mapping)
		req := writeRequest(t, sink.Spec(), cfg.Mapping, "conformance-batch-1", cfg.Rows)
		for round := 1; round <= 2; round++ {
			req.Attempt = int32(round)
			resp, err := c.Write(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Error != "" || resp.SinkError != nil || resp.BatchRejected != nil || len(resp.Rows) != 0 {
				t.Fatalf("send %d of the same batch: every row must be delivered, got %+v\n"+
					"(the round trip sends Config.Rows, by default DefaultRows(): pass rows your sink accepts as Rows, and check per-row failures with Failing, FailingRows and FailingSeqs)", round, resp)
			}
			if cfg.Delivered != nil {
				cfg.Delivered(t, cfg.Rows)
			}
		}
		closeSink(t, c)
	})
	if cfg.Failing != nil {
		t.Run("partial failures are reported per row", func(t *testing.T) {
			if cfg.Reset != nil {
				cfg.Reset(t)
			}
			sink := cfg.New()
			c := connect(t, sink)
			configure(t, c, cfg.Failing, cfg.Mapping)
			req := writeRequest(t, sink.Spec(), cfg.Mapping, "conformance-batch-2", cfg.FailingRows)
			want := slices.Clone(cfg.FailingSeqs)
			slices.Sort(want)
			// The same batch comes again (a retry, a replay of dead letters): a row that failed
			// must be tried again, not skipped as if the batch were done.
			for round := 1; round <= 2; round++ {
				req.Attempt = int32(round)
				resp, err := c.Write(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				var failed []int64
				for _, r := range resp.Rows {
					if r.Outcome == sinkpb.Outcome_OUTCOME_FAILED || r.Outcome == sinkpb.Outcome_OUTCOME_RETRY {
						failed = append(failed, r.Seq)
						if r.Reason == "" {
							t.Errorf("send %d: row %d failed without a reason", round, r.Seq)
						}
					}
				}
				slices.Sort(failed)
				if !slices.Equal(failed, want) {
					msg := "rows reported failing"
					if round == 2 {
						msg = "the same batch sent again: rows reported failing (under these settings a failing row fails every time: it must fail again when its batch comes back, never be skipped as delivered)"
					}
					t.Errorf("send %d: %s: %v, want %v (response %+v)", round, msg, failed, want, resp)
				}
			}
			closeSink(t, c)
		})
	}
	t.Run("close releases everything", func(t *testing.T) {
		if cfg.Reset != nil {
			cfg.Reset(t)
		}
		before := runtime.NumGoroutine()
		for i := 0; i < 3; i++ {
			sink := cfg.New()
			if err := sink.Configure(context.Background(), sdk.Config{Name: "conformance", Settings: cfg.Settings, Mapping: mapping(t, cfg.Mapping), Logger: discardLogger()}); err != nil {
				t.Fatal(err)
			}
			// A sink that wrote (connections opened, workers started) must release that too.
			rec := Record(t, sink.Spec(), cfg.Mapping, cfg.Rows)
			err := sink.Write(context.Background(), sdk.NewBatch(fmt.Sprint("conformance-close-", i), 1, rec, mapping(t, cfg.Mapping)))
			rec.Release()
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := sink.Close(context.Background()); err != nil {
				t.Fatalf("close: %v", err)
			}
		}
		for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if after := runtime.NumGoroutine(); after > before {
			t.Errorf("%d goroutines before, %d after configuring, writing to and closing three sinks", before, after)
		}
	})
}

func checkSpec(t *testing.T, sp sdk.Spec) {
	if sp.Name == "" || sp.Version == "" || sp.Description == "" {
		t.Errorf("spec needs a name, version and description: %+v", sp)
	}
	var schema map[string]any
	if err := json.Unmarshal(sp.Settings, &schema); err != nil || schema["type"] != "object" {
		t.Errorf("settings schema is not a JSON Schema of an object: %v %s", err, sp.Settings)
	}
	if sp.MaxBatchRows < 0 || sp.MaxBatchBytes < 0 {
		t.Errorf("negative batch limits: %+v", sp)
	}
	if sp.KeyColumn != "" {
		if _, ok := schemas.LookupColumn(sp.KeyColumn); !ok {
			t.Errorf("key column %q is not a normalised column", sp.KeyColumn)
		}
	}
	for _, c := range sp.Columns {
		if _, ok := schemas.LookupColumn(c); !ok {
			t.Errorf("column %q is not a normalised column", c)
		}
	}
}

// connect serves sink through the real gRPC shims, in-process.
func connect(t *testing.T, sink sdk.Sink) sinkpb.SinkClient {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{sdk.PluginName: &sdk.GRPCPlugin{Impl: sink, Logger: discardLogger()}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(sinkpb.SinkClient)
}

func configure(t *testing.T, c sinkpb.SinkClient, settings json.RawMessage, m map[string]string) {
	t.Helper()
	resp, err := c.Configure(context.Background(), &sinkpb.ConfigureRequest{SinkName: "conformance", SettingsJson: settings, Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	if resp.SettingsError != nil || resp.Error != "" {
		t.Fatalf("valid settings refused: %+v %s", resp.SettingsError, resp.Error)
	}
}

func closeSink(t *testing.T, c sinkpb.SinkClient) {
	t.Helper()
	if _, err := c.Close(context.Background(), &sinkpb.CloseRequest{}); err != nil {
		t.Errorf("close: %v", err)
	}
}

func mapping(t testing.TB, m map[string]string) *schemas.Mapping {
	if len(m) == 0 {
		return nil
	}
	mp, err := schemas.NewMapping(m)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

// Record builds the Arrow record the host would send: seq, event_id, event_type, the mapped
// columns, the ones the spec asks for and its key column (every column without a mapping).
func Record(t testing.TB, sp sdk.Spec, m map[string]string, rows []schemas.Row) arrow.RecordBatch {
	t.Helper()
	cols := []string{"seq", "event_id", "event_type"}
	if len(m) == 0 {
		for _, c := range schemas.Columns() {
			if !slices.Contains(cols, c.Name) {
				cols = append(cols, c.Name)
			}
		}
	} else {
		for _, c := range append(mapping(t, m).Columns(), sp.Columns...) {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
	}
	if sp.KeyColumn != "" && !slices.Contains(cols, sp.KeyColumn) {
		cols = append(cols, sp.KeyColumn)
	}
	schema, err := schemas.SchemaFor(cols)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// writeRequest builds the request the host would send.
func writeRequest(t *testing.T, sp sdk.Spec, m map[string]string, id string, rows []schemas.Row) *sinkpb.WriteRequest {
	t.Helper()
	rec := Record(t, sp, m, rows)
	defer rec.Release()
	payload, err := sdk.EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	return &sinkpb.WriteRequest{BatchId: id, Attempt: 1, ArrowIpc: payload}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
