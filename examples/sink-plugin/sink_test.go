package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	sinktest.Run(t, sinktest.Config{
		New:         newSink,
		Settings:    json.RawMessage(`{"path":"` + path + `"}`),
		Mapping:     map[string]string{"email": "email", "postcode": "zip"},
		BadSettings: map[string]json.RawMessage{"path": json.RawMessage(`{}`), "colour": json.RawMessage(`{"path":"x","colour":1}`)},
		Reset: func(t *testing.T) {
			os.Remove(path)
			os.Remove(path + ".written")
		},
		// The rows without an email (the Test event, the bare Unsubscribe) fail, on every send.
		Failing:     json.RawMessage(`{"path":"` + path + `","require_email":true}`),
		FailingRows: sinktest.DefaultRows(),
		FailingSeqs: withoutEmail(sinktest.DefaultRows()),
		Delivered: func(t *testing.T, rows []schemas.Row) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(b, []byte("\n")); n != len(rows) {
				t.Errorf("%d lines for %d rows", n, len(rows))
			}
		},
	})
}

func withoutEmail(rows []schemas.Row) []int64 {
	var seqs []int64
	for _, r := range rows {
		if r.Email == "" {
			seqs = append(seqs, r.Seq)
		}
	}
	return seqs
}

// TestCutRecordIsNotTakenForAWrittenRow: a crash that cut the last "BATCH-ID SEQ" record short
// ("b1 1" of "b1 12") must not make row 1 of batch b1 count as written.
func TestCutRecordIsNotTakenForAWrittenRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	if err := os.WriteFile(path+".written", []byte("b0 7\nb1 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSink().(*jsonFile)
	if err := s.Configure(context.Background(), sdk.Config{Name: "t", Settings: json.RawMessage(`{"path":"` + path + `"}`), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if !s.done["b0 7"] || s.done["b1 1"] {
		t.Errorf("records read: %v; want b0 7 only", s.done)
	}
	if b, _ := os.ReadFile(path + ".written"); string(b) != "b0 7\n" {
		t.Errorf("the record file is %q after the cut line was dropped", b)
	}
}
