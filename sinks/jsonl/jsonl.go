// Package jsonl is the jsonl sink: one JSON object per row, appended to a file or written to
// standard output, for debugging, piping into other tools, and as the smallest complete
// example of a built-in sink.
package jsonl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// Version is the sink's version.
const Version = "1.0.0"

// Settings are the sink's settings.
type Settings struct {
	// Path is the file rows are appended to; "-" writes to standard output.
	Path string `json:"path"`
	// Sync forces each batch to disk before it counts as delivered (default true).
	Sync *bool `json:"sync,omitempty"`
}

const settingsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["path"],
  "properties": {
    "path": {"type": "string", "description": "file the rows are appended to; - for standard output"},
    "sync": {"type": "boolean", "default": true, "description": "fsync each batch before it counts as delivered"}
  }
}`

// Sink writes JSON lines.
type Sink struct {
	mu      sync.Mutex
	cfg     sdk.Config
	set     Settings
	out     io.Writer
	file    *os.File
	written map[string]bool // batch ids written by this process
}

// New returns an unconfigured sink.
func New() sdk.Sink { return &Sink{written: map[string]bool{}} }

// Spec implements sdk.Sink.
func (s *Sink) Spec() sdk.Spec {
	return sdk.Spec{Name: "jsonl", Version: Version, Description: "appends one JSON object per row to a file or standard output",
		Settings: json.RawMessage(settingsSchema), MaxBatchRows: 1000}
}

// Configure implements sdk.Sink: it checks the settings and opens the file.
func (s *Sink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set Settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	if set.Path == "" {
		return &sdk.SettingsError{Field: "path", Message: "is required (a file, or - for standard output)"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.set = cfg, set
	if set.Path == "-" {
		s.out = os.Stdout
		return nil
	}
	if dir := filepath.Dir(set.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return &sdk.SettingsError{Field: "path", Message: err.Error()}
		}
	}
	f, err := os.OpenFile(set.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return &sdk.SettingsError{Field: "path", Message: err.Error()}
	}
	s.file, s.out = f, f
	return nil
}

// Write implements sdk.Sink. A batch whose id this process already wrote is skipped, so a
// re-send after a lost answer adds nothing (after a restart a re-send is written again: the
// file is at-least-once).
func (s *Sink) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written[b.ID] {
		return nil
	}
	rows, err := b.Rows()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range rows {
		r := &rows[i]
		obj := b.Fields(r)
		if obj == nil {
			obj = r.Map(columnNames(b)...)
		}
		obj["seq"], obj["event_id"], obj["event_type"] = r.Seq, r.EventID, r.EventType
		if err := enc.Encode(obj); err != nil {
			b.Fail(r.Seq, "cannot encode row: "+err.Error(), 0)
		}
	}
	if _, err := s.out.Write(buf.Bytes()); err != nil {
		return sdk.SinkDown(fmt.Errorf("write %s: %w", s.set.Path, err), 0, 0)
	}
	if s.file != nil && (s.set.Sync == nil || *s.set.Sync) {
		if err := s.file.Sync(); err != nil {
			return sdk.SinkDown(fmt.Errorf("sync %s: %w", s.set.Path, err), 0, 0)
		}
	}
	s.written[b.ID] = true
	return nil
}

func columnNames(b *sdk.Batch) []string {
	var names []string
	for _, f := range b.Record.Schema().Fields() {
		names = append(names, f.Name)
	}
	return names
}

// Close implements sdk.Sink.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		return err
	}
	return nil
}
