package delivery

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbridge/hookbridge/connector/schedule"
	"github.com/hookbridge/hookbridge/connector/store"
	"github.com/hookbridge/hookbridge/schemas"
)

// SinkOptions configure one sink's delivery.
type SinkOptions struct {
	Name string
	// Plugin names the plugin, for status output.
	Plugin string
	Sink   Sink
	// Events lists the event types delivered (default: the documented types except Test).
	Events []string
	// Columns are the normalised columns the sink receives, besides seq, event_id and
	// event_type which it always gets.
	Columns []string
	// KeyColumn orders rows: rows sharing it are sent one after the other, never in one
	// request (default subscription_id; CRMs use their destination key, email_key).
	KeyColumn string
	// Coalesce sends only the latest row of a key (older ones are recorded as coalesced):
	// right for destinations that upsert the subscription's current state by KeyColumn.
	// Without it every row is sent, oldest first.
	Coalesce bool
	Trigger  schedule.Trigger
	// Start places a new sink: latest (default), earliest, or an RFC 3339 time.
	Start string
	// BatchRows bounds the rows of one request (default 100).
	BatchRows int
	// RateLimit: at most Requests per rolling Per, and Daily per UTC day (0: no limit).
	Requests int
	Per      time.Duration
	Daily    int
	Retry    RetryPolicy
	// Timeout bounds one Write or Poll (default 2m).
	Timeout time.Duration
	// PollInterval is how often accepted asynchronous rows are polled (default 5s).
	PollInterval time.Duration
}

// Options configure an Engine.
type Options struct {
	Store      *store.Store
	Sinks      []SinkOptions
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now and After are the clock (default time.Now and time.After).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// Engine runs one delivery loop per sink.
type Engine struct {
	store *store.Store
	log   *slog.Logger
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	loops map[string]*loop
	order []string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// DefaultEvents are delivered when a sink names none: every documented type except Test.
var DefaultEvents = []string{
	string(schemas.Subscribe), string(schemas.Unsubscribe), string(schemas.SubscriptionDetailsUpdated),
	string(schemas.SubscriptionEventAdded), string(schemas.SubscriptionEventUpdated),
	string(schemas.SubscriptionEventRemoved), string(schemas.SubscriptionEventDeleted),
}

// New checks the sinks' options and prepares their loops.
func New(opts Options) (*Engine, error) {
	e := &Engine{store: opts.Store, log: opts.Logger, now: opts.Now, after: opts.After, loops: map[string]*loop{}}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.after == nil {
		e.after = time.After
	}
	m := newMetrics(opts.Registerer)
	for _, so := range opts.Sinks {
		if _, dup := e.loops[so.Name]; dup {
			return nil, fmt.Errorf("delivery: sink %q configured twice", so.Name)
		}
		l, err := newLoop(e, so, m)
		if err != nil {
			return nil, err
		}
		e.loops[so.Name] = l
		e.order = append(e.order, so.Name)
	}
	return e, nil
}

func newLoop(e *Engine, so SinkOptions, m *metrics) (*loop, error) {
	if so.Sink == nil {
		return nil, fmt.Errorf("delivery: sink %q has no sink", so.Name)
	}
	if len(so.Events) == 0 {
		so.Events = DefaultEvents
	}
	if so.KeyColumn == "" {
		so.KeyColumn = "subscription_id"
	}
	if so.BatchRows <= 0 {
		so.BatchRows = 100
	}
	if so.Timeout <= 0 {
		so.Timeout = 2 * time.Minute
	}
	if so.PollInterval <= 0 {
		so.PollInterval = 5 * time.Second
	}
	if so.Trigger.Spec == "" {
		so.Trigger = schedule.Trigger{Realtime: true, Spec: "realtime"}
	}
	send := []string{"seq", "event_id", "event_type"}
	for _, c := range so.Columns {
		if !slices.Contains(send, c) {
			send = append(send, c)
		}
	}
	sendSchema, err := schemas.SchemaFor(send)
	if err != nil {
		return nil, fmt.Errorf("delivery: sink %q: %w", so.Name, err)
	}
	if _, ok := schemas.LookupColumn(so.KeyColumn); !ok {
		return nil, fmt.Errorf("delivery: sink %q: key column %q is not a normalised column", so.Name, so.KeyColumn)
	}
	read := append([]string(nil), send...)
	for _, c := range []string{so.KeyColumn, "received_at"} {
		if !slices.Contains(read, c) {
			read = append(read, c)
		}
	}
	for _, t := range so.Events {
		if strings.ContainsAny(t, "'\\.") {
			return nil, fmt.Errorf("delivery: sink %q: event type %q", so.Name, t)
		}
	}
	seed := make([]byte, 16)
	rand.Read(seed)
	return &loop{
		e: e, name: so.Name, opt: so,
		policy:     so.Retry.withDefaults(),
		limiter:    newLimiter(so.Requests, so.Per, so.Daily),
		keyCol:     so.KeyColumn,
		readCols:   read,
		sendSchema: sendSchema,
		typeFilter: typeFilterSQL(so.Events),
		rnd:        mrand.New(mrand.NewPCG(uint64FromBytes(seed[:8]), uint64FromBytes(seed[8:]))),
		m:          m.forSink(so.Name),
		keys:       map[string]*pendingKey{},
		ahead:      map[int64]aheadRow{},
		replays:    map[string]*replayProgress{},
		cmds:       make(chan func(context.Context)),
	}, nil
}

func uint64FromBytes(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// Start loads every sink's state and starts the loops.
func (e *Engine) Start(ctx context.Context) error {
	for _, name := range e.order {
		if err := e.loops[name].loadState(ctx); err != nil {
			return err
		}
	}
	ctx, e.cancel = context.WithCancel(context.Background())
	for _, name := range e.order {
		l := e.loops[name]
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.run(ctx)
		}()
	}
	return nil
}

// Stop ends the loops; a batch in flight is abandoned unrecorded and sent again after the
// next start.
func (e *Engine) Stop() {
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
}

// ErrNoSuchSink is returned for a sink name that is not configured.
var ErrNoSuchSink = errors.New("delivery: no such sink")

// do runs f on sink's loop goroutine and returns its error.
func (e *Engine) do(ctx context.Context, sink string, f func(l *loop) error) error {
	l, ok := e.loops[sink]
	if !ok {
		return fmt.Errorf("%w: %q (configured: %s)", ErrNoSuchSink, sink, strings.Join(e.order, ", "))
	}
	done := make(chan error, 1)
	// The status report is refreshed after every command and before its caller hears back,
	// so what a command changed (a pause, say) shows in status at once.
	select {
	case l.cmds <- func(lctx context.Context) { err := f(l); l.refreshStatus(lctx); done <- err }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pause stops a sink until Resume; it survives restarts. Rows wait behind its cursor.
func (e *Engine) Pause(ctx context.Context, sink, reason string) error {
	if reason == "" {
		reason = "paused by an operator"
	}
	return e.do(ctx, sink, func(l *loop) error {
		if err := l.persistPause(ctx, true, reason); err != nil {
			return err
		}
		l.paused, l.pausedReason = true, reason
		e.log.Info("delivery: sink paused", "sink", sink, "reason", reason)
		return nil
	})
}

// Resume restarts a paused or backing-off sink at once.
func (e *Engine) Resume(ctx context.Context, sink string) error {
	return e.do(ctx, sink, func(l *loop) error {
		if err := l.persistPause(ctx, false, ""); err != nil {
			return err
		}
		l.paused, l.pausedReason = false, ""
		l.backoffUntil, l.sinkErrors = time.Time{}, 0
		e.log.Info("delivery: sink resumed", "sink", sink)
		return nil
	})
}

func (l *loop) persistPause(ctx context.Context, paused bool, reason string) error {
	now := l.e.now().UTC()
	var pausedAt time.Time
	if paused {
		pausedAt = now
	}
	return l.e.store.Apply(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE sink_state SET paused = ?, paused_reason = ?, paused_at = ?, updated_at = ? WHERE sink = ?",
			paused, nullStr(reason), nullTime(pausedAt), now, l.name)
		return err
	})
}

// Selection chooses the rows a replay re-sends.
type Selection struct {
	// EventID re-sends one event.
	EventID string
	// Since and Until re-send the events received in [Since, Until) (Until zero: now).
	Since, Until time.Time
	// DeadLetters re-sends the sink's unresolved dead letters.
	DeadLetters bool
}

// Validate refuses a selection that names no rows or more than one kind of them, and a
// range that ends before it starts.
func (s Selection) Validate() error {
	n := 0
	for _, set := range []bool{s.EventID != "", !s.Since.IsZero(), s.DeadLetters} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("name one of an event id, a start time (with an optional end) or the dead letters")
	}
	if !s.Until.IsZero() && !s.Until.After(s.Since) {
		return fmt.Errorf("the end (%s) is not after the start (%s): the range is empty", s.Until.Format(time.RFC3339), s.Since.Format(time.RFC3339))
	}
	return nil
}

func (s Selection) describe() string {
	switch {
	case s.EventID != "":
		return "event " + s.EventID
	case s.DeadLetters:
		return "dead letters"
	case !s.Until.IsZero():
		return fmt.Sprintf("received %s to %s", s.Since.UTC().Format(time.RFC3339), s.Until.UTC().Format(time.RFC3339))
	}
	return "received since " + s.Since.UTC().Format(time.RFC3339)
}

// replayProgress is a replay's state, reported to the admin API.
type replayProgress struct {
	ID          string `json:"id"`
	Sink        string `json:"sink"`
	Description string `json:"description"`
	Total       int    `json:"total"`
	// Done counts the rows that reached a final outcome: Delivered (or coalesced into a
	// newer row of their key) or Failed (refused again and dead-lettered).
	Done      int `json:"done"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
}

// count adds a row that reached final outcome o.
func (p *replayProgress) count(o string) {
	p.Done++
	if o == rowDead {
		p.Failed++
	} else {
		p.Delivered++
	}
}

// ReplayStatus is a snapshot of a replay's progress.
type ReplayStatus = replayProgress

// Replay re-sends the selected rows to sink, joined with current state (so a replayed
// Subscribe of an ended subscription arrives as unsubscribed). Rows of event types the sink
// does not take are left out. It returns once the replay is recorded; progress is reported by
// ReplayProgress.
func (e *Engine) Replay(ctx context.Context, sink string, sel Selection) (ReplayStatus, error) {
	l, ok := e.loops[sink]
	if !ok {
		return ReplayStatus{}, fmt.Errorf("%w: %q", ErrNoSuchSink, sink)
	}
	seqs, err := e.selectReplay(ctx, l, sel)
	if err != nil {
		return ReplayStatus{}, err
	}
	if len(seqs) == 0 {
		return ReplayStatus{}, fmt.Errorf("delivery: replay %s to %s: nothing matches (events of types %s)", sel.describe(), sink, strings.Join(l.opt.Events, ", "))
	}
	id := newReplayID(e.now())
	p := replayProgress{ID: id, Sink: sink, Description: sel.describe(), Total: len(seqs)}
	if err := e.store.Apply(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO replays (id, sink, requested_at, description, seqs) VALUES (?, ?, ?, ?, ?::BIGINT[])", id, sink, e.now().UTC(), p.Description, int64List(seqs))
		return err
	}); err != nil {
		return ReplayStatus{}, fmt.Errorf("delivery: record replay: %w", err)
	}
	err = e.do(ctx, sink, func(l *loop) error {
		pp := p
		l.replays[id] = &pp
		for _, s := range seqs {
			l.replayQueue = append(l.replayQueue, replayItem{id: id, seq: s})
		}
		return nil
	})
	e.log.Info("delivery: replay requested", "sink", sink, "replay", id, "rows", len(seqs), "what", p.Description)
	return p, err
}

// ReplayProgress reports a replay's progress.
func (e *Engine) ReplayProgress(ctx context.Context, sink, id string) (ReplayStatus, error) {
	var out ReplayStatus
	err := e.do(ctx, sink, func(l *loop) error {
		p := l.replays[id]
		if p == nil {
			return fmt.Errorf("delivery: no replay %q on sink %s", id, sink)
		}
		out = *p
		return nil
	})
	return out, err
}

func (e *Engine) selectReplay(ctx context.Context, l *loop, sel Selection) ([]int64, error) {
	var q string
	var args []any
	switch {
	case sel.EventID != "":
		q, args = "SELECT e.seq FROM events e WHERE e.event_id = ?"+l.typeFilter, []any{strings.ToLower(strings.TrimSpace(sel.EventID))}
	case sel.DeadLetters:
		q, args = "SELECT d.seq FROM ("+deadLetterEntries(true)+") d WHERE NOT d.resolved ORDER BY d.seq", []any{l.name}
	case !sel.Since.IsZero():
		until := sel.Until
		if until.IsZero() {
			until = e.now()
		}
		q, args = "SELECT e.seq FROM events e WHERE e.received_at >= ? AND e.received_at < ?"+l.typeFilter+" ORDER BY e.seq", []any{sel.Since.UTC(), until.UTC()}
	default:
		return nil, errors.New("delivery: replay needs an event id, a time range or dead letters")
	}
	rows, err := e.store.DB().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery: select replay rows: %w", err)
	}
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s <= e.store.StateSeq() {
			seqs = append(seqs, s)
		}
	}
	return seqs, rows.Err()
}

func newReplayID(now time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "rp_" + now.UTC().Format("20060102T150405") + "_" + hex.EncodeToString(b)
}

// int64List renders seqs as a DuckDB list literal for a BIGINT[] parameter.
func int64List(seqs []int64) string { return "[" + joinSeqs(seqs, ", ") + "]" }

// joinSeqs writes seqs as decimal numbers separated by sep.
func joinSeqs(seqs []int64, sep string) string {
	parts := make([]string, len(seqs))
	for i, s := range seqs {
		parts[i] = strconv.FormatInt(s, 10)
	}
	return strings.Join(parts, sep)
}

// SinkStatus is one sink's state for `hookbridge status`.
type SinkStatus struct {
	Name          string    `json:"name"`
	Plugin        string    `json:"plugin"`
	Trigger       string    `json:"trigger"`
	State         string    `json:"state"` // running, backing_off, paused
	PausedReason  string    `json:"paused_reason,omitempty"`
	BackoffUntil  time.Time `json:"backoff_until,omitzero"`
	Cursor        int64     `json:"cursor"`
	StoredSeq     int64     `json:"stored_seq"`
	PendingRows   int       `json:"pending_rows"`
	DeadLetters   int       `json:"dead_letters"`
	LagSeconds    float64   `json:"lag_seconds"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	NextRetryAt   time.Time `json:"next_retry_at,omitzero"`
	// AsOf is when the loop reported this: now, or up to refreshEvery ago when the loop was
	// in the middle of a batch and answered from its last report.
	AsOf time.Time `json:"as_of"`
}

// statusWait is how long Status waits for a busy loop before it answers from the loop's last
// report (refreshed at least every refreshEvery while it works, and whenever it waits), so a
// page or `hookbridge status` never waits behind a slow batch.
const statusWait = 20 * time.Millisecond

// Status reports every sink's state, lag and last error.
func (e *Engine) Status(ctx context.Context) ([]SinkStatus, error) {
	var out []SinkStatus
	for _, name := range e.order {
		st, err := e.sinkStatus(ctx, name)
		if err != nil {
			return nil, err
		}
		var dead sql.NullInt64
		err = e.store.DB().QueryRowContext(ctx, "SELECT count(*) FROM ("+deadLetterEntries(true)+") d WHERE NOT d.resolved", name).Scan(&dead)
		if err != nil {
			return nil, fmt.Errorf("delivery: %s: count dead letters: %w", name, err)
		}
		st.DeadLetters = int(dead.Int64)
		out = append(out, st)
	}
	return out, nil
}

// sinkStatus asks the sink's loop, or takes its last report when the loop is busy.
func (e *Engine) sinkStatus(ctx context.Context, name string) (SinkStatus, error) {
	// A command, even an empty one, makes the loop refresh its report before it answers.
	ask := func(ctx context.Context) error { return e.do(ctx, name, func(*loop) error { return nil }) }
	wctx, cancel := context.WithTimeout(ctx, statusWait)
	err := ask(wctx)
	cancel()
	if err == nil {
		return *e.loops[name].report.Load(), nil
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		if st := e.loops[name].report.Load(); st != nil {
			return *st, nil
		}
		if err = ask(ctx); err == nil { // no report yet: wait for the loop
			return *e.loops[name].report.Load(), nil
		}
	}
	return SinkStatus{}, err
}

// Sinks lists the configured sink names in configuration order.
func (e *Engine) Sinks() []string { return append([]string(nil), e.order...) }

func (l *loop) status(ctx context.Context) SinkStatus {
	now := l.e.now()
	st := SinkStatus{Name: l.name, Plugin: l.opt.Plugin, Trigger: l.opt.Trigger.Spec, State: "running", Cursor: l.cursor,
		StoredSeq: l.e.store.StateSeq(), LastError: l.lastError, LastErrorAt: l.lastErrorAt, LastSuccessAt: l.lastSuccessAt, AsOf: now}
	switch {
	case l.paused:
		st.State, st.PausedReason = "paused", l.pausedReason
	case now.Before(l.backoffUntil):
		st.State, st.BackoffUntil = "backing_off", l.backoffUntil
	}
	for _, k := range l.keys {
		st.PendingRows += len(k.seqs)
		if !k.next.IsZero() && (st.NextRetryAt.IsZero() || k.next.Before(st.NextRetryAt)) {
			st.NextRetryAt = k.next
		}
	}
	st.LagSeconds = l.lag(ctx, now).Seconds()
	return st
}

// lag is the age of the oldest row this sink has not finished with.
func (l *loop) lag(ctx context.Context, now time.Time) time.Duration {
	var oldest time.Time
	for _, k := range l.keys {
		if k.seqs[0] > l.cursor && (oldest.IsZero() || k.received.Before(oldest)) {
			oldest = k.received
		}
	}
	if l.high < l.tickedUpTo || l.high < l.e.store.StateSeq() {
		var t sql.NullTime
		err := l.e.store.DB().QueryRowContext(ctx, "SELECT min(received_at) FROM events WHERE seq > ?", l.high).Scan(&t)
		switch {
		case err != nil:
			// The figure is for status and a gauge: the last one read stands in for it.
			l.e.log.Debug("delivery: read the oldest waiting row", "sink", l.name, "err", err)
		case t.Valid:
			l.oldestStored = t.Time
		default:
			l.oldestStored = time.Time{}
		}
		if !l.oldestStored.IsZero() && (oldest.IsZero() || l.oldestStored.Before(oldest)) {
			oldest = l.oldestStored
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return now.Sub(oldest)
}

// refreshStatus takes the loop's status once and serves it twice: as the report Status
// answers from while the loop is busy, and as the sink's gauges (pending rows, lag, state).
func (l *loop) refreshStatus(ctx context.Context) {
	st := l.status(ctx)
	l.report.Store(&st)
	l.m.pending.Set(float64(st.PendingRows))
	l.m.lag.Set(st.LagSeconds)
	state := 0.0 // running
	switch st.State {
	case "backing_off":
		state = 1
	case "paused":
		state = 2
	}
	l.m.state.Set(state)
	l.refreshedAt = st.AsOf
}

// refreshEvery is how often a busy loop refreshes its status report and gauges (each refresh
// walks every pending key); an idle one refreshes them before it waits.
const refreshEvery = 250 * time.Millisecond
