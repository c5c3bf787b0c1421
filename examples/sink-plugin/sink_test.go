package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

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
