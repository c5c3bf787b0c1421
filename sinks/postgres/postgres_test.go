package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

// testDSN is the PostgreSQL server the tests use; they skip without one (CI never skips).
func testDSN(t testing.TB) string {
	dsn := os.Getenv("HOOKBRIDGE_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("HOOKBRIDGE_CI") != "" {
			t.Fatal("HOOKBRIDGE_TEST_POSTGRES is not set in CI (.ci/run sets it)")
		}
		t.Skip("no PostgreSQL: set HOOKBRIDGE_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable, or run .ci/run, which starts one")
	}
	return dsn
}

// testSchema creates a schema of the test's own, dropped when the test ends, and returns
// its name and a connection for checks.
func testSchema(t testing.TB, dsn string) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	name := fmt.Sprintf("hbtest_%d_%d", time.Now().UnixNano()%1e9, rand.IntN(1e6))
	t.Cleanup(func() {
		conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE")
		conn.Close(ctx)
	})
	return name, conn
}

func settings(dsn, schema string) json.RawMessage {
	b, _ := json.Marshal(Settings{DSN: dsn, Schema: schema})
	return b
}

// open returns a configured sink, closed when the test ends.
func open(t testing.TB, raw json.RawMessage, name string) *Sink {
	t.Helper()
	s := New().(*Sink)
	if err := s.Configure(context.Background(), sdk.Config{Name: name, Settings: raw}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// batch builds a batch of rows with the columns the sink's spec asks for.
func batch(t testing.TB, id string, rows []schemas.Row, cols []string) *sdk.Batch {
	t.Helper()
	if cols == nil {
		cols = append([]string{"seq", "event_id", "event_type"}, New().Spec().Columns...)
		cols = slices.Compact(cols)
	}
	schema, err := schemas.SchemaFor(dedupe(cols))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.NewBatch(id, 1, rec, nil)
}

func dedupe(cols []string) []string {
	var out []string
	for _, c := range cols {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// genRows makes n events over n/3 subscriptions: each subscribes, some update, some end.
func genRows(first int64, n int) []schemas.Row {
	t0 := time.Date(2025, 9, 1, 9, 0, 0, 0, time.UTC)
	var rows []schemas.Row
	consent := true
	for i := 0; i < n; i++ {
		seq := first + int64(i)
		sub := fmt.Sprintf("sub-%d", (first+int64(i))/3)
		at := t0.Add(time.Duration(seq) * time.Minute)
		r := schemas.Row{Seq: seq, EventID: fmt.Sprintf("ev-%08d", seq), Source: "rokt", ReceivedAt: at, OccurredAt: at,
			SubscriptionID: sub, CalendarCode: fmt.Sprintf("cal-%d", seq%7), CalendarTitle: "Fixtures", TagIDs: []string{"t1", fmt.Sprintf("t%d", seq%5)},
			Email: fmt.Sprintf("user%d@example.com", seq/3), EmailKey: fmt.Sprintf("user%d@example.com", seq/3), Postcode: "3121", MarketingConsent: &consent,
			Raw: []byte(fmt.Sprintf(`{"eventId":"ev-%08d"}`, seq)), Flags: []string{}}
		switch seq % 3 {
		case 0:
			r.EventType, r.Status, r.SubscribedAt = "Subscribe", "subscribed", &at
		case 1:
			r.EventType, r.Status, r.FirstName = "SubscriptionDetailsUpdated", "subscribed", "Ann"
		case 2:
			if seq%2 == 0 {
				r.EventType, r.Status, r.UnsubscribedAt, r.RemovedAt = "Unsubscribe", "unsubscribed", &at, &at
			} else {
				r.EventType, r.Status = "SubscriptionEventAdded", "subscribed"
				start := time.Date(2025, 10, 4, 14, 30, 0, 0, time.UTC)
				r.EventStart, r.EventTimezone = &start, "Australia/Melbourne"
			}
		}
		r.EventTypeSent = r.EventType
		rows = append(rows, r)
	}
	return rows
}

func count(t testing.TB, conn *pgx.Conn, q string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestConformance(t *testing.T) {
	dsn := testDSN(t)
	schema, conn := testSchema(t, dsn)
	sinktest.Run(t, sinktest.Config{
		New:      New,
		Settings: settings(dsn, schema),
		BadSettings: map[string]json.RawMessage{
			"dsn":                 json.RawMessage(`{"schema": "x"}`),
			"schema":              json.RawMessage(`{"dsn": "postgres://localhost/test", "schema": "x; DROP TABLE y"}`),
			"connect_timeout":     json.RawMessage(`{"dsn": "postgres://localhost/test", "connect_timeout": "soon"}`),
			"subscriptions_table": json.RawMessage(`{"dsn": "postgres://localhost/test", "events_table": "a", "subscriptions_table": "a"}`),
			"password":            json.RawMessage(`{"dsn": "postgres://localhost/test", "password": "x"}`),
		},
		Reset: func(t *testing.T) { conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") },
		Delivered: func(t *testing.T, rows []schemas.Row) {
			if n := count(t, conn, "SELECT count(*) FROM "+schema+".events"); n != len(rows) {
				t.Fatalf("%d events for %d rows", n, len(rows))
			}
			var email, status string
			var tags []string
			err := conn.QueryRow(context.Background(), "SELECT e.email, e.tag_ids, s.status FROM "+schema+".events e JOIN "+schema+".subscriptions s USING (subscription_id) WHERE e.seq = $1", rows[0].Seq).Scan(&email, &tags, &status)
			if err != nil || email != rows[0].Email || !slices.Equal(tags, rows[0].TagIDs) || status != "subscribed" {
				t.Errorf("first row: %v %q %v %q", err, email, tags, status)
			}
			if n := count(t, conn, "SELECT count(*) FROM "+schema+".subscriptions WHERE status = 'unsubscribed'"); n != 1 {
				t.Errorf("%d ended subscriptions, want 1", n)
			}
		},
	})
}

// TestLoadResendAndRoundTrip loads batches, compares every value read back with the rows,
// and re-sends them: no duplicate, and not one tuple rewritten.
func TestLoadResendAndRoundTrip(t *testing.T) {
	dsn := testDSN(t)
	schema, conn := testSchema(t, dsn)
	s := open(t, settings(dsn, schema), "warehouse")
	ctx := context.Background()
	rows := genRows(1, 3000)
	rows[5].FirstName = "Zo\x00e" // PostgreSQL text cannot hold NUL: it is dropped
	for i := 0; i < len(rows); i += 1000 {
		if err := s.Write(ctx, batch(t, fmt.Sprint("b", i), rows[i:i+1000], nil)); err != nil {
			t.Fatal(err)
		}
	}
	xmins := func() string {
		var a, b string
		conn.QueryRow(ctx, "SELECT string_agg(xmin::text, ',' ORDER BY event_id) FROM "+schema+".events").Scan(&a)
		conn.QueryRow(ctx, "SELECT string_agg(xmin::text, ',' ORDER BY subscription_id) FROM "+schema+".subscriptions").Scan(&b)
		return a + "|" + b
	}
	before := xmins()
	for i := 0; i < len(rows); i += 1000 {
		if err := s.Write(ctx, batch(t, fmt.Sprint("b", i), rows[i:i+1000], nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".events"); n != len(rows) {
		t.Fatalf("%d events after a re-send of %d", n, len(rows))
	}
	if xmins() != before {
		t.Error("a re-sent batch rewrote rows")
	}
	// Row for row.
	q := "SELECT seq, event_id, event_type, received_at, subscription_id, tag_ids, email, first_name, marketing_consent, removed_at, event_start, event_timezone, raw FROM " + schema + ".events ORDER BY seq"
	res, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for res.Next() {
		var got schemas.Row
		var consent *bool
		var first *string
		var tz *string
		if err := res.Scan(&got.Seq, &got.EventID, &got.EventType, &got.ReceivedAt, &got.SubscriptionID, &got.TagIDs, &got.Email, &first, &consent, &got.RemovedAt, &got.EventStart, &tz, &got.Raw); err != nil {
			t.Fatal(err)
		}
		want := rows[i]
		if want.FirstName == "Zo\x00e" {
			want.FirstName = "Zoe"
		}
		ok := got.Seq == want.Seq && got.EventID == want.EventID && got.EventType == want.EventType && got.ReceivedAt.Equal(want.ReceivedAt) &&
			got.SubscriptionID == want.SubscriptionID && slices.Equal(got.TagIDs, want.TagIDs) && got.Email == want.Email &&
			consent != nil && *consent && string(got.Raw) == string(want.Raw) &&
			(first == nil) == (want.FirstName == "") && (first == nil || *first == want.FirstName) &&
			(got.RemovedAt == nil) == (want.RemovedAt == nil) && (got.RemovedAt == nil || got.RemovedAt.Equal(*want.RemovedAt)) &&
			(got.EventStart == nil) == (want.EventStart == nil) && (got.EventStart == nil || got.EventStart.Equal(*want.EventStart)) &&
			(tz == nil) == (want.EventTimezone == "")
		if !ok {
			t.Fatalf("row %d differs:\n got %+v\nwant %+v", i, got, want)
		}
		i++
	}
	if i != len(rows) {
		t.Fatalf("read %d rows back", i)
	}
	// One subscription per three events; those whose third event was an Unsubscribe ended.
	var wantEnded int
	for _, r := range rows {
		if r.EventType == "Unsubscribe" {
			wantEnded++
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".subscriptions WHERE status = 'unsubscribed' AND unsubscribed_at IS NOT NULL"); n != wantEnded {
		t.Errorf("%d ended subscriptions, want %d", n, wantEnded)
	}
}

// TestEndedSubscriptionIsNeverReopened: an Unsubscribe followed by older rows (a replay, a
// late batch) and by a newer row that claims the subscription is active leaves it ended,
// while the newer row's contact data is kept and the older row's is not.
func TestEndedSubscriptionIsNeverReopened(t *testing.T) {
	dsn := testDSN(t)
	schema, conn := testSchema(t, dsn)
	s := open(t, settings(dsn, schema), "warehouse")
	ctx := context.Background()
	t0 := time.Date(2025, 9, 1, 9, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	row := func(seq int64, typ, status, first string, at time.Time) schemas.Row {
		r := schemas.Row{Seq: seq, EventID: fmt.Sprint("e", seq), EventType: typ, EventTypeSent: typ, Source: "rokt", ReceivedAt: at, OccurredAt: at,
			SubscriptionID: "sub-1", Email: "a@example.com", EmailKey: "a@example.com", FirstName: first, Status: status}
		if typ == "Subscribe" {
			r.SubscribedAt = &at
		}
		if typ == "Unsubscribe" {
			r.UnsubscribedAt = &at
		}
		return r
	}
	write := func(id string, rows ...schemas.Row) {
		t.Helper()
		if err := s.Write(ctx, batch(t, id, rows, nil)); err != nil {
			t.Fatal(err)
		}
	}
	write("b1", row(20, "Unsubscribe", "unsubscribed", "", t1))
	write("b2", row(10, "Subscribe", "subscribed", "Old", t0))
	write("b3", row(30, "SubscriptionDetailsUpdated", "subscribed", "New", t2))
	write("b2", row(10, "Subscribe", "subscribed", "Old", t0))
	var status, first, lastType string
	var subAt, unsubAt time.Time
	var lastSeq int64
	err := conn.QueryRow(ctx, "SELECT status, first_name, subscribed_at, unsubscribed_at, last_seq, last_event_type FROM "+schema+".subscriptions WHERE subscription_id = 'sub-1'").
		Scan(&status, &first, &subAt, &unsubAt, &lastSeq, &lastType)
	if err != nil {
		t.Fatal(err)
	}
	if status != "unsubscribed" || first != "New" || !subAt.Equal(t0) || !unsubAt.Equal(t1) || lastSeq != 30 || lastType != "SubscriptionDetailsUpdated" {
		t.Errorf("got status %s first %s subscribed %v unsubscribed %v last %d %s", status, first, subAt, unsubAt, lastSeq, lastType)
	}
}

// TestUnknownSubscriptionIsNotASubscriber: a calendar-event change for a subscription whose
// state hookbridge does not know (no Subscribe seen: its status is null) is loaded as an event
// but makes no subscriptions row; the Subscribe that arrives later does.
func TestUnknownSubscriptionIsNotASubscriber(t *testing.T) {
	dsn := testDSN(t)
	schema, conn := testSchema(t, dsn)
	s := open(t, settings(dsn, schema), "warehouse")
	ctx := context.Background()
	at := time.Date(2025, 9, 1, 9, 0, 0, 0, time.UTC)
	row := func(seq int64, typ, status string) schemas.Row {
		r := schemas.Row{Seq: seq, EventID: fmt.Sprint("e", seq), EventType: typ, EventTypeSent: typ, Source: "rokt", ReceivedAt: at, OccurredAt: at,
			SubscriptionID: "sub-2", CalendarID: "cal-1", Status: status}
		if status != "" { // delivery joins the known state's contact fields to every row
			r.SubscribedAt = &at
			r.Email, r.EmailKey = "b@example.com", "b@example.com"
		}
		return r
	}
	if err := s.Write(ctx, batch(t, "b1", []schemas.Row{row(1, "SubscriptionEventUpdated", "")}, nil)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".events"); n != 1 {
		t.Fatalf("%d events loaded, want 1", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".subscriptions"); n != 0 {
		t.Fatalf("a subscription never seen subscribing made %d subscriptions rows", n)
	}
	if err := s.Write(ctx, batch(t, "b2", []schemas.Row{row(2, "Subscribe", "subscribed"), row(3, "SubscriptionEventUpdated", "subscribed")}, nil)); err != nil {
		t.Fatal(err)
	}
	var status, email string
	var lastSeq int64
	if err := conn.QueryRow(ctx, "SELECT status, email, last_seq FROM "+schema+".subscriptions WHERE subscription_id = 'sub-2'").Scan(&status, &email, &lastSeq); err != nil {
		t.Fatal(err)
	}
	if status != "subscribed" || email != "b@example.com" || lastSeq != 3 {
		t.Errorf("got status %s email %s last_seq %d", status, email, lastSeq)
	}
}

// TestNewColumnIsAdded: a table made by an older version (fewer columns), and a column an
// operator dropped, are completed on the next load.
func TestNewColumnIsAdded(t *testing.T) {
	dsn := testDSN(t)
	schema, conn := testSchema(t, dsn)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE SCHEMA %s; CREATE TABLE %s.events (seq bigint, event_id text PRIMARY KEY, event_type text, received_at timestamptz)", schema, schema)); err != nil {
		t.Fatal(err)
	}
	s := open(t, settings(dsn, schema), "warehouse")
	rows := genRows(1, 30)
	if err := s.Write(ctx, batch(t, "b1", rows[:10], nil)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".events WHERE email IS NOT NULL AND postcode = '3121' AND tag_ids[1] = 't1'"); n != 10 {
		t.Fatalf("%d rows with the added columns filled, want 10", n)
	}
	// The normalised schema gains a column while the sink runs (here: the column vanished).
	if _, err := conn.Exec(ctx, "ALTER TABLE "+schema+".events DROP COLUMN postcode"); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, batch(t, "b2", rows[10:20], nil))
	if _, down := sdk.AsSinkDown(err); err != nil && !down {
		t.Fatalf("a load into a changed table must be retried without charging rows: %v", err)
	}
	if err != nil {
		if err := s.Write(ctx, batch(t, "b2", rows[10:20], nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write(ctx, batch(t, "b3", rows[20:], nil)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".events WHERE postcode = '3121'"); n != 20 {
		t.Errorf("%d rows with the re-added column filled, want 20", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".events"); n != 30 {
		t.Errorf("%d rows, want 30", n)
	}
}

// TestConnectionsKilledMidLoad terminates the sink's connection (pg_terminate_backend) while
// a statement of a load is running, several times; every failed load is retried like the
// engine does, and in the end every event is there once. After each kill the killer waits
// for a load to succeed, so the test does not depend on how fast a load is on this machine.
func TestConnectionsKilledMidLoad(t *testing.T) {
	dsn := testDSN(t)
	schema, conn := testSchema(t, dsn)
	ctx := context.Background()
	app := "hookbridge-" + schema
	s := open(t, settings(dsn, schema), schema)
	const wantKills = 6
	var kills atomic.Int64
	stop := make(chan struct{})
	loaded := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		killer, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer killer.Close(ctx)
		for kills.Load() < wantKills {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+rand.IntN(4)) * time.Millisecond):
			}
			select { // a load that succeeded before this kill does not count after it
			case <-loaded:
			default:
			}
			var n int64
			if err := killer.QueryRow(ctx, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'", app).Scan(&n); err != nil {
				t.Errorf("the killer's query: %v", err)
				return
			}
			if n == 0 {
				continue
			}
			kills.Add(n)
			select { // let the sink recover before the next kill
			case <-loaded:
			case <-stop:
				return
			}
		}
	}()
	var failures, batches int
	var all []schemas.Row
	for b := 0; b < 400 && (b < 30 || kills.Load() < wantKills); b++ {
		rows := genRows(int64(b*500+1), 500)
		all = append(all, rows...)
		bt := batch(t, fmt.Sprint("b", b), rows, nil)
		for attempt := 1; ; attempt++ {
			err := s.Write(ctx, bt)
			if err == nil {
				select {
				case loaded <- struct{}{}:
				default:
				}
				break
			}
			failures++
			if _, ok := sdk.AsSinkDown(err); !ok && !strings.Contains(err.Error(), "terminat") {
				t.Fatalf("batch %d: %v (want a sink-down error: the warehouse is unreachable, not the rows at fault)", b, err)
			}
			if attempt > wantKills+1 {
				t.Fatalf("batch %d never loaded: %v", b, err)
			}
		}
		batches++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d batches, %d connections killed, %d failed loads retried", batches, kills.Load(), failures)
	if failures == 0 {
		t.Fatal("no load was interrupted: the test proved nothing")
	}
	if n := count(t, conn, "SELECT count(*) FROM "+schema+".events"); n != len(all) {
		t.Fatalf("%d events stored, want %d", n, len(all))
	}
	if n := count(t, conn, "SELECT count(DISTINCT seq) FROM "+schema+".events"); n != len(all) {
		t.Fatalf("%d distinct seqs, want %d", n, len(all))
	}
}

// TestUnreachableServerIsSinkDown: a server that does not answer is the destination being
// down (no row charged), and Check says so.
func TestUnreachableServerIsSinkDown(t *testing.T) {
	raw := json.RawMessage(`{"dsn": "postgres://nobody:secret-pw@127.0.0.1:1/none?sslmode=disable", "connect_timeout": "2s"}`)
	s := open(t, raw, "warehouse")
	err := s.Write(context.Background(), batch(t, "b1", genRows(1, 3), nil))
	if _, ok := sdk.AsSinkDown(err); !ok {
		t.Fatalf("got %v, want a sink-down error", err)
	}
	if err := s.Check(context.Background()); err == nil {
		t.Fatal("check passed against a closed port")
	} else if strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("the error shows the password: %v", err)
	}
	var rejected *sdk.BatchRejectedError
	if errors.As(err, &rejected) {
		t.Error("an unreachable server rejected the batch")
	}
}
