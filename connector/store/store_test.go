package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookbridge/hookbridge/schemas"
)

var fixtures = "../../../shared/fixtures/rokt"

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "hb.duckdb")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func decode(t testing.TB, body string) *schemas.Row {
	t.Helper()
	dec, err := schemas.NewDecoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := dec.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	r := ev.Row("rokt", time.Now())
	return &r
}

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// event builds a body of the given type for subscription sub with a fresh event id.
func event(id, typ, sub, email string) string {
	subObj := fmt.Sprintf(`{"calendarSubscriptionId":%q,"calendarId":"c1","calendarTitle":"Fixtures","calendarCode":"fixtures","subscriberEmail":%q,"calendarTags":[{"tagId":"t-%s"}]}`, sub, email, id)
	if typ == "Unsubscribe" {
		subObj = `{"removedDateTimeUtc":"2025-09-29 07:42:11.318204","unsubscribeReasonText":"done"}`
	}
	subID := fmt.Sprintf("%q", sub)
	if sub == "" {
		subID = "null"
	}
	return fmt.Sprintf(`{"eventId":%q,"eventType":%q,"eventDetails":{"actionType":"SubscriptionViaWebApi","calendarSubscriptionId":%s,"accountId":"a","accountName":"A","accountCode":"a","subscription":%s}}`,
		id, typ, subID, subObj)
}

func ingest(t testing.TB, s *Store, body string) (int64, bool) {
	t.Helper()
	seq, dup, err := s.Ingest(context.Background(), decode(t, body))
	if err != nil {
		t.Fatal(err)
	}
	return seq, dup
}

func TestIngestAssignsSeqAndKeepsRawBody(t *testing.T) {
	s := openStore(t, Options{})
	names, _ := filepath.Glob(filepath.Join(fixtures, "*.json"))
	sort.Strings(names)
	for i, n := range names {
		body := fixture(t, filepath.Base(n))
		seq, dup := ingest(t, s, body)
		if dup || seq != int64(i+1) {
			t.Fatalf("%s: seq %d dup %v, want %d", n, seq, dup, i+1)
		}
		var raw []byte
		var typ string
		if err := s.DB().QueryRow("SELECT raw, event_type FROM events WHERE seq = ?", seq).Scan(&raw, &typ); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, []byte(body)) {
			t.Errorf("%s: raw body not kept byte for byte", n)
		}
	}
	var n int
	s.DB().QueryRow("SELECT count(*) FROM events").Scan(&n)
	if n != len(names) {
		t.Errorf("%d events stored, want %d", n, len(names))
	}
}

func TestDuplicatesStoreNothing(t *testing.T) {
	s := openStore(t, Options{})
	body := fixture(t, "subscribe.json")
	seq1, _ := ingest(t, s, body)
	upper := strings.Replace(body, "a41c9e07-3b6d-4f28-9e51-7d0c2b8f6e13", "A41C9E07-3B6D-4F28-9E51-7D0C2B8F6E13", 1)
	seq2, dup := ingest(t, s, upper)
	if !dup || seq2 != seq1 {
		t.Errorf("re-sent event (id upper-cased): seq %d dup %v, want %d true", seq2, dup, seq1)
	}
	// Duplicates inside one commit group.
	var wg sync.WaitGroup
	results := make([]int64, 20)
	dups := make([]bool, 20)
	body2 := event("dup-in-group", "Subscribe", "s9", "x@example.com")
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			seq, dup, err := s.Ingest(context.Background(), decode(t, body2))
			if err != nil {
				t.Error(err)
			}
			results[i], dups[i] = seq, dup
		}(i)
	}
	wg.Wait()
	fresh := 0
	for i := range results {
		if results[i] != results[0] {
			t.Errorf("duplicate got seq %d, first got %d", results[i], results[0])
		}
		if !dups[i] {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d of 20 identical events were stored as new, want 1", fresh)
	}
	var n int
	s.DB().QueryRow("SELECT count(*) FROM events").Scan(&n)
	if n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
}

func TestGroupCommitUnderConcurrency(t *testing.T) {
	s := openStore(t, Options{})
	const n = 400
	seqs := make([]int64, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			seq, dup, err := s.Ingest(context.Background(), decode(t, event(fmt.Sprintf("e-%d", i), "Subscribe", fmt.Sprintf("s-%d", i%50), "a@example.com")))
			if err != nil || dup {
				t.Errorf("ingest %d: %v dup=%v", i, err, dup)
			}
			seqs[i] = seq
		}(i)
	}
	wg.Wait()
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, seq := range seqs {
		if seq != int64(i+1) {
			t.Fatalf("seqs are not 1..%d without gaps: position %d has %d", n, i, seq)
		}
	}
	if err := s.WaitState(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var subs, events int
	s.DB().QueryRow("SELECT count(*), sum(events) FROM subscriptions").Scan(&subs, &events)
	if subs != 50 || events != n {
		t.Errorf("subscriptions %d (events %d), want 50 (%d)", subs, events, n)
	}
}

func TestReopenContinuesSeqAndFindsDuplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb.duckdb")
	s := openStore(t, Options{Path: path})
	ingest(t, s, event("e1", "Subscribe", "s1", "a@example.com"))
	ingest(t, s, event("e2", "Subscribe", "s2", "b@example.com"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, Options{Path: path})
	if seq, dup := ingest(t, s2, event("e1", "Subscribe", "s1", "a@example.com")); !dup || seq != 1 {
		t.Errorf("after reopen, a stored id: seq %d dup %v", seq, dup)
	}
	if seq, dup := ingest(t, s2, event("e3", "Subscribe", "s3", "c@example.com")); dup || seq != 3 {
		t.Errorf("after reopen, a new id: seq %d dup %v, want 3", seq, dup)
	}
	s2.Close()
	ro, err := Open(context.Background(), Options{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var n int
	ro.DB().QueryRow("SELECT count(*) FROM events").Scan(&n)
	if n != 3 {
		t.Errorf("read-only sees %d events", n)
	}
	if _, _, err := ro.Ingest(context.Background(), decode(t, event("e4", "Test", "", ""))); !errors.Is(err, ErrUnavailable) {
		t.Errorf("read-only store accepted a write: %v", err)
	}
}

type subState struct {
	status, email, tags, reason string
	events                      int
	unsubscribed                bool
}

func readSub(t *testing.T, s *Store, id string) (subState, bool) {
	t.Helper()
	// Subscription changes are merged shortly after their commit.
	var last int64
	s.DB().QueryRow("SELECT coalesce(max(seq), 0) FROM events").Scan(&last)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitState(ctx, last); err != nil {
		t.Fatalf("state never reached seq %d: %v", last, err)
	}
	var st subState
	var email, tags, reason *string
	var unsub *time.Time
	err := s.DB().QueryRow(`SELECT status, email, array_to_string(tag_ids, ','), unsubscribe_reason, unsubscribed_at, events
		FROM subscriptions WHERE subscription_id = ?`, id).Scan(&st.status, &email, &tags, &reason, &unsub, &st.events)
	if err != nil {
		return st, false
	}
	if email != nil {
		st.email = *email
	}
	if tags != nil {
		st.tags = *tags
	}
	if reason != nil {
		st.reason = *reason
	}
	st.unsubscribed = unsub != nil
	return st, true
}

func TestSubscriptionStateIgnoresArrivalOrder(t *testing.T) {
	s := openStore(t, Options{})
	// In order: subscribe, then unsubscribe, then a late retry of the subscribe.
	ingest(t, s, event("a1", "Subscribe", "sub-a", "a@example.com"))
	ingest(t, s, event("a2", "Unsubscribe", "sub-a", ""))
	ingest(t, s, event("a3-late-retry", "Subscribe", "sub-a", "a@example.com"))
	if st, _ := readSub(t, s, "sub-a"); st.status != "unsubscribed" || st.email != "a@example.com" || !st.unsubscribed || st.reason != "done" {
		t.Errorf("a late Subscribe resurrected sub-a: %+v", st)
	}
	// Reversed: the unsubscribe arrives first and leaves a tombstone.
	ingest(t, s, event("b2", "Unsubscribe", "sub-b", ""))
	if st, ok := readSub(t, s, "sub-b"); !ok || st.status != "unsubscribed" || st.email != "" {
		t.Errorf("tombstone: %+v %v", st, ok)
	}
	ingest(t, s, event("b1", "Subscribe", "sub-b", "b@example.com"))
	if st, _ := readSub(t, s, "sub-b"); st.status != "unsubscribed" || st.email != "b@example.com" || st.events != 2 {
		t.Errorf("late Subscribe must fill the email but stay unsubscribed: %+v", st)
	}
	// Both in one commit group, in either order.
	var wg sync.WaitGroup
	for _, b := range []string{event("c2", "Unsubscribe", "sub-c", ""), event("c1", "Subscribe", "sub-c", "c@example.com")} {
		wg.Add(1)
		go func(b string) { defer wg.Done(); ingest(t, s, b) }(b)
	}
	wg.Wait()
	if st, _ := readSub(t, s, "sub-c"); st.status != "unsubscribed" || st.email != "c@example.com" {
		t.Errorf("same group: %+v", st)
	}
	// Details updates change attributes of an active subscription.
	ingest(t, s, event("d1", "Subscribe", "sub-d", "d@example.com"))
	ingest(t, s, strings.Replace(event("d2", "SubscriptionDetailsUpdated", "sub-d", "d.new@example.com"), "t-d2", "t-new", 1))
	if st, _ := readSub(t, s, "sub-d"); st.status != "subscribed" || st.email != "d.new@example.com" || st.tags != "t-new" {
		t.Errorf("details update: %+v", st)
	}
	// Test events, unknown types and unlinked unsubscribes never touch subscriptions.
	ingest(t, s, fixture(t, "test.json"))
	ingest(t, s, `{"eventId":"u1","eventType":"SubscriptionPaused","eventDetails":{"calendarSubscriptionId":"sub-u"}}`)
	ingest(t, s, event("n1", "Unsubscribe", "", ""))
	readSub(t, s, "sub-a")
	var n int
	s.DB().QueryRow("SELECT count(*) FROM subscriptions").Scan(&n)
	if n != 4 {
		t.Errorf("%d subscriptions, want 4 (a, b, c, d)", n)
	}
}

func TestRejectedKept(t *testing.T) {
	s := openStore(t, Options{})
	rej := &schemas.Rejection{Source: "rokt", ReceivedAt: time.Now(), Status: 400, Reason: "truncated", Detail: "cut", BodySize: 3, Body: []byte("{\"a"), ContentType: "application/json"}
	if err := s.Reject(context.Background(), rej); err != nil {
		t.Fatal(err)
	}
	var reason string
	var body []byte
	if err := s.DB().QueryRow("SELECT reason, body FROM rejected").Scan(&reason, &body); err != nil {
		t.Fatal(err)
	}
	if reason != "truncated" || string(body) != "{\"a" {
		t.Errorf("rejected row %q %q", reason, body)
	}
}

func TestFailingRequestFailsAlone(t *testing.T) {
	s := openStore(t, Options{})
	release := make(chan struct{})
	blocked := make(chan struct{})
	go s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error {
		close(blocked)
		<-release
		return nil
	})
	<-blocked
	// While the writer is busy, queue good events and a bad state operation: they commit as
	// one group, which fails, and are then retried one by one.
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i == 2 {
				errs[i] = s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO no_such_table VALUES (1)")
					return err
				})
				return
			}
			_, _, errs[i] = s.Ingest(context.Background(), decode(t, event(fmt.Sprintf("g%d", i), "Subscribe", "s", "a@example.com")))
		}(i)
	}
	waitFor(t, func() bool { return len(s.queue) == 5 })
	close(release)
	wg.Wait()
	for i, err := range errs {
		if (i == 2) != (err != nil) {
			t.Errorf("request %d: err %v", i, err)
		}
	}
	var n int
	s.DB().QueryRow("SELECT count(*) FROM events").Scan(&n)
	if n != 4 {
		t.Errorf("%d events committed, want 4", n)
	}
	if err := s.Ready(); err != nil {
		t.Errorf("one bad statement made the store unready: %v", err)
	}
}

func TestQueueFull(t *testing.T) {
	s := openStore(t, Options{QueueEvents: 2})
	release := make(chan struct{})
	blocked := make(chan struct{})
	go s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error {
		close(blocked)
		<-release
		return nil
	})
	<-blocked
	ctx, cancel := context.WithCancel(context.Background())
	for i := 0; i < 2; i++ {
		go s.Ingest(ctx, decode(t, event(fmt.Sprintf("q%d", i), "Test", "", "")))
	}
	waitFor(t, func() bool { return len(s.queue) == 2 })
	if _, _, err := s.Ingest(context.Background(), decode(t, event("q-over", "Test", "", ""))); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third request: %v, want ErrQueueFull", err)
	}
	cancel()
	close(release)
}

func TestWatchWakesOnCommit(t *testing.T) {
	s := openStore(t, Options{})
	seq, ch := s.Watch()
	if seq != 0 {
		t.Fatalf("empty store watch seq %d", seq)
	}
	ingest(t, s, event("w1", "Subscribe", "s", "a@example.com"))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after a commit")
	}
	if seq, _ := s.Watch(); seq != 1 {
		t.Errorf("watch seq %d, want 1", seq)
	}
}

func TestSQLCannotReachHostFiles(t *testing.T) {
	s := openStore(t, Options{})
	for _, q := range []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"COPY events TO '/tmp/hookbridge-leak.csv'",
		"ATTACH '/tmp/other.duckdb' AS other",
		"SET enable_external_access = true",
	} {
		if _, err := s.DB().Exec(q); err == nil {
			t.Errorf("%s succeeded", q)
		}
	}
}

func TestCloseCommitsQueuedRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb.duckdb")
	s, err := Open(context.Background(), Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, _, err := s.Ingest(context.Background(), decode(t, event(fmt.Sprintf("c%d", i), "Test", "", ""))); err == nil {
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}(i)
	}
	time.Sleep(5 * time.Millisecond)
	s.Close()
	wg.Wait()
	ro := openStore(t, Options{Path: path, ReadOnly: true})
	var n int
	ro.DB().QueryRow("SELECT count(*) FROM events").Scan(&n)
	if n < acked {
		t.Errorf("%d events acknowledged but only %d stored", acked, n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestUnmergedChangesAreFoldedAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb.duckdb")
	s := openStore(t, Options{Path: path})
	ingest(t, s, event("m1", "Subscribe", "sub-m", "m@example.com"))
	ingest(t, s, event("m2", "Unsubscribe", "sub-m", ""))
	ingest(t, s, event("m3", "Subscribe", "sub-n", "n@example.com"))
	s.Close()
	// What a crash between an event commit and the next merge leaves behind: events whose
	// changes never reached subscriptions.
	reset, err := sqlOpen(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reset.Exec("DELETE FROM subscriptions; UPDATE store_state SET value = 0 WHERE key = 'merged_seq'"); err != nil {
		t.Fatal(err)
	}
	reset.Close()
	s2 := openStore(t, Options{Path: path})
	if st, ok := readSub(t, s2, "sub-m"); !ok || st.status != "unsubscribed" || st.email != "m@example.com" {
		t.Errorf("sub-m after restart: %+v %v", st, ok)
	}
	if st, ok := readSub(t, s2, "sub-n"); !ok || st.status != "subscribed" {
		t.Errorf("sub-n after restart: %+v %v", st, ok)
	}
}

func sqlOpen(path string) (*sql.DB, error) {
	c, err := duckdb.NewConnector(path, nil)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// TestBulkLoadRebuildsStateAtTheEnd: during a bulk load subscription state stays put (and
// WaitState waits), events from other writers included; EndBulk folds everything, and the
// table equals what event-by-event merging gives.
func TestBulkLoadRebuildsStateAtTheEnd(t *testing.T) {
	bulkStore := openStore(t, Options{})
	plain := openStore(t, Options{})
	ingest(t, bulkStore, event("e0", "Subscribe", "s0", "zero@example.com"))
	readSub(t, bulkStore, "s0")
	bulkStore.BeginBulk()
	var bodies []string
	for i := 1; i <= 40; i++ {
		bodies = append(bodies, event(fmt.Sprintf("e%d", i), "Subscribe", fmt.Sprintf("s%d", i%15), fmt.Sprintf("u%d@example.com", i)))
		if i%4 == 0 {
			bodies = append(bodies, event(fmt.Sprintf("u%d", i), "Unsubscribe", fmt.Sprintf("s%d", i%15), ""))
		}
	}
	var last int64
	for _, b := range bodies {
		last, _ = ingest(t, bulkStore, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := bulkStore.WaitState(ctx, last); err == nil {
		t.Fatal("state reported current during a bulk load")
	}
	var n int
	bulkStore.DB().QueryRow("SELECT count(*) FROM subscriptions").Scan(&n)
	if n != 1 {
		t.Fatalf("%d subscriptions during the bulk load, want the 1 from before it", n)
	}
	if err := bulkStore.EndBulk(context.Background()); err != nil {
		t.Fatal(err)
	}
	ingest(t, plain, event("e0", "Subscribe", "s0", "zero@example.com"))
	for _, b := range bodies {
		ingest(t, plain, b)
	}
	for i := 0; i < 15; i++ {
		id := fmt.Sprintf("s%d", i)
		a, okA := readSub(t, bulkStore, id)
		b, okB := readSub(t, plain, id)
		if okA != okB || a != b {
			t.Errorf("%s: after the bulk load %+v, merged event by event %+v", id, a, b)
		}
	}
	// After the rebuild the writer knows the subscriptions it made: a later change to one
	// merges into it at the first try (taken for new, it would collide with its key, fail,
	// and go through only after the writer relearns the ids).
	for _, st := range []*Store{bulkStore, plain} {
		ingest(t, st, event("late-unsub", "Unsubscribe", "s3", ""))
		if sub, ok := readSub(t, st, "s3"); !ok || sub.status != "unsubscribed" {
			t.Errorf("a change after the bulk load: %+v %v", sub, ok)
		}
		var m dto.Metric
		st.metrics.mergeFailures.Write(&m)
		if n := m.GetCounter().GetValue(); n != 0 {
			t.Errorf("%v failed merges", n)
		}
	}
}

// A store last opened before migration 5 keeps its sinks' in-flight batches: they move from
// delivery_inflight into sink_state.
func TestMigrationMovesTheInflightBatchIntoSinkState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb.duckdb")
	s := openStore(t, Options{Path: path})
	s.Close()
	// Turn the file back into a version-4 store holding one sink with a batch in flight.
	db, err := sqlOpen(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE sink_state DROP COLUMN inflight_batch`,
		`ALTER TABLE sink_state DROP COLUMN inflight_seqs`,
		`ALTER TABLE sink_state DROP COLUMN inflight_at`,
		`DELETE FROM schema_migrations WHERE version = 5`,
		`INSERT INTO sink_state (sink, cursor_seq, created_at, updated_at) VALUES ('crm', 7, now(), now()), ('idle', 3, now(), now())`,
		`CREATE TABLE delivery_inflight (sink VARCHAR PRIMARY KEY, batch_id VARCHAR NOT NULL, seqs VARCHAR NOT NULL, started_at TIMESTAMPTZ NOT NULL)`,
		`INSERT INTO delivery_inflight VALUES ('crm', 'crm-8-9', '8,9', '2026-11-29 10:00:00+00')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = openStore(t, Options{Path: path})
	rows, err := s.DB().Query("SELECT sink, cursor_seq, inflight_batch, inflight_seqs, inflight_at FROM sink_state ORDER BY sink")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var sink string
		var cursor int64
		var batch, seqs sql.NullString
		var at sql.NullTime
		if err := rows.Scan(&sink, &cursor, &batch, &seqs, &at); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d %s %s %s", sink, cursor, batch.String, seqs.String, at.Time.UTC().Format(time.RFC3339)))
	}
	want := []string{"crm 7 crm-8-9 8,9 2026-11-29T10:00:00Z", "idle 3   0001-01-01T00:00:00Z"}
	if !slices.Equal(got, want) {
		t.Errorf("sink_state after the migration:\n got %q\nwant %q", got, want)
	}
	var tables int
	s.DB().QueryRow("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'delivery_inflight'").Scan(&tables)
	if tables != 0 {
		t.Error("delivery_inflight is still there")
	}
}

// A change without tags (an Unsubscribe) is merged by the statement that leaves the tag
// columns alone: the tags a Subscribe set stay, in the same merge and in a later one. (The
// full statement would keep them too; what the split saves is time, measured by
// BenchmarkMergeSubscriptions. This checks the statement is really without them.)
func TestUntaggedChangesKeepTags(t *testing.T) {
	if strings.Contains(mergeUntaggedSQL, "tag_ids") || strings.Contains(mergeUntaggedSQL, "tag_names") || mergeUntaggedSQL == mergeSubscriptionsSQL {
		t.Fatalf("the untagged merge still sets the tag columns:\n%s", mergeUntaggedSQL)
	}
	s := openStore(t, Options{})
	ingest(t, s, event("t1", "Subscribe", "s1", "a@example.com"))
	ingest(t, s, event("t2", "Subscribe", "s2", "b@example.com"))
	if st, _ := readSub(t, s, "s1"); st.tags != "t-t1" {
		t.Fatalf("tags after Subscribe: %q", st.tags)
	}
	// s2's Unsubscribe merges together with s3's tagged Subscribe.
	rows := []*schemas.Row{decode(t, event("u2", "Unsubscribe", "s2", "")), decode(t, event("t3", "Subscribe", "s3", "c@example.com"))}
	if _, _, err := s.IngestBatch(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	ingest(t, s, event("u1", "Unsubscribe", "s1", ""))
	for id, want := range map[string]string{"s1": "t-t1", "s2": "t-t2", "s3": "t-t3"} {
		st, ok := readSub(t, s, id)
		if !ok || st.tags != want {
			t.Errorf("%s: tags %q, want %q (%+v)", id, st.tags, want, st)
		}
	}
	if st, _ := readSub(t, s, "s2"); st.status != "unsubscribed" {
		t.Errorf("s2 is %s", st.status)
	}
}

// A row the Appender refuses (a duplicate key) fails its request; the store stays ready and
// the next write through the Appender succeeds.
func TestAppenderConstraintErrorIsNotFatal(t *testing.T) {
	s := openStore(t, Options{})
	ingest(t, s, event("a1", "Subscribe", "s1", "a@example.com"))
	readSub(t, s, "s1")
	dup := deltaRecord([]*subDelta{{id: "s1", firstSeen: time.Now(), lastSeen: time.Now(), lastType: "Subscribe", events: 1}}, allFields)
	defer dup.Release()
	err := s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error {
		return tx.InsertRecord(ctx, "subscriptions", dup)
	})
	if err == nil {
		t.Fatal("a duplicate subscription id went in")
	}
	if rerr := s.Ready(); rerr != nil {
		t.Fatalf("a duplicate key made the store unready: %v (the error: %v)", rerr, err)
	}
	if _, dup := ingest(t, s, event("a2", "Subscribe", "s2", "b@example.com")); dup {
		t.Fatal("a2 taken for a duplicate")
	}
	if st, ok := readSub(t, s, "s2"); !ok || st.email != "b@example.com" {
		t.Errorf("after the refused row: %+v %v", st, ok)
	}
}

// With GroupWait, requests that arrive a little apart share one commit.
func TestGroupWaitGathersRequests(t *testing.T) {
	s := openStore(t, Options{GroupWait: 300 * time.Millisecond})
	commits := func() uint64 {
		var m dto.Metric
		s.metrics.commitSize.Write(&m)
		return m.GetHistogram().GetSampleCount()
	}
	before := commits()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ingest(t, s, event(fmt.Sprintf("w%d", i), "Subscribe", fmt.Sprintf("s%d", i), "a@example.com"))
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if n := commits() - before; n != 1 {
		t.Errorf("3 requests 20 ms apart took %d commits, want 1", n)
	}
}

// A fatal database error (here the one a full disk gives) makes the store refuse writes with
// ErrUnavailable, and the reason it reports names the data file without its folder: the
// reason reaches /readyz and /healthz, which may be public.
func TestFatalErrorRefusesWritesAndHidesTheFolder(t *testing.T) {
	s := openStore(t, Options{})
	if s.Fatal() != nil {
		t.Fatal("a fresh store reports a fatal error")
	}
	dir := filepath.Dir(s.opts.Path)
	if !s.fatal(context.Background(), fmt.Errorf("IO Error: Could not write file %q: No space left on device", s.opts.Path+".wal")) {
		t.Fatal("a full disk was not taken as fatal")
	}
	for _, err := range []error{s.Fatal(), s.Ready()} {
		if err == nil || strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), filepath.Base(s.opts.Path)+".wal") || !strings.Contains(err.Error(), "No space left") {
			t.Errorf("reason %v: want the file's base name and the cause, not the folder %s", err, dir)
		}
	}
	if _, _, err := s.Ingest(context.Background(), decode(t, event("f1", "Subscribe", "s1", "a@example.com"))); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ingest after a fatal error: %v, want ErrUnavailable", err)
	}
}

// Opening a path with no data file says it starts an empty one (a mistyped --data would
// otherwise look like a store that lost its events); reopening it says nothing of the kind.
func TestNewDataFileIsLogged(t *testing.T) {
	var buf bytes.Buffer
	path := filepath.Join(t.TempDir(), "new", "hb.duckdb")
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s := openStore(t, Options{Path: path, Logger: log})
	s.Close()
	if !strings.Contains(buf.String(), "creating a new, empty one") {
		t.Fatalf("no word of a new data file: %s", buf.String())
	}
	buf.Reset()
	openStore(t, Options{Path: path, Logger: log}).Close()
	if strings.Contains(buf.String(), "creating a new") {
		t.Errorf("reopening an existing file said it was new: %s", buf.String())
	}
}

// Errors carry the package's prefix once, however many of the store's methods they pass.
func TestErrorsArePrefixedOnce(t *testing.T) {
	exports := t.TempDir()
	s := openStore(t, Options{AllowedDirectories: []string{exports}})
	ctx := context.Background()
	_, err1 := s.Query(ctx, "SELECT nope FROM events", 10, 0)
	_, err2 := s.Export(ctx, "SELECT nope FROM events", "", "csv", exports)
	_, err3 := s.Query(ctx, "DELETE FROM events", 10, 0)
	_, err4 := s.ReadRows(ctx, "SELECT nope FROM events")
	for _, err := range []error{err1, err2, err3, err4} {
		if err == nil || !strings.HasPrefix(err.Error(), "store: ") || strings.Count(err.Error(), "store:") != 1 {
			t.Errorf("error %q: want one store: prefix", err)
		}
	}
}

// A Subscribe is a subscription's first event whenever it arrives: one that arrives after
// newer details (a late retry) fills in only what they lacked, in the writer's merges and in
// a rebuild alike; and "calendarTags": [] clears the tags.
func TestLateSubscribeFillsInAndEmptyTagsClear(t *testing.T) {
	body := func(id, typ, email, postcode, tags string, consent bool) string {
		return fmt.Sprintf(`{"eventId":%q,"eventType":%q,"eventDetails":{"calendarSubscriptionId":"s1","subscription":{"calendarSubscriptionId":"s1","calendarId":"c1","calendarTitle":"Fixtures","subscriberEmail":%q,"postcode":%q,"optIn1":%t,"firstName":%q,"calendarTags":%s}}}`,
			id, typ, email, postcode, consent, map[string]string{"Subscribe": "Olive"}[typ], tags)
	}
	check := func(s *Store, when string) {
		t.Helper()
		readSub(t, s, "s1")
		got := queryStrings(t, s, `SELECT email, postcode, marketing_consent, first_name, tag_ids FROM subscriptions WHERE subscription_id = 's1'`)
		expectRows(t, got, []string{"new@example.com | 2222 | false | Olive | []"})
		if t.Failed() {
			t.Fatalf("%s", when)
		}
	}
	for _, split := range []bool{false, true} {
		s := openStore(t, Options{})
		ingest(t, s, body("d1", "SubscriptionDetailsUpdated", "new@example.com", "2222", `[]`, false))
		if split {
			readSub(t, s, "s1") // the details merged on their own before the Subscribe arrives
		}
		ingest(t, s, body("s1", "Subscribe", "old@example.com", "1111", `[{"tagId":"t1"}]`, true))
		check(s, fmt.Sprintf("merged (details merged first: %v)", split))
		if err := s.rebuildState(context.Background()); err != nil {
			t.Fatal(err)
		}
		check(s, "rebuilt")
	}
}

// Two statements in one query are refused with a plain sentence, not the driver's advice to
// a Go programmer.
func TestMultiStatementQueryIsRefusedPlainly(t *testing.T) {
	s := openStore(t, Options{})
	_, err := s.Query(context.Background(), "SELECT 1; SELECT 2", 10, 0)
	if err == nil || !strings.Contains(err.Error(), "send one statement at a time") || strings.Contains(err.Error(), "PrepareContext") {
		t.Errorf("two statements: %v", err)
	}
}

// Migration 7 refolds the subscriptions of a file made before it: a row an older rule left
// with a late Subscribe's values comes out by the current rule, and the kept tables with it.
func TestMigration7RefoldsSubscriptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb.duckdb")
	s := openStore(t, Options{Path: path})
	ingest(t, s, `{"eventId":"d1","eventType":"SubscriptionDetailsUpdated","eventDetails":{"calendarSubscriptionId":"s1","subscription":{"calendarSubscriptionId":"s1","subscriberEmail":"new@example.com"}}}`)
	ingest(t, s, `{"eventId":"s1","eventType":"Subscribe","eventDetails":{"calendarSubscriptionId":"s1","subscription":{"calendarSubscriptionId":"s1","subscriberEmail":"old@example.com"}}}`)
	readSub(t, s, "s1")
	// What the older rule left: the late Subscribe's address, and migration 7 not applied.
	for _, q := range []string{
		"UPDATE subscriptions SET email = 'old@example.com', email_key = 'old@example.com'",
		"DELETE FROM schema_migrations WHERE version = 7",
	} {
		if _, err := s.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openStore(t, Options{Path: path})
	expectRows(t, queryStrings(t, s, "SELECT email_key FROM subscriptions"), []string{"new@example.com"})
	expectRows(t, queryStrings(t, s, "SELECT email_key FROM mailing_list"), []string{"new@example.com"})
}
