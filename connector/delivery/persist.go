package delivery

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hookbridge/hookbridge/connector/store"
)

// Row outcomes as stored in delivery_rows.outcome. delivered, coalesced, dead and skipped are
// final; retry, accepted and not_sent leave the row pending.
const (
	rowDelivered = "delivered" // the destination took the row
	rowCoalesced = "coalesced" // a later row with the same destination key was sent in its place
	rowRetry     = "retry"     // failed; next_attempt_at says when it is tried again
	rowAccepted  = "accepted"  // taken as an asynchronous job; job_id is polled
	rowDead      = "dead"      // the retry policy is spent, or the failure was permanent
	rowNotSent   = "not_sent"  // the sink was unavailable; the row was not charged an attempt
)

// Attempt outcomes as stored in deliveries.outcome: what became of one request to a sink.
const (
	attemptDelivered = "delivered"  // every row taken
	attemptPartial   = "partial"    // some rows taken, others retried or failed
	attemptRetry     = "retry"      // no row taken; all to be tried again
	attemptFailed    = "failed"     // every row refused for good
	attemptSinkError = "sink_error" // the destination as a whole was unavailable
	attemptPaused    = "paused"     // the destination asked for the sink to be paused
	attemptSplit     = "split"      // refused as a whole; split to find the rows at fault
	attemptError     = "error"      // the write failed as a whole (error, crash, timeout)
)

// AttemptOutcomes lists the outcomes recorded for a request to a sink (deliveries.outcome), the
// values a history filter may take.
func AttemptOutcomes() []string {
	return []string{attemptDelivered, attemptPartial, attemptRetry, attemptFailed, attemptSinkError, attemptPaused, attemptSplit, attemptError}
}

// RowOutcomes lists the outcomes recorded for one row of a request (delivery_rows.outcome).
func RowOutcomes() []string {
	return []string{rowDelivered, rowRetry, rowDead, rowCoalesced, rowAccepted, rowNotSent}
}

func finalOutcome(o string) bool {
	return o == rowDelivered || o == rowCoalesced || o == rowDead
}

// attemptRecord is one request to the sink and what became of its rows.
type attemptRecord struct {
	batchID    string
	attempt    int
	started    time.Time
	finished   time.Time
	outcome    string // one of AttemptOutcomes
	statusCode int
	err        string
	replayID   string
	rows       []rowRecord
	dead       []rowRecord
}

type rowRecord struct {
	seq        int64
	eventID    string
	attempt    int
	outcome    string
	statusCode int
	err        string
	next       time.Time
	first      time.Time
	jobID      string
	replayID   string
}

func (a *attemptRecord) counts() (delivered, retried, failed int) {
	for _, r := range a.rows {
		switch r.outcome {
		case rowDelivered, rowCoalesced, rowAccepted:
			delivered++
		case rowRetry, rowNotSent:
			retried++
		case rowDead:
			failed++
		}
	}
	return
}

var deliveryRowsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "delivery_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "sink", Type: arrow.BinaryTypes.String},
	{Name: "seq", Type: arrow.PrimitiveTypes.Int64},
	{Name: "event_id", Type: arrow.BinaryTypes.String},
	{Name: "attempt", Type: arrow.PrimitiveTypes.Int32},
	{Name: "outcome", Type: arrow.BinaryTypes.String},
	{Name: "status_code", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "error", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "next_attempt_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "first_attempt_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "job_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "replay_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "recorded_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
}, nil)

// inflightBatch is a batch about to be sent, as journaled in sink_state.
type inflightBatch struct {
	id   string
	seqs []int64
}

// persist records attempts and the new cursor in one writer transaction, and journals next
// (when not nil) in the same one.
func (l *loop) persist(ctx context.Context, recs []*attemptRecord, cursor int64, next *inflightBatch) error {
	if len(recs) == 0 && cursor == l.savedCursor && next == nil {
		return nil
	}
	// The in-flight batch is cleared once its attempt is recorded, or replaced by next.
	journal := l.journaled
	for _, a := range recs {
		if journal != nil && a.batchID == journal.id {
			journal = nil
		}
	}
	if next != nil {
		journal = next
	}
	now := l.e.now()
	err := l.e.store.Apply(ctx, func(ctx context.Context, tx *store.Tx) error {
		for _, a := range recs {
			d, r, f := a.counts()
			var id int64
			if err := tx.Query(ctx, `INSERT INTO deliveries (id, sink, batch_id, attempt, rows, started_at, finished_at, outcome, status_code, error, delivered, retried, failed, replay_id)
				VALUES (nextval('delivery_id'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				[]any{l.name, a.batchID, a.attempt, len(a.rows), a.started.UTC(), a.finished.UTC(), a.outcome, nullInt(a.statusCode), nullStr(a.err), d, r, f, nullStr(a.replayID)},
				func(row []driver.Value) error {
					id = row[0].(int64)
					return nil
				}); err != nil {
				return fmt.Errorf("insert delivery: %w", err)
			}
			rec := l.rowsRecord(id, a.rows, now)
			err := tx.InsertRecord(ctx, "delivery_rows", rec)
			rec.Release()
			if err != nil {
				return fmt.Errorf("insert delivery rows: %w", err)
			}
			for _, dl := range a.dead {
				if _, err := tx.Exec(ctx, `INSERT INTO dead_letters (sink, seq, event_id, attempts, first_attempt_at, last_attempt_at, status_code, error, delivery_id, dead_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					l.name, dl.seq, dl.eventID, dl.attempt, nullTime(dl.first), a.finished.UTC(), nullInt(dl.statusCode), dl.err, id, now.UTC()); err != nil {
					return fmt.Errorf("insert dead letter: %w", err)
				}
			}
		}
		if cursor != l.savedCursor || journal != l.journaled {
			var batch, seqs, at any
			if journal != nil {
				batch, seqs, at = journal.id, joinSeqs(journal.seqs, ","), now.UTC()
			}
			if _, err := tx.Exec(ctx, "UPDATE sink_state SET cursor_seq = ?, updated_at = ?, inflight_batch = ?, inflight_seqs = ?, inflight_at = ? WHERE sink = ?",
				cursor, now.UTC(), batch, seqs, at, l.name); err != nil {
				return fmt.Errorf("update cursor and in-flight batch: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delivery: %s: record attempts: %w", l.name, err)
	}
	l.savedCursor, l.journaled = cursor, journal
	return nil
}

func (l *loop) rowsRecord(id int64, rows []rowRecord, now time.Time) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.NewGoAllocator(), deliveryRowsSchema)
	defer b.Release()
	ts := func(i int, t time.Time) {
		tb := b.Field(i).(*array.TimestampBuilder)
		if t.IsZero() {
			tb.AppendNull()
		} else {
			tb.Append(arrow.Timestamp(t.UnixMicro()))
		}
	}
	str := func(i int, s string) {
		sb := b.Field(i).(*array.StringBuilder)
		if s == "" {
			sb.AppendNull()
		} else {
			sb.Append(s)
		}
	}
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.StringBuilder).Append(l.name)
		b.Field(2).(*array.Int64Builder).Append(r.seq)
		b.Field(3).(*array.StringBuilder).Append(r.eventID)
		b.Field(4).(*array.Int32Builder).Append(int32(r.attempt))
		b.Field(5).(*array.StringBuilder).Append(r.outcome)
		if r.statusCode != 0 {
			b.Field(6).(*array.Int32Builder).Append(int32(r.statusCode))
		} else {
			b.Field(6).(*array.Int32Builder).AppendNull()
		}
		str(7, r.err)
		ts(8, r.next)
		ts(9, r.first)
		str(10, r.jobID)
		str(11, r.replayID)
		ts(12, now)
	}
	return b.NewRecordBatch()
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// resumeInfo is what the history says about a row above the cursor.
type resumeInfo struct {
	outcome  string
	attempt  int
	next     time.Time
	first    time.Time
	jobID    string
	statusCd int
	err      string
}

// loadState reads the sink's cursor (creating it from the start option on first run), pause
// state, and the latest outcome of every row above the cursor.
func (l *loop) loadState(ctx context.Context) error {
	db := l.e.store.DB()
	var paused bool
	var reason, journaledID, inflightSeqs sql.NullString
	err := db.QueryRowContext(ctx, "SELECT cursor_seq, paused, paused_reason, inflight_batch, inflight_seqs FROM sink_state WHERE sink = ?", l.name).
		Scan(&l.cursor, &paused, &reason, &journaledID, &inflightSeqs)
	if errors.Is(err, sql.ErrNoRows) {
		if l.cursor, err = l.startCursor(ctx); err != nil {
			return err
		}
		now := l.e.now().UTC()
		if err := l.e.store.Apply(ctx, func(ctx context.Context, tx *store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO sink_state (sink, cursor_seq, created_at, updated_at) VALUES (?, ?, ?, ?)", l.name, l.cursor, now, now)
			return err
		}); err != nil {
			return fmt.Errorf("delivery: %s: create sink state: %w", l.name, err)
		}
		l.e.log.Info("delivery: new sink", "sink", l.name, "start", l.opt.Start, "cursor", l.cursor)
	} else if err != nil {
		return fmt.Errorf("delivery: %s: read sink state: %w", l.name, err)
	}
	l.savedCursor, l.high = l.cursor, l.cursor
	l.paused, l.pausedReason = paused, reason.String
	rows, err := db.QueryContext(ctx, `SELECT seq, arg_max(outcome, delivery_id), max(attempt), arg_max(next_attempt_at, delivery_id),
			min(first_attempt_at), arg_max(job_id, delivery_id), arg_max(status_code, delivery_id), arg_max(error, delivery_id)
		FROM delivery_rows WHERE sink = ? AND seq > ? AND replay_id IS NULL GROUP BY seq`, l.name, l.cursor)
	if err != nil {
		return fmt.Errorf("delivery: %s: read history: %w", l.name, err)
	}
	defer rows.Close()
	l.resume = map[int64]resumeInfo{}
	for rows.Next() {
		var seq int64
		var ri resumeInfo
		var next, first sql.NullTime
		var job, errText sql.NullString
		var status sql.NullInt64
		if err := rows.Scan(&seq, &ri.outcome, &ri.attempt, &next, &first, &job, &status, &errText); err != nil {
			return fmt.Errorf("delivery: %s: read history: %w", l.name, err)
		}
		ri.next, ri.first, ri.jobID, ri.statusCd, ri.err = next.Time, first.Time, job.String, int(status.Int64), errText.String
		l.resume[seq] = ri
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delivery: %s: read history: %w", l.name, err)
	}
	if journaledID.Valid {
		l.journaled = &inflightBatch{id: journaledID.String}
	}
	for _, part := range strings.Split(inflightSeqs.String, ",") {
		if seq, err := strconv.ParseInt(part, 10, 64); err == nil && seq > l.cursor && !finalOutcome(l.resume[seq].outcome) {
			if l.inflight == nil {
				l.inflight = map[int64]bool{}
			}
			l.inflight[seq] = true
			l.inflightHigh = max(l.inflightHigh, seq)
		}
	}
	var today int
	day := l.e.now().UTC().Truncate(24 * time.Hour)
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM deliveries WHERE sink = ? AND started_at >= ? AND outcome <> 'sink_error'", l.name, day).Scan(&today); err != nil {
		// Starting from 0 could send past the destination's daily quota.
		return fmt.Errorf("delivery: %s: count today's requests: %w", l.name, err)
	}
	l.limiter.seedDaily(l.e.now(), today)
	return l.loadReplays(ctx)
}

// startCursor places a new sink: latest (default) starts after everything stored now,
// earliest before the first event, a time before the first event received at or after it.
func (l *loop) startCursor(ctx context.Context) (int64, error) {
	db := l.e.store.DB()
	var seq int64
	var err error
	switch start := l.opt.Start; start {
	case "", "latest":
		seq = l.e.store.StateSeq()
	case "earliest":
		seq = 0
	default:
		t, perr := time.Parse(time.RFC3339, start)
		if perr != nil {
			return 0, fmt.Errorf("delivery: %s: start %q: use latest, earliest or an RFC 3339 time", l.name, start)
		}
		err = db.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM events WHERE received_at < ?", t.UTC()).Scan(&seq)
	}
	if err != nil {
		return 0, fmt.Errorf("delivery: %s: place new sink: %w", l.name, err)
	}
	return seq, nil
}

// loadReplays puts back the rows of replays a restart interrupted.
func (l *loop) loadReplays(ctx context.Context) error {
	db := l.e.store.DB()
	rows, err := db.QueryContext(ctx, `SELECT r.id, r.description, unnest(r.seqs) AS seq FROM replays r WHERE r.sink = ?`, l.name)
	if err != nil {
		return fmt.Errorf("delivery: %s: read replays: %w", l.name, err)
	}
	type item struct {
		id, desc string
		seq      int64
	}
	var items []item
	for rows.Next() {
		var it item
		if err := rows.Scan(&it.id, &it.desc, &it.seq); err != nil {
			rows.Close()
			return fmt.Errorf("delivery: %s: read replays: %w", l.name, err)
		}
		items = append(items, it)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("delivery: %s: read replays: %w", l.name, err)
	}
	done := map[string]map[int64]string{} // replay id → seq → final outcome
	drows, err := db.QueryContext(ctx, `SELECT replay_id, seq, outcome FROM delivery_rows WHERE sink = ? AND replay_id IS NOT NULL AND outcome IN ('delivered', 'coalesced', 'dead')`, l.name)
	if err != nil {
		return fmt.Errorf("delivery: %s: read replay progress: %w", l.name, err)
	}
	for drows.Next() {
		var id, outcome string
		var seq int64
		if err := drows.Scan(&id, &seq, &outcome); err != nil {
			drows.Close()
			return fmt.Errorf("delivery: %s: read replay progress: %w", l.name, err)
		}
		if done[id] == nil {
			done[id] = map[int64]string{}
		}
		done[id][seq] = outcome
	}
	err = drows.Err()
	drows.Close()
	if err != nil {
		return fmt.Errorf("delivery: %s: read replay progress: %w", l.name, err)
	}
	for _, it := range items {
		p := l.replays[it.id]
		if p == nil {
			p = &replayProgress{ID: it.id, Sink: l.name, Description: it.desc}
			l.replays[it.id] = p
		}
		p.Total++
		if o, ok := done[it.id][it.seq]; ok {
			p.count(o)
			continue
		}
		l.replayQueue = append(l.replayQueue, replayItem{id: it.id, seq: it.seq})
	}
	return nil
}
