package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
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

// mailingListSelect is question 1's grouping; where narrows the subscriptions it reads.
func mailingListSelect(where string) string {
	return `SELECT
		email_key,
		arg_max(email, last_seq) AS email,
		arg_max(first_name, last_seq) FILTER (WHERE first_name IS NOT NULL) AS first_name,
		arg_max(last_name, last_seq) FILTER (WHERE last_name IS NOT NULL) AS last_name,
		arg_max(phone, last_seq) FILTER (WHERE phone IS NOT NULL) AS phone,
		arg_max(postcode, last_seq) FILTER (WHERE postcode IS NOT NULL) AS postcode,
		arg_max(country_code, last_seq) FILTER (WHERE country_code IS NOT NULL) AS country_code,
		bool_or(marketing_consent) AS marketing_consent,
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
		WHERE status = 'subscribed' AND postcode IS NOT NULL AND tag_ids IS NOT NULL` + where
}

// tagPopularitySelect is question 3's grouping over the whole subscriptions table.
var tagPopularitySelect = `SELECT postcode, tag_id, count(*) AS subscriptions, count(DISTINCT email_key) AS subscribers
	FROM (` + tagPairs("subscriptions", "") + `)
	GROUP BY ALL`

// analyticsMembersSelect is what analytics_members holds: each active subscription as the
// kept tables counted it. from is subscriptions or a table of some of its rows.
func analyticsMembersSelect(from string) string {
	return "SELECT subscription_id, status, email_key, postcode, tag_ids FROM " + from + " WHERE status = 'subscribed'"
}

// changedSince selects the subscriptions changed after the kept tables' point (w, an SQL
// expression).
func changedSince(w string) string {
	return "SELECT subscription_id, status, email_key, postcode, tag_ids FROM subscriptions WHERE last_seq > " + w
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

// tagWithDelta selects the kept counts with delta (a table or CTE of tagDelta's rows) added;
// only the pairs delta names when onlyDelta.
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

const analyticsSeq = "(SELECT value FROM store_state WHERE key = 'analytics_seq')"

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
		"CREATE TABLE mailing_list_cache AS "+mailingListSelect("")+" LIMIT 0",
		"CREATE TABLE tag_popularity_cache AS "+tagPopularitySelect+" LIMIT 0",
		"CREATE TABLE analytics_members AS "+analyticsMembersSelect("subscriptions")+" LIMIT 0",
		"INSERT INTO store_state VALUES ('analytics_seq', -1)",
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

// updateAnalytics folds the subscriptions changed since the kept tables' point into them:
// the contacts they touch are grouped afresh and their tag moves added to the counts.
func updateAnalytics(ctx context.Context, ex execer) error {
	return execAll(ctx, ex,
		"CREATE OR REPLACE TEMP TABLE analytics_changed AS "+changedSince(analyticsSeq),
		"CREATE OR REPLACE TEMP TABLE analytics_stale AS "+staleContacts("analytics_changed"),
		"DELETE FROM mailing_list_cache WHERE email_key IN (SELECT email_key FROM analytics_stale)",
		"INSERT INTO mailing_list_cache BY NAME "+mailingListSelect(" AND email_key IN (SELECT email_key FROM analytics_stale)"),
		"CREATE OR REPLACE TEMP TABLE analytics_tag_delta AS "+tagDelta("analytics_changed"),
		"CREATE OR REPLACE TEMP TABLE analytics_tag_counts AS "+tagWithDelta("analytics_tag_delta", true),
		"DELETE FROM tag_popularity_cache k USING analytics_tag_delta d WHERE k.postcode = d.postcode AND k.tag_id = d.tag_id",
		"INSERT INTO tag_popularity_cache BY NAME SELECT * FROM analytics_tag_counts",
		"DELETE FROM analytics_members WHERE subscription_id IN (SELECT subscription_id FROM analytics_changed)",
		"INSERT INTO analytics_members BY NAME "+analyticsMembersSelect("analytics_changed"),
		"UPDATE store_state SET value = (SELECT coalesce(max(last_seq), 0) FROM subscriptions) WHERE key = 'analytics_seq'",
		"DROP TABLE analytics_changed",
		"DROP TABLE analytics_stale",
		"DROP TABLE analytics_tag_delta",
		"DROP TABLE analytics_tag_counts",
	)
}

// analyticsRefreshBacklog is how many merged subscription changes make the writer fold them
// into the kept analytics tables even under a steady stream (otherwise it waits to be idle,
// see Options.AnalyticsRefresh). On 10 million events (about 4 million subscriptions) the
// mailing list takes ~0.2 s with nothing to fold, ~0.7 s with 3,500 changes and ~1 s with
// 35,000, and a fold takes 0.75–1 s, so this keeps the view under a second.
const analyticsRefreshBacklog = 20_000

// maybeRefreshAnalytics folds the subscription changes merged since the last refresh into
// the kept analytics tables, in its own transaction, when it is time: the writer is idle and
// Options.AnalyticsRefresh has passed since the last fold, or analyticsRefreshBacklog
// changes wait. A failure is logged and tried again later: the views are exact without it.
func (s *Store) maybeRefreshAnalytics(ctx context.Context, idle bool) {
	if s.analyticsBehind == 0 || s.bulk.Load() > 0 || s.health.Load() != nil {
		return
	}
	if s.analyticsBehind < analyticsRefreshBacklog && (!idle || time.Since(s.analyticsRefreshed) < s.opts.AnalyticsRefresh) {
		return
	}
	start := time.Now()
	err := s.inWriterTx(ctx, func(tx *Tx) error { return updateAnalytics(ctx, txExecer{tx}) })
	s.analyticsRefreshed = time.Now()
	if err != nil {
		s.fatal(ctx, err)
		s.log.Warn("store: refreshing the kept analytics tables failed; the views compute more until the next try", "err", err)
		return
	}
	s.log.Debug("store: kept analytics tables refreshed", "changes", s.analyticsBehind, "took", time.Since(start))
	s.metrics.analyticsRefreshSeconds.Observe(time.Since(start).Seconds())
	s.analyticsBehind = 0
}

// txExecer runs statements in the writer's transaction for execAll.
type txExecer struct{ tx *Tx }

func (t txExecer) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	n, err := t.tx.Exec(ctx, q, args...)
	return rowsAffected(n), err
}

// rowsAffected is an sql.Result that knows only its count.
type rowsAffected int64

func (n rowsAffected) LastInsertId() (int64, error) { return 0, fmt.Errorf("store: no insert id") }
func (n rowsAffected) RowsAffected() (int64, error) { return int64(n), nil }
