package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/schedule"
	"github.com/hookbridge/hookbridge/connector/store"
	"github.com/hookbridge/hookbridge/schemas"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sent is one Write call as the scripted sink saw it.
type sent struct {
	id      string
	attempt int
	rows    []schemas.Row
}

// scriptSink answers Write with a script and remembers every call.
type scriptSink struct {
	mu     sync.Mutex
	calls  []sent
	script func(call int, b *Batch, rows []schemas.Row) (*Result, error)
	polls  func(jobs []Job) []RowResult
}

func (s *scriptSink) Write(ctx context.Context, b *Batch) (*Result, error) {
	rows, err := schemas.RowsFromRecord(b.Record)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	call := len(s.calls)
	s.calls = append(s.calls, sent{b.ID, b.Attempt, rows})
	script := s.script
	s.mu.Unlock()
	if script == nil {
		return &Result{}, nil
	}
	return script(call, b, rows)
}

func (s *scriptSink) snapshot() []sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// deliveredIDs lists the event ids of every row the sink received, in order.
func (s *scriptSink) receivedIDs() []string {
	var out []string
	for _, c := range s.snapshot() {
		for _, r := range c.rows {
			out = append(out, r.EventID)
		}
	}
	return out
}

type asyncSink struct {
	scriptSink
}

func (a *asyncSink) Poll(ctx context.Context, jobs []Job) ([]RowResult, error) {
	return a.polls(jobs), nil
}

type harness struct {
	t     testing.TB
	path  string
	store *store.Store
	eng   *Engine
	dec   *schemas.Decoder
	// log is the engine's logger (nil: quiet).
	log *slog.Logger
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "hb.duckdb")}
	h.openStore()
	var err error
	if h.dec, err = schemas.NewDecoder(nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) openStore() {
	st, err := store.Open(context.Background(), store.Options{Path: h.path, Logger: quiet})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store = st
	h.t.Cleanup(func() { st.Close() })
}

func (h *harness) start(sinks ...SinkOptions) {
	h.t.Helper()
	for i := range sinks {
		if sinks[i].Retry.Schedule == nil {
			sinks[i].Retry = RetryPolicy{Schedule: []time.Duration{30 * time.Millisecond, 60 * time.Millisecond}, MaxAttempts: 4, Jitter: 0.01}
		}
		if sinks[i].Start == "" {
			sinks[i].Start = "earliest"
		}
	}
	logger := quiet
	if h.log != nil {
		logger = h.log
	}
	eng, err := New(Options{Store: h.store, Sinks: sinks, Logger: logger})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
	h.t.Cleanup(eng.Stop)
}

// restart stops the engine and reopens the store, as a process restart would.
func (h *harness) restart(sinks ...SinkOptions) {
	h.eng.Stop()
	h.store.Close()
	h.openStore()
	h.start(sinks...)
}

func (h *harness) ingest(body string) int64 {
	h.t.Helper()
	ev, err := h.dec.Decode([]byte(body))
	if err != nil {
		h.t.Fatal(err)
	}
	r := ev.Row("rokt", time.Now())
	seq, _, err := h.store.Ingest(context.Background(), &r)
	if err != nil {
		h.t.Fatal(err)
	}
	return seq
}

func subscribe(id, sub, email string) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaWebApi","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"a",
		"subscription":{"calendarSubscriptionId":%q,"calendarId":"c","calendarTitle":"Fixtures","calendarCode":"fixtures","subscriberEmail":%q}}}`, id, sub, sub, email)
}

func unsubscribe(id, sub string) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Unsubscribe","eventDetails":{"actionType":"SubscriptionViaWebApi","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"a",
		"subscription":{"removedDateTimeUtc":"2025-09-29 07:42:11.318204","unsubscribeReasonText":"done"}}}`, id, sub)
}

func testEvent(id string) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Test","eventDetails":{}}`, id)
}

func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s", what)
}

func (h *harness) count(q string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.store.DB().QueryRow(q, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) cursor(sink string) int64 {
	var c int64
	h.store.DB().QueryRow("SELECT cursor_seq FROM sink_state WHERE sink = ?", sink).Scan(&c)
	return c
}

// gatedSink holds its first Write until release is closed; entered closes when it starts.
func gatedSink() (sink *scriptSink, entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	sink = &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		once.Do(func() { close(entered); <-release })
		return &Result{}, nil
	}}
	return sink, entered, release
}

// breakableSink fails, for good, the rows bad picks until fix is called.
func breakableSink(bad func(schemas.Row) bool) (sink *scriptSink, fix func()) {
	var mu sync.Mutex
	broken := true
	sink = &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		mu.Lock()
		defer mu.Unlock()
		res := &Result{}
		for _, r := range rows {
			if broken && bad(r) {
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Failed, Reason: "field zip missing"})
			}
		}
		return res, nil
	}}
	return sink, func() { mu.Lock(); broken = false; mu.Unlock() }
}

func crm(s Sink) SinkOptions {
	return SinkOptions{Name: "crm", Sink: s, Columns: []string{"email", "email_key", "subscription_id", "status", "unsubscribed_at"}, KeyColumn: "email_key", Coalesce: true}
}

func TestDeliversEveryRowAndRecordsIt(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{}
	h.start(SinkOptions{Name: "all", Sink: sink, Columns: []string{"email", "status"}})
	for i := 0; i < 25; i++ {
		h.ingest(subscribe(fmt.Sprintf("e%02d", i), fmt.Sprintf("s%02d", i), fmt.Sprintf("u%02d@example.com", i)))
	}
	h.ingest(testEvent("t1"))
	h.eventually("cursor past every row", func() bool { return h.cursor("all") == 26 })
	got := sink.receivedIDs()
	if len(got) != 25 || slices.Contains(got, "t1") {
		t.Errorf("received %d rows (%v); want the 25 Subscribes and not the Test event", len(got), got)
	}
	rows := sink.snapshot()[0].rows
	if rows[0].Status != schemas.StatusSubscribed || rows[0].Email == "" || rows[0].Seq == 0 {
		t.Errorf("rows carry state and mapped columns: %+v", rows[0])
	}
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE sink = 'all' AND outcome = 'delivered'"); n != 25 {
		t.Errorf("%d delivered row records", n)
	}
	if n := h.count("SELECT count(*) FROM deliveries WHERE sink = 'all' AND outcome = 'delivered'"); n < 1 {
		t.Errorf("%d delivery records", n)
	}
}

func TestTestEventsOnlyWhenNamed(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{}
	h.start(SinkOptions{Name: "tests", Sink: sink, Events: []string{"Test", "SubscriptionPaused"}})
	h.ingest(subscribe("e1", "s1", "a@example.com"))
	h.ingest(testEvent("t1"))
	h.ingest(`{"eventId":"u1","eventType":"SubscriptionPaused","eventDetails":{}}`)
	h.eventually("cursor at 3", func() bool { return h.cursor("tests") == 3 })
	if got := sink.receivedIDs(); !slices.Equal(got, []string{"t1", "u1"}) {
		t.Errorf("received %v, want the Test and the unknown-type event", got)
	}
}

func TestPerRowRetryAndDeadLetter(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		res := &Result{}
		for _, r := range rows {
			switch {
			case r.Email == "bad@example.com":
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Failed, Reason: "invalid email address", StatusCode: 400})
			case r.Email == "flaky@example.com" && b.Attempt < 3:
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Retry, Reason: "timeout", StatusCode: 503})
			}
		}
		return res, nil
	}}
	h.start(crm(sink))
	h.ingest(subscribe("ok1", "s1", "ok1@example.com"))
	h.ingest(subscribe("bad", "s2", "bad@example.com"))
	h.ingest(subscribe("flaky", "s3", "flaky@example.com"))
	h.ingest(subscribe("ok2", "s4", "ok2@example.com"))
	h.eventually("every row done", func() bool { return h.cursor("crm") == 4 })
	if n := h.count("SELECT count(*) FROM dead_letters WHERE sink = 'crm' AND event_id = 'bad' AND error = 'invalid email address' AND status_code = 400"); n != 1 {
		t.Errorf("bad row not dead-lettered with its reason (%d)", n)
	}
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE sink = 'crm' AND event_id = 'flaky'"); n != 3 {
		t.Errorf("flaky row history has %d attempts, want 3 (retry, retry, delivered)", n)
	}
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE sink = 'crm' AND event_id = 'flaky' AND outcome = 'retry' AND next_attempt_at IS NOT NULL AND status_code = 503"); n != 2 {
		t.Errorf("retry records: %d", n)
	}
	okCount := 0
	for _, id := range sink.receivedIDs() {
		if id == "ok1" || id == "ok2" {
			okCount++
		}
	}
	if okCount != 2 {
		t.Errorf("good rows sent %d times, want once each: one bad row must not hold back the others", okCount)
	}
}

func TestRetryPolicySpentDeadLetters(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		return &Result{Rows: []RowResult{{Seq: rows[0].Seq, Outcome: Retry, Reason: "still down", StatusCode: 502}}}, nil
	}}
	h.start(crm(sink))
	h.ingest(subscribe("doomed", "s1", "d@example.com"))
	h.eventually("dead letter", func() bool { return h.count("SELECT count(*) FROM dead_letters WHERE event_id = 'doomed'") == 1 })
	if n := len(sink.snapshot()); n != 4 {
		t.Errorf("%d attempts before dead-lettering, want max_attempts 4", n)
	}
	var attempts int
	var errText string
	h.store.DB().QueryRow("SELECT attempts, error FROM dead_letters WHERE event_id = 'doomed'").Scan(&attempts, &errText)
	if attempts != 4 || errText != "still down" {
		t.Errorf("dead letter attempts %d error %q", attempts, errText)
	}
	h.eventually("cursor past the dead row", func() bool { return h.cursor("crm") == 1 })
}

// TestOrderPerKey: while a subscription's Subscribe waits for a retry, its Unsubscribe waits
// too, other subscriptions flow on, and the retry sends the subscription's latest row once.
func TestOrderPerKeyAndCoalescing(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	var once sync.Once
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		res := &Result{}
		for _, r := range rows {
			if r.Email == "slow@example.com" && r.EventType == "Subscribe" {
				once.Do(func() { close(release) })
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Retry, Reason: "busy"})
			}
		}
		return res, nil
	}}
	opts := crm(sink)
	opts.Retry = RetryPolicy{Schedule: []time.Duration{300 * time.Millisecond}, MaxAttempts: 5, Jitter: 0.01}
	h.start(opts)
	h.ingest(subscribe("slow-sub", "s-slow", "slow@example.com"))
	<-release
	h.ingest(unsubscribe("slow-unsub", "s-slow"))
	h.ingest(subscribe("other", "s-other", "other@example.com"))
	h.eventually("other delivered while slow waits", func() bool { return slices.Contains(sink.receivedIDs(), "other") })
	if slices.Contains(sink.receivedIDs(), "slow-unsub") {
		t.Fatal("the Unsubscribe overtook its subscription's pending Subscribe")
	}
	h.eventually("slow resolved", func() bool { return h.cursor("crm") == 3 })
	calls := sink.snapshot()
	last := calls[len(calls)-1]
	for _, c := range calls {
		emails := map[string]int{}
		for _, r := range c.rows {
			emails[r.EmailKey]++
			if emails[r.EmailKey] > 1 {
				t.Errorf("batch %s carries two rows for %s", c.id, r.EmailKey)
			}
		}
	}
	var final *schemas.Row
	for i := range last.rows {
		if last.rows[i].EmailKey == "slow@example.com" {
			final = &last.rows[i]
		}
	}
	if final == nil || final.EventID != "slow-unsub" || final.Status != schemas.StatusUnsubscribed || final.Email != "slow@example.com" || final.UnsubscribedAt == nil {
		t.Fatalf("the retry must send the latest row (the Unsubscribe, with the email it ended): %+v", final)
	}
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE event_id = 'slow-sub' AND outcome = 'coalesced'"); n != 1 {
		t.Errorf("the superseded Subscribe is recorded as coalesced (%d)", n)
	}
}

// TestWholeBatchErrorShowsInStatus: a plugin that fails a batch as a whole (a plain error, a
// crash, a timeout) has its rows retried, and status shows why.
func TestWholeBatchErrorShowsInStatus(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		if call == 0 {
			return nil, errors.New("plugin process exited during write")
		}
		return &Result{}, nil
	}}
	h.start(crm(sink))
	h.ingest(subscribe("e1", "s1", "a@example.com"))
	h.eventually("the retry delivered", func() bool {
		return h.count("SELECT count(*) FROM delivery_rows WHERE event_id = 'e1' AND outcome = 'delivered'") == 1
	})
	st, err := h.eng.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st[0].LastError, "plugin process exited during write") {
		t.Errorf("status does not show the whole-batch error: %+v", st[0])
	}
}

func TestSinkWideErrorBacksOffWithoutChargingRows(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	down := true
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return nil, &SinkError{Err: errors.New("429 too many requests"), RetryAfter: 50 * time.Millisecond, StatusCode: 429}
		}
		return &Result{}, nil
	}}
	h.start(crm(sink))
	h.ingest(subscribe("e1", "s1", "a@example.com"))
	h.eventually("three sink errors", func() bool { return len(sink.snapshot()) >= 3 })
	st, err := h.eng.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st[0].LastError, "429") {
		t.Errorf("status shows no alert: %+v", st[0])
	}
	mu.Lock()
	down = false
	mu.Unlock()
	h.eventually("delivered", func() bool { return h.cursor("crm") == 1 })
	for _, c := range sink.snapshot() {
		if c.attempt != 1 {
			t.Errorf("sink-wide errors charged the row: attempt %d", c.attempt)
		}
	}
	if n := h.count("SELECT count(*) FROM deliveries WHERE sink = 'crm' AND outcome = 'sink_error' AND status_code = 429"); n < 3 {
		t.Errorf("history shows %d sink errors", n)
	}
}

func TestBatchRejectedIsSplitToFindTheBadRow(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		for _, r := range rows {
			if r.Email == "poison@example.com" {
				return nil, &BatchRejectedError{Reason: "malformed contact", StatusCode: 400}
			}
		}
		return &Result{}, nil
	}}
	h.start(crm(sink))
	// Hold the sink until all rows are stored, so they go as one batch.
	h.eng.Pause(context.Background(), "crm", "test")
	for i := 0; i < 8; i++ {
		email := fmt.Sprintf("u%d@example.com", i)
		if i == 5 {
			email = "poison@example.com"
		}
		h.ingest(subscribe(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i), email))
	}
	h.store.WaitState(context.Background(), 8)
	h.eng.Resume(context.Background(), "crm")
	h.eventually("all done", func() bool { return h.cursor("crm") == 8 })
	if n := h.count("SELECT count(*) FROM dead_letters WHERE event_id = 'e5' AND error LIKE '%malformed contact%'"); n != 1 {
		t.Errorf("the poison row was not dead-lettered alone (%d)", n)
	}
	if n := h.count("SELECT count(*) FROM dead_letters"); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE outcome = 'delivered'"); n != 7 {
		t.Errorf("%d rows delivered, want 7", n)
	}
}

func TestPauseSurvivesRestartAndResume(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	gone := true
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return nil, &SinkError{Err: errors.New("410 Gone"), Pause: true, StatusCode: 410}
		}
		return &Result{}, nil
	}}
	h.start(crm(sink))
	h.ingest(subscribe("e1", "s1", "a@example.com"))
	h.eventually("paused", func() bool { return h.count("SELECT count(*) FROM sink_state WHERE sink = 'crm' AND paused") == 1 })
	calls := len(sink.snapshot())
	h.restart(crm(sink))
	h.ingest(subscribe("e2", "s2", "b@example.com"))
	time.Sleep(200 * time.Millisecond)
	if len(sink.snapshot()) != calls {
		t.Fatal("a paused sink was called after a restart")
	}
	st, _ := h.eng.Status(context.Background())
	if st[0].State != "paused" || !strings.Contains(st[0].PausedReason, "410") {
		t.Errorf("status %+v", st[0])
	}
	mu.Lock()
	gone = false
	mu.Unlock()
	if err := h.eng.Resume(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	h.eventually("delivered after resume", func() bool { return h.cursor("crm") == 2 })
}

func TestRestartResumesRetriesAndCursor(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		res := &Result{}
		for _, r := range rows {
			if r.EventID == "flaky" {
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Retry, Reason: "later"})
			}
		}
		return res, nil
	}}
	opts := crm(sink)
	opts.Retry = RetryPolicy{Schedule: []time.Duration{time.Hour}, MaxAttempts: 3, Jitter: 0.01}
	h.start(opts)
	h.ingest(subscribe("ok1", "s1", "ok1@example.com"))
	h.ingest(subscribe("flaky", "s2", "flaky@example.com"))
	h.ingest(subscribe("ok2", "s3", "ok2@example.com"))
	h.eventually("first pass recorded", func() bool { return h.count("SELECT count(*) FROM delivery_rows") == 3 })
	if c := h.cursor("crm"); c != 1 {
		t.Errorf("cursor %d: it must stop below the row waiting for a retry", c)
	}
	// After a restart the retry is not forgotten, and delivered rows are not sent again.
	sink2 := &scriptSink{}
	opts2 := crm(sink2)
	opts2.Retry = RetryPolicy{Schedule: []time.Duration{time.Hour}, MaxAttempts: 3, Jitter: 0.01}
	h.restart(opts2)
	st, _ := h.eng.Status(context.Background())
	if st[0].PendingRows != 1 || st[0].NextRetryAt.Before(time.Now().Add(30*time.Minute)) {
		t.Errorf("after restart: %+v", st[0])
	}
	time.Sleep(200 * time.Millisecond)
	if got := sink2.receivedIDs(); len(got) != 0 {
		t.Errorf("rows sent again after restart: %v", got)
	}
	// A replay of the pending row sends it now.
	if _, err := h.eng.Replay(context.Background(), "crm", Selection{EventID: "FLAKY"}); err != nil {
		t.Fatal(err)
	}
	h.eventually("replayed", func() bool { return h.cursor("crm") == 3 })
	if got := sink2.receivedIDs(); !slices.Equal(got, []string{"flaky"}) {
		t.Errorf("replay sent %v", got)
	}
}

func TestReplayDeadLettersAndProgress(t *testing.T) {
	h := newHarness(t)
	sink, fix := breakableSink(func(schemas.Row) bool { return true })
	h.start(crm(sink))
	for i := 0; i < 5; i++ {
		h.ingest(subscribe(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i)))
	}
	h.eventually("five dead letters", func() bool { return h.count("SELECT count(*) FROM dead_letters") == 5 })
	fix()
	p, err := h.eng.Replay(context.Background(), "crm", Selection{DeadLetters: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 5 {
		t.Fatalf("replay of %d rows, want 5", p.Total)
	}
	h.eventually("replay done", func() bool {
		pr, err := h.eng.ReplayProgress(context.Background(), "crm", p.ID)
		return err == nil && pr.Done == 5
	})
	st, _ := h.eng.Status(context.Background())
	if st[0].DeadLetters != 0 {
		t.Errorf("%d unresolved dead letters after a successful replay", st[0].DeadLetters)
	}
	if _, err := h.eng.Replay(context.Background(), "crm", Selection{DeadLetters: true}); err == nil {
		t.Error("a replay with nothing to send must say so")
	}
	if _, err := h.eng.Replay(context.Background(), "nope", Selection{DeadLetters: true}); !errors.Is(err, ErrNoSuchSink) {
		t.Errorf("unknown sink: %v", err)
	}
}

// A replayed row goes out in whatever batch is due next, beside live rows of other keys; the
// attempt still counts as the replay's, so the history filtered to replays shows it.
func TestReplayInABatchWithLiveRows(t *testing.T) {
	h := newHarness(t)
	sink, fix := breakableSink(func(r schemas.Row) bool { return r.EventID == "bad" })
	// One request per window: the live row and the replay requested after the dead letter
	// wait for the same next request.
	opts := crm(sink)
	opts.Requests, opts.Per = 1, 3*time.Second
	h.start(opts)
	h.ingest(subscribe("bad", "s1", "bad@example.com"))
	h.eventually("dead letter", func() bool { return h.count("SELECT count(*) FROM dead_letters") == 1 })
	fix()
	h.ingest(subscribe("live", "s2", "live@example.com"))
	p, err := h.eng.Replay(context.Background(), "crm", Selection{DeadLetters: true})
	if err != nil {
		t.Fatal(err)
	}
	h.eventually("replay done", func() bool {
		pr, err := h.eng.ReplayProgress(context.Background(), "crm", p.ID)
		return err == nil && pr.Done == 1
	})
	h.eventually("live row delivered", func() bool { return h.cursor("crm") == 2 })
	page, err := h.eng.History(context.Background(), HistoryFilter{Sink: "crm", Replays: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ReplayID != p.ID || page.Items[0].Outcome != "delivered" {
		t.Fatalf("replay attempts: %+v", page.Items)
	}
	if page.Items[0].Rows != 2 {
		t.Errorf("the replay went out in a batch of %d rows; this test wants it beside the live row", page.Items[0].Rows)
	}
}

// Rows read ahead for a backlog are dropped when the subscription state moves on: a row that
// waits behind the rate limit while a change is merged is read again, so it carries the
// state as it is now (here an Unsubscribe the sink does not take ended the subscription
// meanwhile), however young the row is.
func TestReadAheadRowsExpire(t *testing.T) {
	h := newHarness(t)
	for i := 1; i <= 3; i++ {
		h.ingest(subscribe(fmt.Sprintf("sub%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i)))
	}
	h.store.WaitState(context.Background(), 3)
	sink := &scriptSink{}
	opts := crm(sink)
	opts.Events = []string{"Subscribe"}
	opts.BatchRows, opts.Requests, opts.Per = 1, 1, aheadMaxAge/4
	h.start(opts)
	h.eventually("first batch", func() bool { return len(sink.snapshot()) == 1 })
	// The rows of s2 and s3 were read with s1's; s2 ends before its turn comes.
	h.store.WaitState(context.Background(), h.ingest(unsubscribe("unsub2", "s2")))
	h.eventually("second batch", func() bool { return len(sink.snapshot()) == 2 })
	r := sink.snapshot()[1].rows[0]
	if r.EventID != "sub2" || r.Status != schemas.StatusUnsubscribed {
		t.Errorf("s2's Subscribe went out as %q (%s): a row read ahead outlived a state change", r.Status, r.EventID)
	}
}

// Attempts the store cannot take at once (its write queue is full) are recorded later, not
// lost: the history and the cursor catch up once the queue drains.
func TestAttemptsOutliveAFullWriteQueue(t *testing.T) {
	h := newHarness(t)
	sink, entered, release := gatedSink()
	for i := range 3 {
		h.ingest(subscribe(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i)))
	}
	h.store.WaitState(context.Background(), 3)
	h.start(crm(sink))
	<-entered // the batch is journaled and in the sink; now the writer stops and its queue fills
	writerFree, writerStopped := make(chan struct{}), make(chan struct{})
	go h.store.Apply(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		close(writerStopped)
		<-writerFree
		return nil
	})
	<-writerStopped // so every request from here on waits in the queue
	var fill sync.WaitGroup
	refused := make(chan struct{}, 1)
	for range 8192 + 64 { // the default queue bound, and more
		fill.Add(1)
		go func() {
			defer fill.Done()
			if err := h.store.Apply(context.Background(), func(context.Context, *store.Tx) error { return nil }); errors.Is(err, store.ErrQueueFull) {
				select {
				case refused <- struct{}{}:
				default:
				}
			}
		}()
	}
	select {
	case <-refused:
	case <-time.After(15 * time.Second):
		close(writerFree)
		t.Fatal("the write queue never filled up")
	}
	close(release)
	// The sink took the batch, but its attempt cannot be recorded while the queue is full.
	h.eventually("the record refused", func() bool {
		st, err := h.eng.Status(context.Background())
		return err == nil && strings.Contains(st[0].LastError, "queue")
	})
	close(writerFree)
	fill.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for h.count("SELECT count(*) FROM delivery_rows WHERE outcome = 'delivered'") != 3 || h.cursor("crm") != 3 {
		if time.Now().After(deadline) {
			st, _ := h.eng.Status(context.Background())
			t.Fatalf("attempts not recorded: %d delivered rows, cursor %d, status %+v", h.count("SELECT count(*) FROM delivery_rows WHERE outcome = 'delivered'"), h.cursor("crm"), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A loop stuck in a slow request still answers Status at once, from its last report.
func TestStatusDoesNotWaitForABusyLoop(t *testing.T) {
	h := newHarness(t)
	sink, entered, release := gatedSink()
	h.start(crm(sink))
	defer close(release)
	if _, err := h.eng.Status(context.Background()); err != nil { // a report exists before the batch
		t.Fatal(err)
	}
	h.ingest(subscribe("e1", "s1", "a@example.com"))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	st, err := h.eng.Status(ctx)
	if err != nil {
		t.Fatalf("status while the sink holds a batch: %v", err)
	}
	if st[0].Name != "crm" || st[0].AsOf.After(start) {
		t.Errorf("status %+v: want the report from before the batch", st[0])
	}
}

func TestReplayNeverResurrects(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{}
	h.start(crm(sink))
	h.ingest(subscribe("sub", "s1", "a@example.com"))
	h.ingest(unsubscribe("unsub", "s1"))
	h.eventually("delivered", func() bool { return h.cursor("crm") == 2 })
	before := len(sink.snapshot())
	if _, err := h.eng.Replay(context.Background(), "crm", Selection{EventID: "sub"}); err != nil {
		t.Fatal(err)
	}
	h.eventually("replayed", func() bool { return len(sink.snapshot()) > before })
	r := sink.snapshot()[before].rows[0]
	if r.EventID != "sub" || r.Status != schemas.StatusUnsubscribed {
		t.Errorf("replayed Subscribe of an ended subscription arrived as %q (%s)", r.Status, r.EventID)
	}
}

func TestAsyncJobsArePolled(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	polls := 0
	sink := &asyncSink{}
	sink.script = func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		res := &Result{}
		for _, r := range rows {
			res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Accepted, JobID: "job-1"})
		}
		return res, nil
	}
	sink.polls = func(jobs []Job) []RowResult {
		mu.Lock()
		defer mu.Unlock()
		polls++
		if polls < 2 {
			return nil // still running
		}
		var out []RowResult
		for _, j := range jobs {
			out = append(out, RowResult{Seq: j.Seq, Outcome: Delivered})
		}
		return out
	}
	opts := crm(sink)
	opts.PollInterval = 20 * time.Millisecond
	h.start(opts)
	h.ingest(subscribe("e1", "s1", "a@example.com"))
	h.eventually("job settled", func() bool { return h.cursor("crm") == 1 })
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE event_id = 'e1' AND outcome = 'accepted' AND job_id = 'job-1'"); n != 1 {
		t.Errorf("accepted record: %d", n)
	}
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE event_id = 'e1' AND outcome = 'delivered' AND job_id = 'job-1'"); n != 1 {
		t.Errorf("settled record: %d", n)
	}
}

func TestStartPositions(t *testing.T) {
	h := newHarness(t)
	h.ingest(subscribe("old", "s1", "a@example.com"))
	h.store.WaitState(context.Background(), 1)
	latest, earliest := &scriptSink{}, &scriptSink{}
	h.start(SinkOptions{Name: "latest", Sink: latest, Start: "latest"}, SinkOptions{Name: "earliest", Sink: earliest})
	h.ingest(subscribe("new", "s2", "b@example.com"))
	h.eventually("both caught up", func() bool { return h.cursor("latest") == 2 && h.cursor("earliest") == 2 })
	if got := latest.receivedIDs(); !slices.Equal(got, []string{"new"}) {
		t.Errorf("start: latest received %v", got)
	}
	if got := earliest.receivedIDs(); !slices.Equal(got, []string{"old", "new"}) {
		t.Errorf("start: earliest received %v", got)
	}
}

func TestCronTrigger(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{}
	tr, err := schedule.Parse("@every 1s")
	if err != nil {
		t.Fatal(err)
	}
	h.start(SinkOptions{Name: "hourly", Sink: sink, Trigger: tr})
	h.ingest(subscribe("e1", "s1", "a@example.com"))
	h.ingest(subscribe("e2", "s2", "b@example.com"))
	h.eventually("delivered on a tick", func() bool { return h.cursor("hourly") == 2 })
	if n := len(sink.snapshot()); n != 1 {
		t.Errorf("%d requests; a tick should drain both rows in one batch", n)
	}
}

// TestEveryRowInOrderWithoutCoalescing: a sink that keeps every event (a log, a warehouse)
// gets all rows of a subscription, one request after the other, oldest first, even when the
// first needs retries.
func TestEveryRowInOrderWithoutCoalescing(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	failures := 0
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		mu.Lock()
		defer mu.Unlock()
		res := &Result{}
		for _, r := range rows {
			if r.EventID == "first" && failures < 2 {
				failures++
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Retry, Reason: "busy"})
			}
		}
		return res, nil
	}}
	h.start(SinkOptions{Name: "log", Sink: sink, Columns: []string{"subscription_id"}})
	h.ingest(subscribe("first", "s1", "a@example.com"))
	h.ingest(unsubscribe("second", "s1"))
	h.ingest(subscribe("third", "s1", "a@example.com"))
	h.ingest(subscribe("other", "s2", "b@example.com"))
	h.eventually("all four delivered", func() bool { return h.cursor("log") == 4 })
	var s1 []string
	for _, c := range sink.snapshot() {
		n := 0
		for _, r := range c.rows {
			if r.SubscriptionID == "s1" {
				s1 = append(s1, r.EventID)
				n++
			}
		}
		if n > 1 {
			t.Errorf("request %s carried %d rows of one subscription", c.id, n)
		}
	}
	if got := strings.Join(s1, ","); got != "first,first,first,second,third" {
		t.Errorf("subscription s1 rows arrived as %s; want every row, oldest first, retries included", got)
	}
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE outcome = 'coalesced'"); n != 0 {
		t.Errorf("%d rows coalesced by a sink that keeps every row", n)
	}
}

// TestInterruptedBatchIsSentAgainAsTheSameBatch: a request cut off by the end of the process
// (its attempt never recorded) goes again first after the restart, with the same rows and so
// the same batch id, even though more rows arrived meanwhile; the newer rows follow.
func TestInterruptedBatchIsSentAgainAsTheSameBatch(t *testing.T) {
	t.Run("realtime", func(t *testing.T) { interruptedBatch(t, "") })
	t.Run("cron", func(t *testing.T) { interruptedBatch(t, "@every 1s") })
}

func interruptedBatch(t *testing.T, cron string) {
	h := newHarness(t)
	opts := func(s Sink) SinkOptions {
		o := crm(s)
		if cron != "" {
			tr, err := schedule.Parse(cron)
			if err != nil {
				t.Fatal(err)
			}
			o.Trigger = tr
		}
		return o
	}
	block := make(chan struct{})
	hung := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		<-block // no answer before the engine stops
		return nil, fmt.Errorf("cut off")
	}}
	h.start(opts(hung))
	for i := 1; i <= 3; i++ {
		h.ingest(subscribe(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i)))
	}
	h.eventually("the first request", func() bool { return len(hung.snapshot()) == 1 })
	first := hung.snapshot()[0]
	for i := 4; i <= 6; i++ {
		h.ingest(subscribe(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i)))
	}
	// The engine stops while the request hangs: nothing about it is recorded.
	go func() { time.Sleep(50 * time.Millisecond); close(block) }()
	ok := &scriptSink{}
	h.restart(opts(ok))
	deadline := time.Now().Add(5 * time.Second)
	for h.cursor("crm") != 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	calls := ok.snapshot()
	if h.cursor("crm") != 6 {
		st, _ := h.eng.Status(context.Background())
		t.Fatalf("cursor %d after the restart; calls %+v; inflight %d; status %+v", h.cursor("crm"), calls, h.count("SELECT count(*) FROM sink_state WHERE inflight_batch IS NOT NULL"), st)
	}
	ids := func(c sent) []string {
		var out []string
		for _, r := range c.rows {
			out = append(out, r.EventID)
		}
		return out
	}
	if calls[0].id != first.id || fmt.Sprint(ids(calls[0])) != fmt.Sprint(ids(first)) {
		t.Fatalf("after the restart the first request was %s %v, want the interrupted %s %v", calls[0].id, ids(calls[0]), first.id, ids(first))
	}
	var later []string
	for _, c := range calls[1:] {
		later = append(later, ids(c)...)
	}
	// The rest follow in order: e4 to e6, and any of e1 to e3 the first request had not
	// taken (in real time it may leave with the first event alone).
	var want []string
	for i := 1; i <= 6; i++ {
		if id := fmt.Sprintf("e%d", i); !slices.Contains(ids(first), id) {
			want = append(want, id)
		}
	}
	if fmt.Sprint(later) != fmt.Sprint(want) {
		t.Errorf("the rows that arrived meanwhile went as %v, want %v (the interrupted request held %v)", later, want, ids(first))
	}
	if n := h.count("SELECT count(*) FROM sink_state WHERE inflight_batch IS NOT NULL"); n != 0 {
		t.Errorf("%d in-flight batches left after everything was recorded", n)
	}
}

func TestOldestKeys(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, 20, 1000} {
		keys := make([]*pendingKey, n)
		for i := range keys {
			keys[i] = &pendingKey{seqs: []int64{int64(rnd.IntN(100000))}}
		}
		want := slices.Clone(keys)
		slices.SortFunc(want, func(a, b *pendingKey) int { return int(a.seqs[0] - b.seqs[0]) })
		want = want[:min(n, 20)]
		got := oldestKeys(slices.Clone(keys), 20)
		if len(got) != len(want) {
			t.Fatalf("n=%d: %d keys, want %d", n, len(got), len(want))
		}
		for i := range got {
			if got[i].seqs[0] != want[i].seqs[0] {
				t.Fatalf("n=%d: key %d has first seq %d, want %d", n, i, got[i].seqs[0], want[i].seqs[0])
			}
		}
	}
}

// On a coalescing sink, rows coalesced into a row that is then dead-lettered never reached
// the destination: they are dead-lettered with it, not recorded as coalesced (which counts as
// done and resolves their earlier dead letters).
func TestRowsCoalescedIntoADeadRowAreDead(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	var once sync.Once
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		res := &Result{}
		for _, r := range rows {
			switch r.EventID {
			case "old-sub":
				once.Do(func() { close(release) })
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Retry, Reason: "busy"})
			case "new-unsub":
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Failed, Reason: "contact archived", StatusCode: 400})
			}
		}
		return res, nil
	}}
	opts := crm(sink)
	opts.Retry = RetryPolicy{Schedule: []time.Duration{200 * time.Millisecond}, MaxAttempts: 5, Jitter: 0.01}
	h.start(opts)
	h.ingest(subscribe("old-sub", "s1", "gone@example.com"))
	<-release
	h.ingest(unsubscribe("new-unsub", "s1"))
	h.eventually("both rows done", func() bool { return h.cursor("crm") == 2 })
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE event_id = 'old-sub' AND outcome = 'coalesced'"); n != 0 {
		t.Errorf("the older row is recorded as coalesced into a row that died (%d)", n)
	}
	if n := h.count("SELECT count(*) FROM dead_letters WHERE event_id IN ('old-sub', 'new-unsub')"); n != 2 {
		t.Errorf("%d dead letters, want both rows", n)
	}
	st, err := h.eng.Status(context.Background())
	if err != nil || len(st) != 1 || st[0].DeadLetters != 2 {
		t.Errorf("status: %+v %v; want 2 dead letters", st, err)
	}
}

// contact_marketing_consent is the person's latest consent statement over all their
// subscriptions: a row from a subscription that made none carries the other's.
func TestContactConsentIsTheLatestStatement(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{}
	h.start(SinkOptions{Name: "mc", Sink: sink, Columns: []string{"email_key", "marketing_consent", "contact_marketing_consent"}})
	withConsent := func(id, sub, consent string) string {
		return fmt.Sprintf(`{"eventId":%q,"eventType":"Subscribe","eventDetails":{"calendarSubscriptionId":%q,"subscription":{"calendarSubscriptionId":%q,"calendarId":"c","calendarCode":"c-%s","subscriberEmail":"jack@example.com"%s}}}`, id, sub, sub, sub, consent)
	}
	h.ingest(withConsent("e1", "s1", `,"optIn1":false`))
	h.ingest(withConsent("e2", "s2", `,"optIn1":true`))
	h.ingest(withConsent("e3", "s3", ""))
	h.eventually("three rows sent", func() bool { return h.cursor("mc") == 3 })
	found := false
	for _, c := range sink.snapshot() {
		for _, r := range c.rows {
			found = found || r.EventID == "e3"
			if r.EventID == "e3" && (r.MarketingConsent != nil || r.ContactMarketingConsent == nil || !*r.ContactMarketingConsent) {
				t.Errorf("e3: marketing_consent %v, contact_marketing_consent %v; want none and true (e2's, the latest statement)", r.MarketingConsent, r.ContactMarketingConsent)
			}
		}
	}
	if !found {
		t.Fatal("e3 was never sent")
	}
}

// Rows whose address is a placeholder ("N/A") share no destination key: two strangers who
// both typed it are sent as two rows, not coalesced into one.
func TestInvalidAddressesAreNotOneKey(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{}
	h.start(crm(sink))
	h.ingest(subscribe("nora", "s-nora", "N/A"))
	h.ingest(subscribe("ned", "s-ned", "N/A"))
	h.eventually("both rows done", func() bool { return h.cursor("crm") == 2 })
	if n := h.count("SELECT count(*) FROM delivery_rows WHERE outcome = 'coalesced'"); n != 0 {
		t.Errorf("%d rows coalesced into a stranger's", n)
	}
	ids := sink.receivedIDs()
	if !slices.Contains(ids, "nora") || !slices.Contains(ids, "ned") {
		t.Errorf("sent %v, want both", ids)
	}
}
