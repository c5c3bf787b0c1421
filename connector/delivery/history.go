package delivery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Attempt is one request to a sink, as the notification history shows it.
type Attempt struct {
	ID         int64     `json:"id"`
	Sink       string    `json:"sink"`
	BatchID    string    `json:"batch_id"`
	Attempt    int       `json:"attempt"`
	Rows       int       `json:"rows"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Outcome    string    `json:"outcome"`
	StatusCode int       `json:"status_code,omitempty"` // the request's answer, else its first failed row's
	Error      string    `json:"error,omitempty"`       // the request's error, else its first failed row's
	Delivered  int       `json:"delivered"`
	Retried    int       `json:"retried"`
	Failed     int       `json:"failed"`
	// ReplayID names the replay whose rows the attempt carried (the first, when it carried
	// rows of several); live rows of other keys may share the batch.
	ReplayID string `json:"replay_id,omitempty"`
	// Row is the matching row's outcome when the history is searched by event id.
	Row *RowOutcome `json:"row,omitempty"`
}

// RowOutcome is what one attempt did to one row.
type RowOutcome struct {
	Seq           int64      `json:"seq"`
	EventID       string     `json:"event_id"`
	Attempt       int        `json:"attempt"`
	Outcome       string     `json:"outcome"`
	StatusCode    int        `json:"status_code,omitempty"`
	Error         string     `json:"error,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	JobID         string     `json:"job_id,omitempty"`
}

// HistoryFilter selects attempts. After is the keyset cursor: the smallest id already seen.
type HistoryFilter struct {
	Sink    string
	Outcome string
	// Replays keeps only the attempts that carried replayed rows.
	Replays bool
	EventID string
	Since   time.Time
	Until   time.Time
	After   int64
	Limit   int
}

// Page is one page of results; Next is the cursor of the following page ("" at the end).
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// History lists attempts, newest first. With EventID it lists the attempts that carried that
// event, each with the event's row outcome (Outcome then filters the row outcome).
func (e *Engine) History(ctx context.Context, f HistoryFilter) (Page[Attempt], error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.Sink != "" {
		add("d.sink = ?", f.Sink)
	}
	if f.After > 0 {
		add("d.id < ?", f.After)
	}
	if f.Replays {
		where = append(where, "d.replay_id IS NOT NULL")
	}
	if !f.Since.IsZero() {
		add("d.started_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		add("d.started_at < ?", f.Until.UTC())
	}
	cols := "d.id, d.sink, d.batch_id, d.attempt, d.rows, d.started_at, d.finished_at, d.outcome, d.status_code, d.error, d.delivered, d.retried, d.failed, d.replay_id"
	from := "deliveries d"
	if f.EventID != "" {
		cols += ", r.seq, r.event_id, r.attempt, r.outcome, r.status_code, r.error, r.next_attempt_at, r.job_id"
		from = "delivery_rows r JOIN deliveries d ON d.id = r.delivery_id"
		id := strings.ToLower(strings.TrimSpace(f.EventID))
		// The event's seq (a key lookup) lets DuckDB skip the row groups of delivery_rows that
		// hold other seqs, where event_id alone reads the whole column.
		var seq int64
		switch err := e.store.DB().QueryRowContext(ctx, "SELECT seq FROM events WHERE event_id = ?", id).Scan(&seq); {
		case err == nil:
			add("r.seq = ?", seq)
		case !errors.Is(err, sql.ErrNoRows):
			return Page[Attempt]{}, fmt.Errorf("delivery: history: %w", err)
		}
		add("r.event_id = ?", id)
		if f.Outcome != "" {
			add("r.outcome = ?", f.Outcome)
		}
	} else if f.Outcome != "" {
		add("d.outcome = ?", f.Outcome)
	}
	q := "SELECT " + cols + " FROM " + from
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY d.id DESC LIMIT " + strconv.Itoa(f.Limit+1)
	rows, err := e.store.DB().QueryContext(ctx, q, args...)
	if err != nil {
		return Page[Attempt]{}, fmt.Errorf("delivery: history: %w", err)
	}
	defer rows.Close()
	var page Page[Attempt]
	for rows.Next() {
		var a Attempt
		var code sql.NullInt64
		var errText, replay sql.NullString
		dest := []any{&a.ID, &a.Sink, &a.BatchID, &a.Attempt, &a.Rows, &a.StartedAt, &a.FinishedAt, &a.Outcome, &code, &errText, &a.Delivered, &a.Retried, &a.Failed, &replay}
		var ro RowOutcome
		var rcode sql.NullInt64
		var rerr, job sql.NullString
		var next sql.NullTime
		if f.EventID != "" {
			dest = append(dest, &ro.Seq, &ro.EventID, &ro.Attempt, &ro.Outcome, &rcode, &rerr, &next, &job)
		}
		if err := rows.Scan(dest...); err != nil {
			return Page[Attempt]{}, fmt.Errorf("delivery: history: %w", err)
		}
		a.StatusCode, a.Error, a.ReplayID = int(code.Int64), errText.String, replay.String
		if f.EventID != "" {
			ro.StatusCode, ro.Error, ro.JobID = int(rcode.Int64), rerr.String, job.String
			if next.Valid {
				ro.NextAttemptAt = &next.Time
			}
			a.Row = &ro
		}
		page.Items = append(page.Items, a)
	}
	if err := rows.Err(); err != nil {
		return Page[Attempt]{}, fmt.Errorf("delivery: history: %w", err)
	}
	if len(page.Items) > f.Limit {
		page.Items = page.Items[:f.Limit]
		page.Next = strconv.FormatInt(page.Items[f.Limit-1].ID, 10)
	}
	if f.EventID == "" { // by event, each attempt shows that event's own row instead
		if err := e.withRowFailures(ctx, page.Items); err != nil {
			return Page[Attempt]{}, err
		}
	}
	return page, nil
}

// withRowFailures gives each attempt that failed rows without failing as a whole the status
// code and error of its first failed row. A destination that answers row by row (a webhook
// POST per row, a 207 of per-row results) leaves the attempt's own status_code and error
// empty: they are recorded only for answers to the whole request.
func (e *Engine) withRowFailures(ctx context.Context, items []Attempt) error {
	at := map[int64]*Attempt{}
	args := []any{rowRetry, rowDead, rowNotSent}
	var marks []string
	lo, hi := int64(0), int64(0)
	for i := range items {
		a := &items[i]
		if a.StatusCode != 0 || a.Error != "" || a.Retried+a.Failed == 0 {
			continue
		}
		if len(at) == 0 || a.ID < lo {
			lo = a.ID
		}
		hi = max(hi, a.ID)
		at[a.ID] = a
		args = append(args, a.ID)
		marks = append(marks, "?")
	}
	if len(at) == 0 {
		return nil
	}
	// The range lets DuckDB skip the row groups of other attempts (ids only grow).
	args = append(args, lo, hi)
	rows, err := e.store.DB().QueryContext(ctx, `SELECT delivery_id, status_code, error FROM delivery_rows
		WHERE outcome IN (?, ?, ?) AND (status_code IS NOT NULL OR error IS NOT NULL)
		AND delivery_id IN (`+strings.Join(marks, ", ")+`) AND delivery_id BETWEEN ? AND ?
		QUALIFY row_number() OVER (PARTITION BY delivery_id ORDER BY seq) = 1`, args...)
	if err != nil {
		return fmt.Errorf("delivery: history: failed rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var code sql.NullInt64
		var errText sql.NullString
		if err := rows.Scan(&id, &code, &errText); err != nil {
			return fmt.Errorf("delivery: history: failed rows: %w", err)
		}
		if a := at[id]; a != nil {
			a.StatusCode, a.Error = int(code.Int64), errText.String
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delivery: history: failed rows: %w", err)
	}
	return nil
}

// DeadLetter is a row a sink gave up on: one entry per sink and row, describing the latest
// time the sink gave up on it (a row replayed that fails again stays one entry).
type DeadLetter struct {
	Sink           string    `json:"sink"`
	Seq            int64     `json:"seq"`
	EventID        string    `json:"event_id"`
	EventType      string    `json:"event_type"`
	Attempts       int       `json:"attempts"`
	FirstAttemptAt time.Time `json:"first_attempt_at,omitzero"`
	LastAttemptAt  time.Time `json:"last_attempt_at"`
	StatusCode     int       `json:"status_code,omitempty"`
	Error          string    `json:"error"`
	DeliveryID     int64     `json:"delivery_id"`
	DeadAt         time.Time `json:"dead_at"`
	// Resolved is set once a later attempt (a replay) delivered the row.
	Resolved bool `json:"resolved"`
}

// DeadLetterFilter selects dead letters; After is the keyset cursor "delivery_id:seq".
type DeadLetterFilter struct {
	Sink  string
	All   bool // include resolved ones
	After string
	Limit int
}

// deadLetterEntries is the one definition of a sink's dead letters, read by the listing, the
// count in status and a replay of dead letters alike: one entry per (sink, seq) ever
// dead-lettered, the latest dead-lettering of it, with resolved set when a later attempt
// (by delivery id, which the writer hands out in order) delivered the row or coalesced it
// into a row sent in its place. With sinkOnly it takes the sink as its one parameter.
func deadLetterEntries(sinkOnly bool) string {
	where := ""
	if sinkOnly {
		where = " WHERE sink = ?"
	}
	return `SELECT d.*, EXISTS (SELECT 1 FROM delivery_rows r WHERE r.sink = d.sink AND r.seq = d.seq
			AND r.outcome IN ('delivered', 'coalesced') AND r.delivery_id > d.delivery_id) AS resolved
		FROM (SELECT * FROM dead_letters` + where + `
			QUALIFY row_number() OVER (PARTITION BY sink, seq ORDER BY delivery_id DESC) = 1) d`
}

// DeadLetters lists dead letters, one per sink and row, newest first.
func (e *Engine) DeadLetters(ctx context.Context, f DeadLetterFilter) (Page[DeadLetter], error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	q := `SELECT d.sink, d.seq, d.event_id, coalesce(e.event_type, ''), d.attempts, d.first_attempt_at, d.last_attempt_at, d.status_code, d.error, d.delivery_id, d.dead_at, d.resolved
		FROM (` + deadLetterEntries(f.Sink != "") + `) d LEFT JOIN events e ON e.seq = d.seq`
	var where []string
	var args []any
	if f.Sink != "" {
		args = append(args, f.Sink)
	}
	if !f.All {
		where = append(where, "NOT d.resolved")
	}
	if f.After != "" {
		var id, seq int64
		if _, err := fmt.Sscanf(f.After, "%d:%d", &id, &seq); err != nil {
			return Page[DeadLetter]{}, fmt.Errorf("delivery: dead letters: bad cursor %q", f.After)
		}
		// The cursor applies to the entries, after each row's latest dead-lettering is chosen.
		where = append(where, "(d.delivery_id < ? OR (d.delivery_id = ? AND d.seq < ?))")
		args = append(args, id, id, seq)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY d.delivery_id DESC, d.seq DESC LIMIT " + strconv.Itoa(f.Limit+1)
	rows, err := e.store.DB().QueryContext(ctx, q, args...)
	if err != nil {
		return Page[DeadLetter]{}, fmt.Errorf("delivery: dead letters: %w", err)
	}
	defer rows.Close()
	var page Page[DeadLetter]
	for rows.Next() {
		var d DeadLetter
		var first sql.NullTime
		var code sql.NullInt64
		if err := rows.Scan(&d.Sink, &d.Seq, &d.EventID, &d.EventType, &d.Attempts, &first, &d.LastAttemptAt, &code, &d.Error, &d.DeliveryID, &d.DeadAt, &d.Resolved); err != nil {
			return Page[DeadLetter]{}, fmt.Errorf("delivery: dead letters: %w", err)
		}
		d.FirstAttemptAt, d.StatusCode = first.Time, int(code.Int64)
		page.Items = append(page.Items, d)
	}
	if len(page.Items) > f.Limit {
		page.Items = page.Items[:f.Limit]
		last := page.Items[f.Limit-1]
		page.Next = fmt.Sprintf("%d:%d", last.DeliveryID, last.Seq)
	}
	if err := rows.Err(); err != nil {
		return Page[DeadLetter]{}, fmt.Errorf("delivery: dead letters: %w", err)
	}
	return page, nil
}
