package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hookbridge/hookbridge/schemas"
)

// ingestAt stores body as received at t.
func ingestAt(t *testing.T, s *Store, body string, at time.Time) int64 {
	t.Helper()
	dec, _ := schemas.NewDecoder(nil)
	ev, err := dec.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	r := ev.Row("rokt", at)
	seq, _, err := s.Ingest(context.Background(), &r)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func sub(id, subID, email, postcode, calendar string, tags ...string) string {
	tagJSON := make([]string, len(tags))
	for i, tg := range tags {
		tagJSON[i] = fmt.Sprintf(`{"tagId":%q}`, tg)
	}
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaSms","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"acme",
		"subscription":{"calendarSubscriptionId":%q,"calendarId":"c-%s","calendarTitle":"%s Fixtures","calendarCode":%q,"subscriberEmail":%q,"firstName":"F-%s","postcode":%q,"optIn1":true,"calendarTags":[%s]}}}`,
		id, subID, subID, calendar, calendar, calendar, email, id, postcode, strings.Join(tagJSON, ","))
}

func unsub(id, subID string, removed time.Time) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Unsubscribe","eventDetails":{"actionType":"SubscriptionViaCalendarPage","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"acme",
		"subscription":{"removedDateTimeUtc":%q}}}`, id, subID, removed.UTC().Format("2006-01-02 15:04:05.000000"))
}

// analyticsStore holds a small, hand-built history:
//   - ann subscribes to footy (Mon 2025-09-01 09:30 UTC) and rugby (Tue 10:15 UTC);
//   - bob subscribes to footy (Mon 23:10 UTC), then unsubscribes (Wed);
//   - cat's Unsubscribe arrives before her Subscribe (out of order): she is not on the list;
//   - dan subscribes to rugby with plus-addressing in upper case.
func analyticsStore(t *testing.T, zone string) *Store {
	t.Helper()
	s := openStore(t, Options{AnalyticsZone: zone})
	mon := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	ingestAt(t, s, sub("e1", "s-ann-footy", "ann@example.com", "3121", "footy", "t-home", "t-away"), mon.Add(9*time.Hour+30*time.Minute))
	ingestAt(t, s, sub("e2", "s-ann-rugby", "ann@example.com", "3121", "rugby", "t-home"), mon.Add(34*time.Hour+15*time.Minute))
	ingestAt(t, s, sub("e3", "s-bob-footy", "bob@example.com", "2000", "footy", "t-home"), mon.Add(23*time.Hour+10*time.Minute))
	ingestAt(t, s, unsub("e4", "s-bob-footy", mon.Add(50*time.Hour)), mon.Add(50*time.Hour))
	ingestAt(t, s, unsub("e5", "s-cat-footy", mon.Add(30*time.Hour)), mon.Add(30*time.Hour))
	ingestAt(t, s, sub("e6", "s-cat-footy", "cat@example.com", "2000", "footy", "t-away"), mon.Add(31*time.Hour))
	ingestAt(t, s, sub("e7", "s-dan-rugby", "Dan+Rugby@Example.COM", "sw1a 1aa", "rugby", "t-home"), mon.Add(33*time.Hour))
	ingestAt(t, s, `{"eventId":"t1","eventType":"Test","eventDetails":{}}`, mon.Add(40*time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitState(ctx, 8); err != nil {
		t.Fatal(err)
	}
	return s
}

func queryStrings(t *testing.T, s *Store, q string) []string {
	t.Helper()
	res, err := s.Query(context.Background(), q, 1000, 10*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var out []string
	for _, r := range res.Rows {
		parts := make([]string, len(r))
		for i, v := range r {
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.RFC3339)
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, " | "))
	}
	return out
}

func expectRows(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMailingList(t *testing.T) {
	s := analyticsStore(t, "")
	expectRows(t, queryStrings(t, s, `SELECT email_key, email, first_name, postcode, marketing_consent, calendar_codes, tag_ids, active_subscriptions, first_subscribed_at FROM mailing_list ORDER BY email_key`), []string{
		"ann@example.com | ann@example.com | F-e2 | 3121 | true | [footy rugby] | [t-away t-home] | 2 | 2025-09-01T09:30:00Z",
		"dan+rugby@example.com | Dan+Rugby@example.com | F-e7 | SW1A 1AA | true | [rugby] | [t-home] | 1 | 2025-09-02T09:00:00Z",
	})
}

func TestSubscriptionsDaily(t *testing.T) {
	s := analyticsStore(t, "")
	expectRows(t, queryStrings(t, s, `SELECT day, calendar_code, sum(subscribes), sum(unsubscribes), sum(net) FROM subscriptions_daily GROUP BY ALL ORDER BY day, calendar_code`), []string{
		"2025-09-01T00:00:00Z | footy | 2 | 0 | 2",
		"2025-09-02T00:00:00Z | footy | 1 | 1 | 0", // cat: subscribe and (earlier-arriving) unsubscribe
		"2025-09-02T00:00:00Z | rugby | 2 | 0 | 2",
		"2025-09-03T00:00:00Z | footy | 0 | 1 | -1",
	})
	expectRows(t, queryStrings(t, s, `SELECT hour, sum(subscribes) FROM subscriptions_hourly WHERE hour < TIMESTAMPTZ '2025-09-02 00:00:00+00' GROUP BY ALL ORDER BY hour`), []string{
		"2025-09-01T09:00:00Z | 1",
		"2025-09-01T23:00:00Z | 1",
	})
	// A one-day campaign on 2 September and the day either side; then the campaign alone.
	expectRows(t, queryStrings(t, s, `SELECT day, in_campaign, calendar_code, sum(subscribes), sum(unsubscribes), sum(net) FROM campaign_days(DATE '2025-09-02', DATE '2025-09-02', 1) GROUP BY ALL ORDER BY day, calendar_code`), []string{
		"2025-09-01T00:00:00Z | false | footy | 2 | 0 | 2",
		"2025-09-02T00:00:00Z | true | footy | 1 | 1 | 0",
		"2025-09-02T00:00:00Z | true | rugby | 2 | 0 | 2",
		"2025-09-03T00:00:00Z | false | footy | 0 | 1 | -1",
	})
	expectRows(t, queryStrings(t, s, `SELECT day, sum(subscribes) FROM campaign_days('2025-09-02', '2025-09-02', days_around := 0) GROUP BY ALL`), []string{
		"2025-09-02T00:00:00Z | 3",
	})
}

// TestSubscriptionChangesDayAndCalendar: an Unsubscribe takes its calendar, account and title
// from the subscription; a time before 1970 still falls on its own UTC day and hour.
func TestSubscriptionChangesDayAndCalendar(t *testing.T) {
	s := openStore(t, Options{})
	old := time.Date(1969, 12, 31, 12, 30, 0, 0, time.UTC)
	ingestAt(t, s, sub("o1", "s-old", "old@example.com", "3000", "footy"), old)
	ingestAt(t, s, unsub("o2", "s-old", old.Add(time.Hour)), old.Add(time.Hour))
	if err := s.WaitState(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	expectRows(t, queryStrings(t, s, `SELECT event_id, day, hour, account_code, calendar_code, calendar_title FROM subscription_changes ORDER BY seq`), []string{
		"o1 | 1969-12-31T00:00:00Z | 1969-12-31T12:00:00Z | acme | footy | footy Fixtures",
		"o2 | 1969-12-31T00:00:00Z | 1969-12-31T13:00:00Z | acme | footy | footy Fixtures",
	})
}

func TestTagPopularityByPostcode(t *testing.T) {
	s := analyticsStore(t, "")
	expectRows(t, queryStrings(t, s, `SELECT postcode, tag_id, subscriptions, subscribers FROM tag_popularity_by_postcode ORDER BY postcode, tag_id`), []string{
		"3121 | t-away | 1 | 1",
		"3121 | t-home | 2 | 1",
		"SW1A 1AA | t-home | 1 | 1",
	})
}

func TestSubscribesByWeekdayHourInTwoZones(t *testing.T) {
	s := analyticsStore(t, "Australia/Melbourne")
	// Melbourne is UTC+10 on 1-2 September 2025 (daylight saving starts on 5 October).
	expectRows(t, queryStrings(t, s, `SELECT zone, weekday, weekday_name, hour, subscribes FROM subscribes_by_weekday_hour ORDER BY zone DESC, weekday, hour`), []string{
		"UTC | 1 | Monday | 9 | 1",
		"UTC | 1 | Monday | 23 | 1",
		"UTC | 2 | Tuesday | 7 | 1",
		"UTC | 2 | Tuesday | 9 | 1",
		"UTC | 2 | Tuesday | 10 | 1",
		"Australia/Melbourne | 1 | Monday | 19 | 1",
		"Australia/Melbourne | 2 | Tuesday | 9 | 1",
		"Australia/Melbourne | 2 | Tuesday | 17 | 1",
		"Australia/Melbourne | 2 | Tuesday | 19 | 1",
		"Australia/Melbourne | 2 | Tuesday | 20 | 1",
	})
	// After the change to daylight saving the offset is 11 hours.
	ingestAt(t, s, sub("e8", "s-eve", "eve@example.com", "3000", "footy"), time.Date(2025, 10, 6, 1, 0, 0, 0, time.UTC))
	s.WaitState(context.Background(), 9)
	expectRows(t, queryStrings(t, s, `SELECT weekday_name, hour FROM subscribes_by_weekday_hour WHERE zone <> 'UTC' AND weekday = 1 AND hour = 12`), []string{"Monday | 12"})
}

func TestQueryRefusesWhatIsNotAReadOfTheDatabase(t *testing.T) {
	exports := t.TempDir()
	s := openStore(t, Options{AllowedDirectories: []string{exports}})
	leak := filepath.Join(exports, "leak.csv")
	for q, want := range map[string]string{
		// EXPLAIN ANALYZE runs what it explains, even in a folder external access allows.
		"EXPLAIN ANALYZE COPY (SELECT 1) TO '" + leak + "'":                         "only read statements",
		"explain analyse copy events to '" + leak + "'":                             "only read statements",
		"/* why */ EXPLAIN ANALYZE CHECKPOINT":                                      "only read statements",
		"EXPLAIN ANALYZE DELETE FROM events":                                        "only read statements",
		"EXPLAIN (ANALYZE, FORMAT json) INSERT INTO rejected (source) VALUES ('x')": "only read statements",
		// Comments DuckDB reads otherwise than a regular expression would (a -- comment ends at
		// \r; block comments nest).
		"--x\rEXPLAIN ANALYZE COPY (SELECT 42) TO '" + leak + "' /*\n EXPLAIN ANALYZE SELECT 1 --*/": "only read statements",
		"/* /* */ EXPLAIN ANALYZE SELECT 1 --*/ EXPLAIN ANALYZE COPY (SELECT 42) TO '" + leak + "'":  "only read statements",
		"/* /* */ EXPLAIN SELECT 1 --*/ EXPLAIN ANALYZE CHECKPOINT":                                  "only read statements",
		// Table functions a SELECT can call that write the database file.
		"SELECT * FROM checkpoint()":                           "only read statements",
		"FROM force_checkpoint()":                              "only read statements",
		"SELECT * FROM \"CHECKPOINT\"()":                       "only read statements",
		"COPY events TO '/tmp/hookbridge-leak.csv'":            "disabled by configuration",
		"SELECT * FROM read_csv('/etc/passwd')":                "disabled by configuration",
		"ATTACH '/tmp/other.duckdb' AS o":                      "only read statements",
		"DELETE FROM events":                                   "only read statements",
		"INSERT INTO rejected (source) VALUES ('x')":           "only read statements",
		"SET enable_external_access = true":                    "only read statements",
		"SELECT nextval('delivery_id')":                        "read-only",
		"SELECT 1; DELETE FROM events":                         "one statement",
		"CREATE TABLE x AS SELECT 1":                           "only read statements",
		"SELECT * FROM read_parquet('/root/anything.parquet')": "disabled by configuration",
		"PRAGMA enable_profiling":                              "only read statements",
	} {
		_, err := s.Query(context.Background(), q, 10, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (want an error containing %q)", q, err, want)
		}
	}
	if _, err := os.Stat(leak); err == nil {
		t.Error("an EXPLAIN ANALYZE wrote a file")
	}
	if _, err := s.Query(context.Background(), "DROP TABLE events", 10, time.Second); !errors.Is(err, ErrNotReadOnly) {
		t.Errorf("DROP: %v", err)
	}
	res, err := s.Query(context.Background(), "SELECT range AS n FROM range(50)", 10, time.Second)
	if err != nil || len(res.Rows) != 10 || !res.Truncated || res.Columns[0].Name != "n" {
		t.Errorf("row limit: %v %+v", err, res)
	}
	if _, err := s.Query(context.Background(), "SELECT count(*) FROM range(1000000000000) a", 0, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "time limit") {
		t.Errorf("time limit: %v", err)
	}
	for _, q := range []string{"SHOW TABLES", "DESCRIBE events", "EXPLAIN SELECT * FROM events", "EXPLAIN ANALYZE SELECT count(*) FROM events",
		"EXPLAIN (FORMAT json) SELECT 1", "EXPLAIN ANALYZE (SELECT 1) UNION ALL SELECT 2", "WITH x AS (SELECT 1 AS a) SELECT * FROM x", "SUMMARIZE events"} {
		if _, err := s.Query(context.Background(), q, 10, 5*time.Second); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

func TestExportAndSnapshotWhileIngesting(t *testing.T) {
	dir := t.TempDir()
	exports := filepath.Join(dir, "exports")
	os.MkdirAll(exports, 0o755)
	s := openStore(t, Options{Path: filepath.Join(dir, "hb.duckdb"), AllowedDirectories: []string{exports}})
	for i := 0; i < 50; i++ {
		ingest(t, s, event(fmt.Sprintf("x%d", i), "Subscribe", fmt.Sprintf("s%d", i), "a@example.com"))
	}
	// Keep ingesting while the snapshot is taken.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ingest(t, s, event(fmt.Sprintf("y%d", i), "Test", "", ""))
		}
	}()
	snap, err := s.Snapshot(context.Background(), exports)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	copyStore, err := Open(context.Background(), Options{Path: snap, ReadOnly: true})
	if err != nil {
		t.Fatalf("snapshot does not open: %v", err)
	}
	var n, subs int
	copyStore.DB().QueryRow("SELECT count(*) FROM events WHERE event_type = 'Subscribe'").Scan(&n)
	copyStore.DB().QueryRow("SELECT count(*) FROM mailing_list").Scan(&subs)
	copyStore.Close()
	if n != 50 || subs != 1 {
		t.Errorf("snapshot holds %d Subscribes and %d mailing-list rows; want 50 and 1 (views work in the copy)", n, subs)
	}

	for _, format := range []string{"parquet", "csv"} {
		path, err := s.Export(context.Background(), "SELECT event_id, event_type FROM events WHERE event_type = 'Subscribe' ORDER BY seq", "", format, exports)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 || filepath.Dir(path) != exports {
			t.Errorf("%s export: %v", format, err)
		}
	}
	if _, err := s.Export(context.Background(), "", "mailing_list", "csv", exports); err != nil {
		t.Errorf("export a view: %v", err)
	}
	if _, err := s.Export(context.Background(), "", "no_such_table", "csv", exports); err == nil {
		t.Error("export of an unknown table")
	}
	if _, err := s.Export(context.Background(), "DELETE FROM events", "", "csv", exports); err == nil {
		t.Error("export of a DELETE")
	}
	if _, err := s.Export(context.Background(), "SELECT 1", "", "csv", dir); err == nil {
		t.Error("export outside the allowed directories")
	}
}

// expectViewsExact fails the test unless mailing_list and tag_popularity_by_postcode answer
// exactly what grouping the whole subscriptions table answers.
func expectViewsExact(t *testing.T, s *Store, what string) {
	t.Helper()
	for _, q := range []struct{ view, fresh, order string }{
		{"mailing_list", MailingListGrouping(), "email_key"},
		{"tag_popularity_by_postcode", TagPopularityGrouping(), "postcode, tag_id"},
	} {
		got := queryStrings(t, s, "SELECT * FROM "+q.view+" ORDER BY "+q.order)
		want := queryStrings(t, s, "SELECT * FROM ("+q.fresh+") ORDER BY "+q.order)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: %s:\n%s\nwant:\n%s", what, q.view, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestKeptAnalyticsTablesStayExact drives subscriptions through subscribes, detail changes
// (email, postcode, tags) and unsubscribes, refreshing the kept tables at some points and not
// at others, and checks after each round that mailing_list and tag_popularity_by_postcode
// answer exactly what grouping the whole subscriptions table answers.
func TestKeptAnalyticsTablesStayExact(t *testing.T) {
	s := openStore(t, Options{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	emails := []string{"ann@example.com", "bob@example.com", "cat@example.com", "Dan@Example.com", "eve@example.com", "fay@example.com"}
	postcodes := []string{"3121", "2000", "SW1A 1AA", "90210"}
	tags := []string{"t-home", "t-away", "t-final", "t-cup"}
	ended := map[int]bool{}
	compare := func(round int) { t.Helper(); expectViewsExact(t, s, fmt.Sprint("round ", round)) }
	refresh := func() {
		t.Helper()
		if err := s.refreshAnalytics(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	var last int64
	n := 0
	for round := range 15 {
		for range 20 {
			n++
			id := fmt.Sprintf("e%d", n)
			subID := rng.IntN(25)
			sid := fmt.Sprintf("s-%d", subID)
			switch k := rng.IntN(10); {
			case k < 2 && !ended[subID]:
				last = ingestAt(t, s, unsub(id, sid, time.Now()), time.Now())
				ended[subID] = true
			default:
				body := sub(id, sid, emails[rng.IntN(len(emails))], postcodes[rng.IntN(len(postcodes))], fmt.Sprintf("cal%d", subID%3),
					tags[rng.IntN(len(tags))], tags[rng.IntN(len(tags))])
				if k >= 6 { // an existing subscription's details change
					body = strings.Replace(body, `"eventType":"Subscribe"`, `"eventType":"SubscriptionDetailsUpdated"`, 1)
				}
				last = ingestAt(t, s, body, time.Now())
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.WaitState(wctx, last); err != nil {
			t.Fatal(err)
		}
		cancel()
		compare(round)
		if round%3 != 2 {
			refresh()
			compare(round)
		}
	}
	if got := queryStrings(t, s, "SELECT count(*) FROM mailing_list_cache"); got[0] == "0" {
		t.Fatal("the kept mailing list is empty after refreshes: the views never read it")
	}
	if err := s.rebuildState(ctx); err != nil {
		t.Fatal(err)
	}
	compare(99)
	if got, want := queryStrings(t, s, "SELECT count(*) FROM mailing_list_cache"), queryStrings(t, s, "SELECT count(*) FROM mailing_list"); got[0] != want[0] {
		t.Fatalf("after a rebuild the kept mailing list has %s contacts, the view %s", got[0], want[0])
	}
}

// TestIdleWriterRefreshesKeptAnalyticsTables: once the writer is idle, the subscription
// changes are folded into the kept tables, which then hold what the views answer.
func TestIdleWriterRefreshesKeptAnalyticsTables(t *testing.T) {
	s := openStore(t, Options{AnalyticsRefresh: 50 * time.Millisecond})
	ingestAt(t, s, sub("e1", "s-1", "ann@example.com", "3121", "footy", "t-home"), time.Now())
	last := ingestAt(t, s, sub("e2", "s-2", "bob@example.com", "2000", "footy", "t-away"), time.Now())
	waitFor(t, func() bool {
		return strings.Join(queryStrings(t, s, "SELECT value FROM store_state WHERE key = 'analytics_seq'"), "") == fmt.Sprint(last)
	})
	expectRows(t, queryStrings(t, s, "SELECT email_key, active_subscriptions FROM mailing_list_cache ORDER BY ALL"),
		[]string{"ann@example.com | 1", "bob@example.com | 1"})
	expectRows(t, queryStrings(t, s, "SELECT * FROM tag_popularity_cache ORDER BY ALL"),
		[]string{"2000 | t-away | 1 | 1", "3121 | t-home | 1 | 1"})
}

// TestMigrationKeepsAnalyticsOfAnExistingStore: a store made before the kept tables existed
// gets them filled from its subscriptions when it is opened.
func TestMigrationKeepsAnalyticsOfAnExistingStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb.duckdb")
	s := openStore(t, Options{Path: path})
	ingestAt(t, s, sub("e1", "s-1", "ann@example.com", "3121", "footy", "t-home"), time.Now())
	last := ingestAt(t, s, sub("e2", "s-2", "ann@example.com", "3121", "rugby", "t-home"), time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitState(ctx, last); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sqlOpen(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TABLE mailing_list_cache", "DROP TABLE tag_popularity_cache", "DROP TABLE analytics_members",
		"DELETE FROM store_state WHERE key = 'analytics_seq'", "DELETE FROM schema_migrations WHERE version = 6"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()
	s = openStore(t, Options{Path: path})
	expectRows(t, queryStrings(t, s, "SELECT email_key, active_subscriptions, calendar_codes FROM mailing_list_cache"),
		[]string{"ann@example.com | 2 | [footy rugby]"})
	expectRows(t, queryStrings(t, s, "SELECT * FROM tag_popularity_cache"), []string{"3121 | t-home | 2 | 1"})
	expectRows(t, queryStrings(t, s, "SELECT value FROM store_state WHERE key = 'analytics_seq'"), []string{fmt.Sprint(last)})
}

// TestLateRefreshKeepsViewsExact: a refresh applies what it read from an older snapshot, and
// changes merged in between stay counted; one computed before a rebuild is dropped (applied,
// it would put back counts the rebuild had moved past).
func TestLateRefreshKeepsViewsExact(t *testing.T) {
	s := openStore(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	check := func(what string) { t.Helper(); expectViewsExact(t, s, what) }
	apply := func(f *analyticsFold) {
		t.Helper()
		if err := s.Apply(ctx, func(ctx context.Context, tx *Tx) error { return s.applyFold(ctx, tx, f) }); err != nil {
			t.Fatal(err)
		}
	}
	ingestAt(t, s, sub("e1", "s-1", "ann@example.com", "3121", "footy", "t-home"), time.Now())
	last := ingestAt(t, s, sub("e2", "s-2", "bob@example.com", "3121", "footy", "t-home"), time.Now())
	if err := s.WaitState(ctx, last); err != nil {
		t.Fatal(err)
	}
	f, err := s.computeFold(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.release()
	// Between the snapshot and the apply: bob moves to ann's address, ann's other
	// subscription ends, and a newcomer arrives.
	ingestAt(t, s, strings.Replace(sub("e3", "s-2", "ann@example.com", "2000", "footy", "t-away"), `"eventType":"Subscribe"`, `"eventType":"SubscriptionDetailsUpdated"`, 1), time.Now())
	ingestAt(t, s, unsub("e4", "s-1", time.Now()), time.Now())
	last = ingestAt(t, s, sub("e5", "s-3", "cat@example.com", "3121", "rugby", "t-home"), time.Now())
	if err := s.WaitState(ctx, last); err != nil {
		t.Fatal(err)
	}
	apply(f)
	check("after a late refresh")
	expectRows(t, queryStrings(t, s, "SELECT count(*) FROM mailing_list_cache"), []string{"2"}) // ann and bob, as of the snapshot

	// A refresh read before a rebuild would put back counts the rebuild already moved past.
	last = ingestAt(t, s, strings.Replace(sub("e6", "s-3", "cat@example.com", "3121", "rugby", "t-home", "t-cup"), `"eventType":"Subscribe"`, `"eventType":"SubscriptionDetailsUpdated"`, 1), time.Now())
	if err := s.WaitState(ctx, last); err != nil {
		t.Fatal(err)
	}
	stale, err := s.computeFold(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stale.release()
	last = ingestAt(t, s, sub("e7", "s-4", "dan@example.com", "3121", "rugby", "t-home"), time.Now())
	if err := s.WaitState(ctx, last); err != nil {
		t.Fatal(err)
	}
	if err := s.rebuildState(ctx); err != nil {
		t.Fatal(err)
	}
	apply(stale)
	check("after a refresh computed before a rebuild")
	expectRows(t, queryStrings(t, s, "SELECT * FROM tag_popularity_cache WHERE tag_id = 't-home'"), []string{"3121 | t-home | 2 | 2"})
}

// TestRestartRefreshesWhatWasLeft: changes merged before a restart but not folded into the
// kept tables are folded after it, without waiting for new traffic.
func TestRestartRefreshesWhatWasLeft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb.duckdb")
	s := openStore(t, Options{Path: path, AnalyticsRefresh: time.Hour})
	last := ingestAt(t, s, sub("e1", "s-1", "ann@example.com", "3121", "footy", "t-home"), time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitState(ctx, last); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, Options{Path: path, AnalyticsRefresh: 50 * time.Millisecond})
	waitFor(t, func() bool {
		return strings.Join(queryStrings(t, s, "SELECT value FROM store_state WHERE key = 'analytics_seq'"), "") == fmt.Sprint(last)
	})
	expectRows(t, queryStrings(t, s, "SELECT email_key FROM mailing_list_cache"), []string{"ann@example.com"})
}

// TestDeleteRowsByValuesAndByView: keys go as literal values or through an Arrow view, and
// both delete exactly the rows named on every key column.
func TestDeleteRowsByValuesAndByView(t *testing.T) {
	s := openStore(t, Options{})
	keys := func(from, to int) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{
			{Name: "a", Type: arrow.BinaryTypes.String}, {Name: "b", Type: arrow.BinaryTypes.String}}, nil))
		defer b.Release()
		for i := from; i < to; i++ {
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprint("k", i))
			b.Field(1).(*array.StringBuilder).Append("x")
		}
		return b.NewRecordBatch()
	}
	err := s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error {
		if err := tx.exec(ctx, "CREATE TEMP TABLE kt AS SELECT 'k' || i AS a, CASE WHEN i % 2 = 0 THEN 'x' ELSE 'y' END AS b FROM range(1000) r(i)"); err != nil {
			return err
		}
		many, few := keys(0, deleteByValues*2), keys(900, 904)
		defer many.Release()
		defer few.Release()
		for _, k := range []arrow.RecordBatch{many, few} {
			if err := deleteRows(ctx, tx, "kt", k); err != nil {
				return err
			}
		}
		var left int64
		if err := tx.Query(ctx, "SELECT count(*) FROM kt", nil, func(row []driver.Value) error { left = row[0].(int64); return nil }); err != nil {
			return err
		}
		if want := int64(1000 - deleteByValues - 2); left != want { // only the keys whose b is 'x'
			return fmt.Errorf("%d rows left, want %d", left, want)
		}
		return tx.exec(ctx, "DROP TABLE kt")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAnalyticsViewsListsEveryView: each name AnalyticsViews gives (which the query usage
// shows) is a view, or a table macro taking the arguments it shows, in a fresh store; and
// every view and table macro the store makes is listed.
func TestAnalyticsViewsListsEveryView(t *testing.T) {
	s := openStore(t, Options{})
	made := map[string]string{} // name: "view", or the table macro's parameters
	res, err := s.Query(context.Background(), `SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal AND schema_name = 'main'
		UNION ALL SELECT function_name, array_to_string(parameters, ', ') FROM duckdb_functions() WHERE function_type = 'table_macro' AND NOT internal AND schema_name = 'main'`, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		made[r[0].(string)] = r[1].(string)
	}
	listed := map[string]bool{}
	for _, v := range AnalyticsViews() {
		name, args, macro := strings.Cut(v, "(")
		listed[name] = true
		got, ok := made[name]
		switch {
		case !ok:
			t.Errorf("%s is listed but the store has no view or table macro of that name", v)
		case macro != (got != "view"):
			t.Errorf("%s is listed as a %s, but the store makes a %s", v, map[bool]string{true: "table macro", false: "view"}[macro], map[bool]string{true: "table macro", false: "view"}[got != "view"])
		case macro:
			for _, p := range strings.Split(got, ", ") {
				if !strings.Contains(args, p) {
					t.Errorf("%s does not show the macro's parameter %s (%s)", v, p, got)
				}
			}
		}
	}
	for name := range made {
		if !listed[name] {
			t.Errorf("the store makes %s, which AnalyticsViews does not list", name)
		}
	}
}

// A contact's consent on the mailing list is the latest statement of their active
// subscriptions: a withdrawal counts however many older subscriptions said yes. A sender's
// "N/A" for an email is nobody's address and puts no one on the list.
func TestMailingListConsentIsTheLatestAndNeedsAnAddress(t *testing.T) {
	s := openStore(t, Options{})
	withConsent := func(id, typ, sub, email string, consent bool) string {
		return fmt.Sprintf(`{"eventId":%q,"eventType":%q,"eventDetails":{"actionType":"SubscriptionViaWebApi","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"a","subscription":{"calendarSubscriptionId":%q,"calendarId":"c-%s","calendarTitle":"Cal %s","calendarCode":"cal-%s","subscriberEmail":%q,"optIn1":%t}}}`,
			id, typ, sub, sub, sub, sub, sub, email, consent)
	}
	ingest(t, s, withConsent("e1", "Subscribe", "s1", "pat@example.com", true))
	ingest(t, s, withConsent("e2", "Subscribe", "s2", "pat@example.com", true))
	ingest(t, s, withConsent("e3", "SubscriptionDetailsUpdated", "s2", "pat@example.com", false))
	// A calendar event on s1 makes it the most recently changed subscription, but says
	// nothing of consent: the withdrawal on s2 stays the latest statement.
	ingest(t, s, `{"eventId":"e3b","eventType":"SubscriptionEventAdded","eventDetails":{"calendarSubscriptionId":"s1","subscription":{"calendarSubscriptionId":"s1"},"subscriptionEvent":{"title":"Final"}}}`)
	ingest(t, s, withConsent("e4", "Subscribe", "s3", "N/A", true))
	ingest(t, s, withConsent("e5", "Subscribe", "s4", "none", true))
	ingest(t, s, withConsent("e6", "Subscribe", "s5", "two words@example.com", true))
	if err := s.WaitState(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	expectRows(t, queryStrings(t, s, `SELECT email_key, marketing_consent, active_subscriptions FROM mailing_list ORDER BY email_key`),
		[]string{"pat@example.com | false | 2"})
	expectRows(t, queryStrings(t, s, `SELECT email_key, marketing_consent, active_subscriptions FROM (`+MailingListGrouping()+`) ORDER BY email_key`),
		[]string{"pat@example.com | false | 2"})
}
