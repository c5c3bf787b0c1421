package sdk

import (
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/schemas"
)

// Batch is one Write's rows: an Arrow record of normalised columns (seq, event_id and
// event_type always; the columns the mapping names and the spec asks for), and the same rows
// as typed schemas.Row values. Retry, Fail and Accept may be called from several goroutines.
type Batch struct {
	// ID stays the same when the same rows are sent again.
	ID string
	// Attempt counts the sends of these rows (1 for the first).
	Attempt int
	// Record holds the rows; it is valid during Write only.
	Record  arrow.RecordBatch
	mapping *schemas.Mapping
	rows    []schemas.Row
	mu      sync.Mutex // guards results and order
	results map[int64]RowResult
	order   []int64
}

// NewBatch wraps a record for Write; the host side builds batches this way, and so can tests.
func NewBatch(id string, attempt int, rec arrow.RecordBatch, mapping *schemas.Mapping) *Batch {
	return &Batch{ID: id, Attempt: attempt, Record: rec, mapping: mapping, results: map[int64]RowResult{}}
}

// Rows returns the batch's rows as typed values (decoded once).
func (b *Batch) Rows() ([]schemas.Row, error) {
	if b.rows == nil {
		rows, err := schemas.RowsFromRecord(b.Record)
		if err != nil {
			return nil, err
		}
		b.rows = rows
	}
	return b.rows, nil
}

// Each calls fn with each row of the batch in order, decoding a few hundred at a time instead
// of the whole batch (see schemas.EachRow): the way to stream a large batch. The *Row is
// reused after fn returns; copy the Row to keep it. fn's error stops the iteration.
func (b *Batch) Each(fn func(r *schemas.Row) error) error {
	if b.rows != nil {
		for i := range b.rows {
			if err := fn(&b.rows[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return schemas.EachRow(b.Record, fn)
}

// Fields returns a row's destination fields through the sink's mapping (nil without one).
func (b *Batch) Fields(r *schemas.Row) map[string]any {
	if b.mapping == nil {
		return nil
	}
	return b.mapping.Apply(r)
}

// Retry marks a row to be tried again later; after, when positive, is the destination's own
// wait (its Retry-After).
func (b *Batch) Retry(seq int64, after time.Duration, reason string, status int) {
	b.mark(RowResult{Seq: seq, Outcome: Retry, RetryAfter: after, Reason: reason, StatusCode: status})
}

// Fail marks a row as refused for good: it is dead-lettered with reason.
func (b *Batch) Fail(seq int64, reason string, status int) {
	b.mark(RowResult{Seq: seq, Outcome: Failed, Reason: reason, StatusCode: status})
}

// Accept marks a row as taken by an asynchronous job the host will Poll.
func (b *Batch) Accept(seq int64, jobID string) {
	b.mark(RowResult{Seq: seq, Outcome: Accepted, JobID: jobID})
}

func (b *Batch) mark(r RowResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.results[r.Seq]; !ok {
		b.order = append(b.order, r.Seq)
	}
	b.results[r.Seq] = r
}

// Results returns the rows marked so far, in marking order (unmarked rows are delivered).
func (b *Batch) Results() []RowResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]RowResult, 0, len(b.order))
	for _, s := range b.order {
		out = append(out, b.results[s])
	}
	return out
}

// Outcome is what happened to one row.
type Outcome int

// Row outcomes.
const (
	Delivered Outcome = iota // written
	Retry                    // not written now; try again later
	Failed                   // refused for good: dead-letter the row with Reason
	Accepted                 // taken as an asynchronous job (JobID); the host polls it
)

// RowResult is one row's outcome, keyed by seq.
type RowResult struct {
	// Seq is the row's seq (the batch's seq column).
	Seq int64
	// Outcome is what happened to it.
	Outcome Outcome
	// RetryAfter, with Retry, is how long the destination asked to wait (0: the sink's
	// retry schedule decides).
	RetryAfter time.Duration
	// Reason says why a row failed or is retried; it is kept in the delivery history and
	// the dead letters.
	Reason string
	// StatusCode is the destination's HTTP status for this row, if it has one.
	StatusCode int
	// JobID, with Accepted, names the asynchronous job the host polls for.
	JobID string
}
