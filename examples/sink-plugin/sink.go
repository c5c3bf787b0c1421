package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// settings are what `settings:` in hookbridge's configuration holds for this sink.
type settings struct {
	// Path is the file rows are appended to, one JSON object per line.
	Path string `json:"path"`
}

// jsonFile appends each row's mapped fields (or its normalised columns) as a JSON line.
// Re-sent batches are skipped: the ids of written batches are kept beside the file
// (PATH.batches), so a batch the host sends again after a crash is not written twice.
type jsonFile struct {
	mu      sync.Mutex
	set     settings
	file    *os.File
	batches *os.File
	done    map[string]bool
}

func newSink() sdk.Sink { return &jsonFile{} }

func (s *jsonFile) Spec() sdk.Spec {
	return sdk.Spec{
		Name:        "jsonfile",
		Version:     "0.1.0",
		Description: "example plugin: appends JSON lines to a file, skipping re-sent batches",
		Settings: json.RawMessage(`{"type":"object","additionalProperties":false,"required":["path"],
			"properties":{"path":{"type":"string","description":"file to append to"}}}`),
		MaxBatchRows: 500,
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
	if f, err := os.Open(set.Path + ".batches"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			done[sc.Text()] = true
		}
		f.Close()
	}
	file, err := os.OpenFile(set.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return &sdk.SettingsError{Field: "path", Message: err.Error()}
	}
	batches, err := os.OpenFile(set.Path+".batches", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		file.Close()
		return &sdk.SettingsError{Field: "path", Message: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set, s.file, s.batches, s.done = set, file, batches, done
	cfg.Logger.Info("jsonfile ready", "path", set.Path, "batches already written", len(done))
	return nil
}

func (s *jsonFile) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done[b.ID] {
		return nil // a re-send of a batch this file already holds
	}
	rows, err := b.Rows()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for i := range rows {
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
	}
	// Rows first, then the batch id: a crash in between writes the rows again later, never
	// loses them.
	if _, err := s.file.Write(buf.Bytes()); err != nil {
		return sdk.SinkDown(err, 0, 0)
	}
	if err := s.file.Sync(); err != nil {
		return sdk.SinkDown(err, 0, 0)
	}
	if _, err := fmt.Fprintln(s.batches, b.ID); err != nil {
		return sdk.SinkDown(err, 0, 0)
	}
	s.done[b.ID] = true
	return s.batches.Sync()
}

func (s *jsonFile) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.file != nil {
		err = s.file.Close()
		s.file = nil
	}
	if s.batches != nil {
		if cerr := s.batches.Close(); err == nil {
			err = cerr
		}
		s.batches = nil
	}
	return err
}
