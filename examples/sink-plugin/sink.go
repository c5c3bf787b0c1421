package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// settings are what `settings:` in hookbridge's configuration holds for this sink.
type settings struct {
	// Path is the file rows are appended to, one JSON object per line.
	Path string `json:"path"`
	// RequireEmail refuses rows without an email (a per-row failure, as a CRM would answer).
	RequireEmail bool `json:"require_email,omitempty"`
}

// jsonFile appends each row's mapped fields (or its normalised columns) as a JSON line.
// Rows already written are skipped when their batch comes again: "BATCH-ID SEQ" of every
// written row is kept beside the file (PATH.written). A batch comes again after a crash (its
// outcome unknown), after rows were marked Retry, and when an operator replays dead letters,
// always under the same id; so the record is per row, not per batch: a row this sink failed
// is written when it comes back, never skipped as if done.
type jsonFile struct {
	mu      sync.Mutex
	set     settings
	file    *os.File
	written *os.File
	done    map[string]bool // "BATCH-ID SEQ"
}

func newSink() sdk.Sink { return &jsonFile{} }

func (s *jsonFile) Spec() sdk.Spec {
	return sdk.Spec{
		Name:        "jsonfile",
		Version:     "0.2.0",
		Description: "example plugin: appends JSON lines to a file, skipping rows it already wrote",
		Settings: json.RawMessage(`{"type":"object","additionalProperties":false,"required":["path"],
			"properties":{"path":{"type":"string","description":"file to append to"},
			"require_email":{"type":"boolean","default":false,"description":"fail rows without an email"}}}`),
		MaxBatchRows: 500,
		Columns:      []string{"email"}, // needed by require_email, whatever the mapping
	}
}

func (s *jsonFile) Configure(ctx context.Context, cfg sdk.Config) error {
	var set settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	if set.Path == "" {
		return &sdk.SettingsError{Field: "path", Message: "is required"}
	}
	done := map[string]bool{}
	if b, err := os.ReadFile(set.Path + ".written"); err == nil {
		// A crash can cut the last record short ("b1 1" for "b1 12"): only whole lines count,
		// and the cut one is dropped so appends start on a fresh line.
		whole := b[:bytes.LastIndexByte(b, '\n')+1]
		if len(whole) < len(b) {
			if err := os.Truncate(set.Path+".written", int64(len(whole))); err != nil {
				return &sdk.SettingsError{Field: "path", Message: err.Error()}
			}
		}
		for _, line := range strings.Split(string(whole), "\n") {
			if line != "" {
				done[line] = true
			}
		}
	}
	file, err := os.OpenFile(set.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return &sdk.SettingsError{Field: "path", Message: err.Error()}
	}
	written, err := os.OpenFile(set.Path+".written", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		file.Close()
		return &sdk.SettingsError{Field: "path", Message: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set, s.file, s.written, s.done = set, file, written, done
	cfg.Logger.Info("jsonfile ready", "path", set.Path, "rows already written", len(done))
	return nil
}

func (s *jsonFile) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := b.Rows()
	if err != nil {
		return err
	}
	var buf, keys bytes.Buffer
	var fresh []string
	for i := range rows {
		key := fmt.Sprintf("%s %d", b.ID, rows[i].Seq)
		if s.done[key] {
			continue // written when this batch came before: delivered, not written twice
		}
		if s.set.RequireEmail && rows[i].Email == "" {
			b.Fail(rows[i].Seq, "row has no email", 0)
			continue
		}
		line := b.Fields(&rows[i])
		if line == nil {
			line = rows[i].Map()
		}
		line["seq"], line["event_id"] = rows[i].Seq, rows[i].EventID
		out, err := json.Marshal(line)
		if err != nil {
			b.Fail(rows[i].Seq, fmt.Sprintf("cannot encode: %v", err), 0)
			continue
		}
		buf.Write(append(out, '\n'))
		keys.WriteString(key + "\n")
		fresh = append(fresh, key)
	}
	if len(fresh) == 0 {
		return nil
	}
	// Rows first, then their keys: a crash in between writes the rows again later, never
	// loses them.
	if _, err := s.file.Write(buf.Bytes()); err != nil {
		return sdk.SinkDown(err, 0, 0)
	}
	if err := s.file.Sync(); err != nil {
		return sdk.SinkDown(err, 0, 0)
	}
	if _, err := s.written.Write(keys.Bytes()); err != nil {
		return sdk.SinkDown(err, 0, 0)
	}
	for _, k := range fresh {
		s.done[k] = true
	}
	return s.written.Sync()
}

func (s *jsonFile) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.file != nil {
		err = s.file.Close()
		s.file = nil
	}
	if s.written != nil {
		if cerr := s.written.Close(); err == nil {
			err = cerr
		}
		s.written = nil
	}
	return err
}
