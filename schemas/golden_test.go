package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixedReceivedAt is the receive time every golden row is decoded with.
var fixedReceivedAt = time.Date(2025, 10, 1, 9, 30, 0, 0, time.UTC)

// goldenView is what a golden file records for one body: the refusal, or the row (without the
// raw body, which is checked to be the body byte for byte) and the unknown keys.
type goldenView struct {
	Error       *DecodeError   `json:"error,omitempty"`
	Row         map[string]any `json:"row,omitempty"`
	UnknownKeys []string       `json:"unknown_keys,omitempty"`
}

func TestGolden(t *testing.T) {
	dec := mustDecoder(t, nil)
	bodies, err := filepath.Glob("testdata/bodies/*")
	if err != nil || len(bodies) == 0 {
		t.Fatalf("no bodies in testdata/bodies: %v", err)
	}
	for _, path := range bodies {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var view goldenView
			ev, err := dec.Decode(body)
			var de *DecodeError
			switch {
			case errors.As(err, &de):
				view.Error = de
				if !strings.HasPrefix(name, "refused_") {
					t.Errorf("body refused (%v) but its name does not start with refused_", err)
				}
			case err != nil:
				t.Fatalf("Decode returned %T, want *DecodeError: %v", err, err)
			default:
				if strings.HasPrefix(name, "refused_") {
					t.Errorf("body accepted but its name starts with refused_")
				}
				row := ev.Row("rokt", fixedReceivedAt)
				if !bytes.Equal(row.Raw, body) {
					t.Errorf("raw column differs from the body")
				}
				m := row.Map()
				delete(m, "raw")
				view.Row = m
				view.UnknownKeys = ev.UnknownKeys
			}
			got, err := json.MarshalIndent(view, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			goldenPath := filepath.Join("testdata/golden", strings.TrimSuffix(name, filepath.Ext(name))+".json")
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test ./schemas -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded view differs from %s (rerun with -update after checking the change):\n--- got\n%s\n--- want\n%s", goldenPath, got, want)
			}
		})
	}
}

func mustDecoder(t testing.TB, paths FieldPaths) *Decoder {
	t.Helper()
	d, err := NewDecoder(paths)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
