package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"
)

// The mailing list and tag popularity by postcode group every active subscription, which
// takes seconds on millions of them. Their answers are kept in tables (mailing_list_cache,
// tag_popularity_cache) as of a point in the subscription history: analytics_seq in
// store_state, the highest last_seq the tables saw. analytics_members holds what each active
// subscription counted under at that point (contact, postcode, tags).
//
// The views stay exact without waiting for the tables. A change moves a subscription's
// last_seq past analytics_seq, so the views know which subscriptions changed since:
//   - mailing_list takes the kept rows of every contact no changed subscription belongs to,
//     now or then (from analytics_members), and groups the others' subscriptions afresh;
//   - tag_popularity_by_postcode adds to the kept counts what the changed subscriptions
//     take away (as they were kept) and bring (as they are now), per postcode, tag and
//     contact, so a contact counts as a subscriber while any subscription of theirs has the
//     pair. (Grouping affected postcodes afresh would re-read most subscriptions: a few
//     postcodes hold most of them.)
//
// The writer folds the changes into the tables when it is idle or when many wait
// (maybeRefreshAnalytics), so the part computed at query time stays small; a rebuild of the
// subscriptions rebuilds the tables in the same transaction.

// MailingListGrouping is the SQL of the mailing_list view's answer grouped afresh from every
// subscription, without the kept table: for checks.
func MailingListGrouping() string { return mailingListSelect("") }

// TagPopularityGrouping is the same for tag_popularity_by_postcode.
func TagPopularityGrouping() string { return tagPopularitySelect }

// MailingListOf is the mailing_list view's answer for n contacts, named by n placeholders for
// their email_key, grouped from their subscriptions alone: for a page of the list, cheaper
// than the view, which also works out what changed since its kept table.
func MailingListOf(n int) string {
	return mailingListSelect(" AND email_key IN (?" + strings.Repeat(", ?", n-1) + ")")
}

// mailingListSelect is question 1's grouping; where narrows the subscriptions it reads.
// A contact's consent is the latest statement any of their active subscriptions made (by the
// seq of the event that made it), so a withdrawal counts however many older subscriptions said
// yes.
// mailing_list_cache was created with its columns (migration 6): changing them needs a
// migration that recreates the kept table.
func mailingListSelect(where string) string {
	return `SELECT
		email_key,
		arg_max(email, last_seq) AS email,
		arg_max(first_name, last_seq) FILTER (WHERE first_name IS NOT NULL) AS first_name,
		arg_max(last_name, last_seq) FILTER (WHERE last_name IS NOT NULL) AS last_name,
		arg_max(phone, last_seq) FILTER (WHERE phone IS NOT NULL) AS phone,
		arg_max(postcode, last_seq) FILTER (WHERE postcode IS NOT NULL) AS postcode,
		arg_max(country_code, last_seq) FILTER (WHERE country_code IS NOT NULL) AS country_code,
		arg_max(marketing_consent, consent_seq) FILTER (WHERE marketing_consent IS NOT NULL) AS marketing_consent,
		list_sort(list_distinct(list(calendar_title) FILTER (WHERE calendar_title IS NOT NULL))) AS calendars,
		list_sort(list_distinct(list(calendar_code) FILTER (WHERE calendar_code IS NOT NULL))) AS calendar_codes,
		list_sort(list_distinct(flatten(list(tag_ids) FILTER (WHERE tag_ids IS NOT NULL)))) AS tag_ids,
		count(*) AS active_subscriptions,
		min(subscribed_at) AS first_subscribed_at,
		max(last_seen_at) AS last_change_at
	FROM subscriptions
	WHERE ` + MailingListRule + where + `
	GROUP BY email_key`
}

// tagPairs selects the (postcode, tag_id, email_key) of every tag of the active subscriptions
// in from (subscriptions, analytics_members, or some of their rows), one row per tag.
func tagPairs(from, where string) string {
	return `SELECT postcode, unnest(tag_ids) AS tag_id, email_key FROM ` + from + `
		WHERE ` + activeRule + ` AND postcode IS NOT NULL AND tag_ids IS NOT NULL` + where
}

// tagPopularitySelect is question 3's grouping over the whole subscriptions table.
var tagPopularitySelect = `SELECT postcode, tag_id, count(*) AS subscriptions, count(DISTINCT email_key) AS subscribers
	FROM (` + tagPairs("subscriptions", "") + `)
	GROUP BY ALL`

// memberColumns are the subscription columns the kept tables depend on beyond its contact's
// row: what analytics_members holds and what a refresh reads of the changed subscriptions.
const memberColumns = "subscription_id, status, email_key, postcode, tag_ids"

// analyticsMembersSelect is what analytics_members holds: each active subscription as the
// kept tables counted it. from is subscriptions or a table of some of its rows.
func analyticsMembersSelect(from string) string {
	return "SELECT " + memberColumns + " FROM " + from + " WHERE " + activeRule
}

// changedSince selects the subscriptions changed after the kept tables' point (w, an SQL
// expression).
func changedSince(w string) string {
	return "SELECT " + memberColumns + " FROM subscriptions WHERE last_seq > " + w
}

// staleContacts selects the contacts whose kept mailing-list row the subscriptions in changed
// (a table or CTE) make stale: the contact each belongs to now and the one it belonged to
// when the tables were kept.
func staleContacts(changed string) string {
	return `SELECT email_key FROM ` + changed + ` WHERE email_key IS NOT NULL
		UNION SELECT m.email_key FROM analytics_members m SEMI JOIN ` + changed + ` c ON m.subscription_id = c.subscription_id WHERE m.email_key IS NOT NULL`
}

// tagDelta selects, per postcode and tag, what the subscriptions in changed (a table or
// CTE) add to the kept subscriptions and subscribers counts.
func tagDelta(changed string) string {
	return `WITH moves AS MATERIALIZED (
		-- per postcode, tag and contact: tags the changed subscriptions brought, less those they had
		SELECT postcode, tag_id, email_key, CAST(sum(n) AS BIGINT) AS n FROM (
			SELECT *, -1 AS n FROM (` + tagPairs("analytics_members m", " AND m.subscription_id IN (SELECT subscription_id FROM "+changed+")") + `)
			UNION ALL
			SELECT *, 1 FROM (` + tagPairs(changed, "") + `))
		GROUP BY ALL HAVING sum(n) <> 0
	), kept AS MATERIALIZED (
		-- how many kept subscriptions of the moved contacts had each pair
		SELECT postcode, tag_id, email_key, count(*) AS n FROM (` +
		tagPairs("analytics_members", " AND email_key IN (SELECT email_key FROM moves)") + `)
		GROUP BY ALL
	)
	SELECT mv.postcode, mv.tag_id, CAST(sum(mv.n) AS BIGINT) AS subscriptions,
		CAST(sum(CASE WHEN mv.email_key IS NULL THEN 0
			ELSE CAST(coalesce(k.n, 0) + mv.n > 0 AS INTEGER) - CAST(coalesce(k.n, 0) > 0 AS INTEGER) END) AS BIGINT) AS subscribers
	FROM moves mv LEFT JOIN kept k ON k.postcode = mv.postcode AND k.tag_id = mv.tag_id AND k.email_key = mv.email_key
	GROUP BY ALL`
}

// tagWithDelta selects the kept counts with delta (a table or CTE of tagDelta's rows) added,
// for the pairs some active subscription still has: every kept pair, or only those delta
// names when onlyDelta.
func tagWithDelta(delta string, onlyDelta bool) string {
	join := "FULL OUTER JOIN"
	if onlyDelta {
		join = "RIGHT JOIN"
	}
	return `SELECT coalesce(k.postcode, d.postcode) AS postcode, coalesce(k.tag_id, d.tag_id) AS tag_id,
		coalesce(k.subscriptions, 0) + coalesce(d.subscriptions, 0) AS subscriptions,
		coalesce(k.subscribers, 0) + coalesce(d.subscribers, 0) AS subscribers
	FROM tag_popularity_cache k ` + join + ` ` + delta + ` d ON k.postcode = d.postcode AND k.tag_id = d.tag_id
	WHERE coalesce(k.subscriptions, 0) + coalesce(d.subscriptions, 0) > 0`
}

// selectAnalyticsSeq reads the kept tables' point; analyticsSeq is it as an SQL expression.
const (
	selectAnalyticsSeq = "SELECT value FROM store_state WHERE key = 'analytics_seq'"
	analyticsSeq       = "(" + selectAnalyticsSeq + ")"
)

// The two views over the kept tables.
var (
	mailingListView = `CREATE OR REPLACE VIEW mailing_list AS
	WITH changed AS MATERIALIZED (` + changedSince(analyticsSeq) + `),
	stale AS MATERIALIZED (` + staleContacts("changed") + `)
	SELECT * FROM mailing_list_cache WHERE email_key NOT IN (SELECT email_key FROM stale)
	UNION ALL BY NAME
	` + mailingListSelect(" AND email_key IN (SELECT email_key FROM stale)")

	tagPopularityView = `CREATE OR REPLACE VIEW tag_popularity_by_postcode AS
	WITH changed AS MATERIALIZED (` + changedSince(analyticsSeq) + `),
	delta AS MATERIALIZED (` + tagDelta("changed") + `)
	` + tagWithDelta("delta", false)
)

// migrateAnalyticsCache creates the kept tables and fills them from the subscriptions.
func migrateAnalyticsCache(ctx context.Context, tx *sql.Tx) error {
	if err := execAll(ctx, tx,
		// The grouping reads consent_seq, which migration 7 brought to files migrated before
		// it; a new file gets it here, since the kept tables are made from the grouping.
		addConsentSeq,
		"CREATE TABLE mailing_list_cache AS "+mailingListSelect("")+" LIMIT 0",
		"CREATE TABLE tag_popularity_cache AS "+tagPopularitySelect+" LIMIT 0",
		"CREATE TABLE analytics_members AS "+analyticsMembersSelect("subscriptions")+" LIMIT 0",
		"INSERT INTO store_state VALUES ('analytics_seq', -1)",
	); err != nil {
		return err
	}
	return buildAnalytics(ctx, tx)
}

const addConsentSeq = "ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS consent_seq BIGINT"

// refoldSubscriptions adds consent_seq and refolds the subscriptions table from the events by
// the current rule (a Subscribe fills in, an invalid address is no key), then refills the kept
// tables (migration 7).
func refoldSubscriptions(ctx context.Context, tx *sql.Tx) error {
	if err := execAll(ctx, tx,
		addConsentSeq,
		"DELETE FROM subscriptions",
		rebuildSubscriptionsSQL,
		"UPDATE store_state SET value = (SELECT coalesce(max(seq), 0) FROM events) WHERE key = 'merged_seq'",
	); err != nil {
		return err
	}
	return buildAnalytics(ctx, tx)
}

// buildAnalytics refills the kept tables from the whole subscriptions table.
func buildAnalytics(ctx context.Context, ex execer) error {
	return execAll(ctx, ex,
		"DELETE FROM mailing_list_cache",
		"INSERT INTO mailing_list_cache BY NAME "+mailingListSelect(""),
		"DELETE FROM tag_popularity_cache",
		"INSERT INTO tag_popularity_cache BY NAME "+tagPopularitySelect,
		"DELETE FROM analytics_members",
		"INSERT INTO analytics_members BY NAME "+analyticsMembersSelect("subscriptions"),
		"UPDATE store_state SET value = (SELECT coalesce(max(last_seq), 0) FROM subscriptions) WHERE key = 'analytics_seq'",
	)
}

// analyticsFold is what a refresh computed from one snapshot of the store, off the writer:
// the kept rows it replaces and their replacements. The writer applies it in a few
// statements (applyFold).
type analyticsFold struct {
	gen      int64             // the kept tables' generation it was computed for (see Store.analyticsGen)
	from, to int64             // analytics_seq in the snapshot; the snapshot's highest last_seq
	stale    arrow.RecordBatch // email_key: contacts whose kept rows go
	contacts arrow.RecordBatch // those contacts' rows now (mailing_list_cache's columns)
	pairs    arrow.RecordBatch // postcode, tag_id: every pair the changes touch, whose kept counts go
	counts   arrow.RecordBatch // those pairs' counts now, where some active subscription has them
	changed  arrow.RecordBatch // subscription_id: subscriptions whose member rows go
	members  arrow.RecordBatch // those subscriptions' member rows now
}

func (f *analyticsFold) release() {
	for _, r := range []arrow.RecordBatch{f.stale, f.contacts, f.pairs, f.counts, f.changed, f.members} {
		if r != nil {
			r.Release()
		}
	}
}

// computeFold reads, in one snapshot on a connection of its own, what the subscriptions
// changed since the kept tables' point make of them. It writes nothing but temporary
// tables of its connection, which the rollback drops.
func (s *Store) computeFold(ctx context.Context, gen int64) (*analyticsFold, error) {
	f := &analyticsFold{gen: gen}
	err := s.rawConn(ctx, func(c driver.Conn) error {
		tx := &Tx{conn: c, store: s}
		if err := tx.exec(ctx, "BEGIN TRANSACTION"); err != nil {
			return err
		}
		defer tx.exec(context.WithoutCancel(ctx), "ROLLBACK")
		err := tx.Query(ctx, selectAnalyticsSeq, nil, func(row []driver.Value) error {
			f.from = row[0].(int64)
			return nil
		})
		if err == nil {
			err = tx.Query(ctx, "SELECT coalesce(max(last_seq), 0) FROM subscriptions", nil, func(row []driver.Value) error {
				f.to = row[0].(int64)
				return nil
			})
		}
		if err == nil {
			err = execAll(ctx, txExecer{tx},
				"CREATE OR REPLACE TEMP TABLE analytics_changed AS "+changedSince(fmt.Sprint(f.from)),
				"CREATE OR REPLACE TEMP TABLE analytics_stale AS "+staleContacts("analytics_changed"),
				"CREATE OR REPLACE TEMP TABLE analytics_tag_delta AS "+tagDelta("analytics_changed"))
		}
		for _, q := range []struct {
			dst *arrow.RecordBatch
			sql string
		}{
			{&f.stale, "SELECT email_key FROM analytics_stale"},
			{&f.contacts, mailingListSelect(" AND email_key IN (SELECT email_key FROM analytics_stale)")},
			{&f.pairs, "SELECT postcode, tag_id FROM analytics_tag_delta"},
			{&f.counts, tagWithDelta("analytics_tag_delta", true)},
			{&f.changed, "SELECT subscription_id FROM analytics_changed"},
			{&f.members, analyticsMembersSelect("analytics_changed")},
		} {
			if err != nil {
				break
			}
			*q.dst, err = queryArrow(ctx, c, q.sql)
		}
		return err
	})
	if err != nil {
		f.release()
		return nil, fmt.Errorf("store: compute analytics refresh: %w", err)
	}
	return f, nil
}

// queryArrow runs q on conn and returns its result as one Arrow record in Go memory, or nil
// when it has no rows. One record, because a view over several lets DuckDB's threads pull
// from the stream at once; Go memory, because DuckDB's buffers do not outlive the result and
// this is handed to another connection.
func queryArrow(ctx context.Context, conn driver.Conn, q string) (arrow.RecordBatch, error) {
	ar, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return nil, err
	}
	rdr, err := ar.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	var parts [][]arrow.Array // per column
	rows := int64(0)
	for rdr.Next() {
		rec := rdr.RecordBatch()
		if parts == nil {
			parts = make([][]arrow.Array, rec.NumCols())
		}
		for i, c := range rec.Columns() {
			c.Retain()
			parts[i] = append(parts[i], c)
		}
		rows += rec.NumRows()
	}
	defer func() {
		for _, p := range parts {
			for _, c := range p {
				c.Release()
			}
		}
	}()
	if err := rdr.Err(); err != nil {
		return nil, err
	}
	if rows == 0 {
		return nil, nil
	}
	cols := make([]arrow.Array, len(parts))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, p := range parts {
		if cols[i], err = array.Concatenate(p, memory.DefaultAllocator); err != nil {
			return nil, err
		}
	}
	return array.NewRecordBatch(rdr.Schema(), cols, rows), nil
}

// applyFold replaces the kept rows f names with f's rows, in the writer's transaction. A fold
// computed before a rebuild of the kept tables is dropped: what it replaces is gone.
func (s *Store) applyFold(ctx context.Context, tx *Tx, f *analyticsFold) error {
	if f.gen != s.analyticsGen {
		return nil
	}
	for _, st := range []struct {
		table     string
		gone, now arrow.RecordBatch
	}{
		{"mailing_list_cache", f.stale, f.contacts},
		{"tag_popularity_cache", f.pairs, f.counts},
		{"analytics_members", f.changed, f.members},
	} {
		if err := deleteRows(ctx, tx, st.table, st.gone); err != nil {
			return fmt.Errorf("apply analytics refresh: %w", err)
		}
		if st.now == nil {
			continue
		}
		if err := tx.InsertRecord(ctx, st.table, st.now); err != nil {
			return fmt.Errorf("apply analytics refresh: %w", err)
		}
	}
	return tx.exec(ctx, "UPDATE store_state SET value = ? WHERE key = 'analytics_seq'", f.to)
}

// deleteRows deletes from table the rows whose key columns (keys' columns, all text) equal
// one of keys' rows. A few keys go as literal values, which costs less than registering an
// Arrow view, as more do.
func deleteRows(ctx context.Context, tx *Tx, table string, keys arrow.RecordBatch) error {
	if keys == nil {
		return nil
	}
	names := make([]string, keys.NumCols())
	match := make([]string, keys.NumCols())
	for i := range names {
		names[i] = keys.ColumnName(i)
		match[i] = "t." + names[i] + " = d." + names[i]
	}
	using := ingestView + " d"
	var args []any
	if keys.NumRows() <= deleteByValues {
		row := "(?" + strings.Repeat(", ?", len(names)-1) + ")"
		rows := make([]string, keys.NumRows())
		for r := range rows {
			rows[r] = row
			for _, c := range keys.Columns() {
				args = append(args, c.GetOneForMarshal(r))
			}
		}
		using = "(VALUES " + strings.Join(rows, ", ") + ") d(" + strings.Join(names, ", ") + ")"
	}
	q := "DELETE FROM " + table + " t USING " + using + " WHERE " + strings.Join(match, " AND ")
	if args != nil {
		return tx.exec(ctx, q, args...)
	}
	return tx.execView(ctx, keys, q)
}

// deleteByValues is how many keys deleteRows sends as literal values.
const deleteByValues = 256

// refreshAnalytics folds the subscription changes since the kept tables' point into them:
// the heavy reading happens on a connection of its own, so the writer (and every webhook
// waiting for it) only pays for replacing the rows. behind is how many merged changes the
// caller counted; they are taken off the writer's backlog once applied.
func (s *Store) refreshAnalytics(ctx context.Context, gen int64, behind int) error {
	start := time.Now()
	f, err := s.computeFold(ctx, gen)
	if err != nil {
		return err
	}
	defer f.release()
	computed := time.Since(start)
	// Not cancelled with ctx: f is released on return, so this waits until the writer has
	// run the change or will never run it.
	err = s.Apply(context.WithoutCancel(ctx), func(ctx context.Context, tx *Tx) error {
		applying := time.Now()
		if err := s.applyFold(ctx, tx, f); err != nil {
			return err
		}
		s.metrics.analyticsApplySeconds.Observe(time.Since(applying).Seconds())
		// Counted before the commit: if it fails, the backlog looks smaller than it is until
		// the next merge, which only delays the next refresh.
		s.analyticsBehind = max(0, s.analyticsBehind-behind)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: apply analytics refresh: %w", err)
	}
	s.metrics.analyticsRefreshSeconds.Observe(time.Since(start).Seconds())
	s.log.Debug("store: kept analytics tables refreshed", "changes", behind, "computed", computed, "took", time.Since(start))
	return nil
}

// analyticsRefreshBacklog is how many merged subscription changes make the writer fold them
// into the kept analytics tables even under a steady stream (otherwise it waits to be idle,
// see Options.AnalyticsRefresh). On 10 million events (about 4 million subscriptions) the
// mailing list takes ~0.2 s with nothing to fold, ~0.7 s with 3,500 changes and ~1 s with
// 35,000, and a fold takes 0.75–1 s, so this keeps the view under a second.
const analyticsRefreshBacklog = 20_000

// maybeRefreshAnalytics starts a refresh of the kept analytics tables (refreshAnalytics, in
// a goroutine of its own) when it is time: the writer is idle and Options.AnalyticsRefresh
// has passed since the last one, or analyticsRefreshBacklog changes wait. One runs at a time.
// A failure is logged and tried again later: the views are exact without it.
func (s *Store) maybeRefreshAnalytics(idle bool) {
	if s.analyticsBehind == 0 || s.bulk.Load() > 0 || s.health.Load() != nil || s.analyticsRunning.Load() {
		return
	}
	since := time.Since(s.analyticsRefreshed)
	due := idle && since >= s.opts.AnalyticsRefresh
	// A backlog does not wait for the writer to be idle, but a refresh that keeps failing
	// is not started again more than once a second.
	pressing := s.analyticsBehind >= analyticsRefreshBacklog && since >= time.Second
	if !due && !pressing {
		return
	}
	s.analyticsRefreshed = time.Now()
	s.analyticsRunning.Store(true)
	gen, behind := s.analyticsGen, s.analyticsBehind
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer s.analyticsRunning.Store(false)
		// Not cancelled by Close, which waits for it (see Close); once the store is closing
		// the writer refuses the change.
		if err := s.refreshAnalytics(context.Background(), gen, behind); err != nil && !errors.Is(err, ErrUnavailable) {
			s.log.Warn("store: refreshing the kept analytics tables failed; the views compute more until the next try", "err", err)
		}
	}()
}

// txExecer runs statements in the writer's transaction for execAll.
type txExecer struct{ tx *Tx }

func (t txExecer) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.conn.(driver.ExecerContext).ExecContext(ctx, q, namedArgs(args)) // a driver.Result is an sql.Result
}
