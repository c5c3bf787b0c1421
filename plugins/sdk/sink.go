// Package sdk is what a hookbridge sink plugin imports: the Sink interface, the Batch it
// receives (as an Arrow record and as typed rows), the errors that steer retries, and Serve,
// which turns a Sink into a plugin process. It builds without cgo and without DuckDB.
//
// A plugin's main is one line:
//
//	func main() { sdk.Serve(mysink.New()) }
//
// Built for hookbridge's plugins folder as hookbridge-sink-NAME, it also answers
// `hookbridge-sink-NAME spec` and `hookbridge-sink-NAME version` on the command line.
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

// Sink is a destination. The host calls Spec, then Configure, then Write (and Poll, Check)
// any number of times, then Close. The calls of one plugin process never overlap.
type Sink interface {
	// Spec describes the sink. It is called after every start of the plugin process and must
	// return at once.
	Spec() Spec

	// Configure validates the settings and prepares the sink, without touching the network
	// (use Check for that). It is called once per process start, after Spec. Refuse bad
	// settings with a *SettingsError naming the field; other errors stop the sink from
	// starting.
	Configure(ctx context.Context, cfg Config) error

	// Write sends one batch. It may block (network calls) until ctx ends. Mark rows that did
	// not go through on the batch (Retry, Fail, Accept); unmarked rows count as delivered
	// when Write returns nil. The batch ID stays the same when the same rows are sent again
	// (after a crash, after rows were marked Retry, when dead letters are replayed), so a
	// sink can skip rows it already wrote under that ID; a row it did not write (marked
	// Retry or Fail before) must be tried again, never skipped as delivered. Errors:
	//   - SinkDown(err, wait): the destination as a whole is unusable now (bad credentials,
	//     outage, 429); no row is charged an attempt and the sink backs off.
	//   - Pause(err): stop the sink until an operator resumes it (e.g. 410 Gone).
	//   - RejectBatch(reason, status): the destination refused the request as a whole; the
	//     host splits the batch to find the rows at fault.
	//   - any other error: every row of the batch is retried later.
	Write(ctx context.Context, b *Batch) error

	// Close releases everything the sink holds. It is called once, last.
	Close(ctx context.Context) error
}

// Checker is implemented by sinks that can test their connection (credentials, that the
// mapped fields exist). Check may block on the network.
type Checker interface {
	Check(ctx context.Context) error
}

// Poller is implemented by sinks that accept rows as asynchronous jobs (Batch.Accept). Poll
// returns the rows whose job has settled; rows of jobs still running are left out.
type Poller interface {
	Poll(ctx context.Context, jobs []Job) ([]RowResult, error)
}

// RecordMemoryReuser is implemented by a sink that keeps nothing of a Batch's Record once
// Write has returned: no record or array it has not Retained, and no string or byte slice
// read from one, since those point into the batch's memory (strings.Clone copies a string).
// Typed rows (Rows, Each) are copies and may be kept. The SDK then reads later batches into
// the memory of earlier ones, given back once their record is released, instead of zeroing
// fresh memory for each: at 10,000-row batches that is about a tenth of a plugin's time.
type RecordMemoryReuser interface {
	ReusesRecordMemory()
}

// Job is one row accepted as an asynchronous job.
type Job struct {
	// Seq is the row's seq, as in the RowResult that accepted it.
	Seq int64
	// JobID is the id the sink gave in that RowResult.
	JobID string
}

// Spec describes a sink.
type Spec struct {
	// Name is the plugin's name, as sinks name it in `plugin:`.
	Name string `json:"name"`
	// Version is the plugin's own version, shown by `hookbridge plugins`.
	Version string `json:"version"`
	// Description is one line on what the sink writes where.
	Description string `json:"description"`
	// Settings is the JSON Schema of the settings object.
	Settings json.RawMessage `json:"settings"`
	// EventTypes the sink accepts; empty accepts any.
	EventTypes []string `json:"event_types,omitempty"`
	// MaxBatchRows bounds the rows of one Write (0: no limit).
	MaxBatchRows int `json:"max_batch_rows,omitempty"`
	// MaxBatchBytes bounds the Arrow IPC size of one Write (0: no limit); the host splits
	// larger batches.
	MaxBatchBytes int64 `json:"max_batch_bytes,omitempty"`
	// KeyColumn is the destination key the sink upserts by (e.g. email_key). Rows sharing
	// it never go in one batch: the host coalesces them to the latest.
	KeyColumn string `json:"key_column,omitempty"`
	// Columns the sink needs besides the ones its mapping names.
	Columns []string `json:"columns,omitempty"`
	// Async sinks may Accept rows and are polled.
	Async bool `json:"async,omitempty"`
}

// Config is what Configure receives.
type Config struct {
	// Name is the sink's name in the hookbridge configuration.
	Name string
	// Settings is the sink's settings object as JSON (secrets already resolved).
	Settings json.RawMessage
	// Mapping maps normalised columns to destination fields; nil when none is configured.
	Mapping *schemas.Mapping
	// Logger writes to the host's log at the right level.
	Logger *slog.Logger
}

// SettingsError refuses one setting.
type SettingsError struct {
	// Field is the setting's path in the settings object ("list_id", "headers.Authorization").
	Field string
	// Message says what is wrong with it and what would be right.
	Message string
}

// Error gives the field and the message.
func (e *SettingsError) Error() string { return fmt.Sprintf("settings: %s: %s", e.Field, e.Message) }

// DurationSetting reads a duration setting such as "30s": def when it is empty, else a
// *SettingsError naming field unless it is a positive Go duration.
func DurationSetting(field, value string, def time.Duration) (time.Duration, error) {
	if value == "" {
		return def, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return 0, &SettingsError{Field: field, Message: fmt.Sprintf("%q is not a positive duration (e.g. %s)", value, def)}
	}
	return d, nil
}

// DecodeSettings decodes raw settings into v (a pointer to a struct with json tags),
// refusing unknown fields and wrong types with a *SettingsError that names the field.
func DecodeSettings(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return &SettingsError{Field: "(settings)", Message: fmt.Sprintf("settings are a JSON %s, want an object", te.Value)}
		}
		return &SettingsError{Field: te.Field, Message: fmt.Sprintf("is a JSON %s, want %s", te.Value, te.Type)}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return &SettingsError{Field: strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), Message: "is not a setting of this sink"}
	}
	return &SettingsError{Field: "(settings)", Message: err.Error()}
}
