package jsonl

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "events.jsonl")
	settings, _ := json.Marshal(Settings{Path: path})
	sinktest.Run(t, sinktest.Config{
		New:      New,
		Settings: settings,
		Mapping:  map[string]string{"email": "email", "calendar_title": "calendar", "status": "status"},
		BadSettings: map[string]json.RawMessage{
			"path":   json.RawMessage(`{}`),
			"sync":   json.RawMessage(`{"path": "x.jsonl", "sync": "yes"}`),
			"colour": json.RawMessage(`{"path": "x.jsonl", "colour": "red"}`),
		},
		Reset: func(t *testing.T) { os.Remove(path) },
		Delivered: func(t *testing.T, rows []schemas.Row) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var lines []map[string]any
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("not a JSON line: %s", sc.Text())
				}
				lines = append(lines, m)
			}
			if len(lines) != len(rows) {
				t.Fatalf("%d lines for %d rows", len(lines), len(rows))
			}
			if lines[0]["email"] != rows[0].Email || lines[0]["calendar"] != rows[0].CalendarTitle || lines[1]["status"] != "unsubscribed" {
				t.Errorf("first lines %v %v", lines[0], lines[1])
			}
		},
	})
}
