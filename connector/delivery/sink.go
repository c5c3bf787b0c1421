// Package delivery moves stored events to sinks: one loop per configured sink reads the rows
// after its cursor (joined with their subscription's current state), filters and projects
// them, coalesces rows that share a destination key, and sends them through the sink within
// its rate limit. Each attempt and each row's outcome is recorded; failed rows are retried on
// a schedule and dead-lettered when the policy is spent; the cursor only moves past rows that
// are done. All of it is kept in the store's DuckDB file, written by the store's writer in the
// same transaction as the state it describes.
package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Sink is a destination as the engine sees it: the plugin host's client in production, a
// scripted fake in tests. Write is never called concurrently for one sink.
type Sink interface {
	// Write sends one batch and reports each row's outcome. A row the result does not
	// mention is treated as delivered. Errors:
	//   - *SinkError: the destination as a whole is unusable (bad credentials, down, 429):
	//     no row is charged an attempt; the sink backs off, or pauses until resumed.
	//   - *BatchRejectedError: the destination refused the request as a whole; the engine
	//     splits the batch to find the rows at fault.
	//   - anything else (a crashed plugin, a timeout): the whole batch is retried later
	//     under the same batch id, charged one attempt.
	Write(ctx context.Context, b *Batch) (*Result, error)
}

// Poller is implemented by sinks that accept rows as asynchronous jobs (Outcome Accepted).
// Poll reports the rows whose job has settled; rows still running are left out.
type Poller interface {
	Poll(ctx context.Context, jobs []Job) ([]RowResult, error)
}

// Job is one row accepted by an asynchronous sink.
type Job struct {
	Seq   int64
	JobID string
}

// Batch is one request to a sink.
type Batch struct {
	// ID derives from the sink and the rows' seqs, so a re-send of the same rows keeps it.
	ID string
	// Attempt counts the sends of this batch's rows (1 for the first).
	Attempt int
	// Record holds the rows, projected to the sink's columns; seq is always present.
	Record arrow.RecordBatch
}

// Outcome is what happened to one row.
type Outcome int

// The row outcomes a sink reports.
const (
	Delivered Outcome = iota
	Retry             // try again later (RetryAfter, if set, is the destination's wish)
	Failed            // permanent: dead-letter the row with Reason
	Accepted          // taken as an asynchronous job (JobID); the engine polls it
)

// Result is a sink's answer to a Write.
type Result struct {
	Rows []RowResult
}

// RowResult is one row's outcome, keyed by seq.
type RowResult struct {
	Seq        int64
	Outcome    Outcome
	RetryAfter time.Duration
	Reason     string
	StatusCode int
	JobID      string
}

// SinkError says the destination as a whole cannot take requests now.
type SinkError struct {
	Err error
	// RetryAfter is how long to wait (0: the engine's back-off decides).
	RetryAfter time.Duration
	// Pause stops the sink until `hookbridge sinks resume` (e.g. 410 Gone).
	Pause bool
	// StatusCode is the destination's HTTP status, if any (429 is counted apart).
	StatusCode int
}

// Error says the sink is unavailable and why.
func (e *SinkError) Error() string { return fmt.Sprintf("sink unavailable: %v", e.Err) }

// Unwrap returns Err.
func (e *SinkError) Unwrap() error { return e.Err }

// BatchRejectedError says the destination refused the whole request (a 400 naming no row).
type BatchRejectedError struct {
	// Reason is what the destination said.
	Reason string
	// StatusCode is the destination's HTTP status, if any.
	StatusCode int
}

// Error gives the destination's reason.
func (e *BatchRejectedError) Error() string { return "batch rejected: " + e.Reason }

// String is the outcome as delivery_rows stores it.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Failed:
		return "failed"
	case Accepted:
		return "accepted"
	}
	return "unknown"
}
