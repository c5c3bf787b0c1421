package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// changeCounts are the aggregates of the campaign views over subscription_changes.
const changeCounts = `count(*) FILTER (WHERE event_type = 'Subscribe') AS subscribes,
		count(*) FILTER (WHERE event_type = 'Unsubscribe') AS unsubscribes,
		count(*) FILTER (WHERE event_type = 'Subscribe') - count(*) FILTER (WHERE event_type = 'Unsubscribe') AS net`

// MailingListRule is which subscriptions put a contact on the mailing list (the
// mailing_list view): an active one with an email address (a subscription's email_key is set
// only from a valid one). Pages that count or page through the list without building it use
// the same rule.
const MailingListRule = activeRule + " AND email_key IS NOT NULL"

// ValidEmailKey is the email_key of the events row alias when its address is valid, else null:
// an event keeps the key of a sender's "N/A" for matching, but it is nobody's key for state
// or delivery (the subscriptions fold skips it the same way).
func ValidEmailKey(alias string) string {
	return "CASE WHEN NOT coalesce(list_contains(" + alias + ".flags, 'invalid_email'), false) THEN " + alias + ".email_key END"
}

// activeRule is which subscriptions are active.
const activeRule = "status = 'subscribed'"

// The analytics views answer the questions Rokt Calendar customers ask of their subscription
// data. They are plain SQL over events and subscriptions, so any DuckDB client reading the
// file (or a snapshot of it) gets them too. Rokt sends no event time: they use occurred_at.
var analyticsViews = []string{
	// The UTC day and hour of an instant, from its epoch: cheaper than the time-zone-aware
	// casts, and floored for instants before 1970.
	`CREATE OR REPLACE MACRO utc_day(t) AS DATE '1970-01-01' + CAST(floor(epoch_us(t) / 86400000000) AS INTEGER)`,
	`CREATE OR REPLACE MACRO utc_hour(t) AS to_timestamp(floor(epoch_us(t) / 3600000000) * 3600)`,

	// 1. The email marketing list: one row per contact with an active subscription, kept in
	// mailing_list_cache (see analytics_cache.go).
	mailingListView,

	// Subscribes and unsubscribes with their calendar, UTC day and hour. An Unsubscribe
	// carries no calendar: it comes from the subscription's state, and only rows that lack
	// one of the calendar columns are joined. A filter on day or hour is pushed below the
	// join; campaign_days filters occurred_at itself, which skips whole row groups.
	`CREATE OR REPLACE VIEW subscription_changes AS
	SELECT e.seq, e.event_id, e.event_type, e.occurred_at, e.received_at, e.action_type, e.subscription_id,
		e.account_code, e.calendar_code, e.calendar_title,
		utc_day(e.occurred_at) AS day, utc_hour(e.occurred_at) AS hour
	FROM events e
	WHERE e.event_type IN ('Subscribe', 'Unsubscribe') AND e.calendar_code IS NOT NULL AND e.account_code IS NOT NULL AND e.calendar_title IS NOT NULL
	UNION ALL
	SELECT e.seq, e.event_id, e.event_type, e.occurred_at, e.received_at, e.action_type, e.subscription_id,
		coalesce(e.account_code, s.account_code), coalesce(e.calendar_code, s.calendar_code), coalesce(e.calendar_title, s.calendar_title),
		utc_day(e.occurred_at), utc_hour(e.occurred_at)
	FROM events e LEFT JOIN subscriptions s ON s.subscription_id = e.subscription_id
	WHERE e.event_type IN ('Subscribe', 'Unsubscribe') AND (e.calendar_code IS NULL OR e.account_code IS NULL OR e.calendar_title IS NULL)`,

	// 2. Campaign success: subscribes, unsubscribes and net per UTC day (and per UTC hour),
	// per calendar and action type. Sum over calendar_code / action_type for totals.
	`CREATE OR REPLACE VIEW subscriptions_daily AS
	SELECT day, calendar_code, action_type, ` + changeCounts + `
	FROM subscription_changes
	GROUP BY ALL`,
	`CREATE OR REPLACE VIEW subscriptions_hourly AS
	SELECT hour, calendar_code, action_type, ` + changeCounts + `
	FROM subscription_changes
	GROUP BY ALL`,
	// A campaign and the days around it: subscriptions_daily for [first_day - days_around,
	// last_day + days_around], with in_campaign marking the campaign's own days. It reads only
	// the row groups of that time range, so it answers in milliseconds on any store size.
	`CREATE OR REPLACE MACRO campaign_days(first_day, last_day, days_around := 7) AS TABLE
	SELECT day, day BETWEEN CAST(first_day AS DATE) AND CAST(last_day AS DATE) AS in_campaign, calendar_code, action_type, ` + changeCounts + `
	FROM subscription_changes
	WHERE occurred_at >= to_timestamp(epoch(CAST(first_day AS DATE) - CAST(days_around AS INTEGER)))
		AND occurred_at < to_timestamp(epoch(CAST(last_day AS DATE) + CAST(days_around AS INTEGER) + 1))
	GROUP BY ALL`,

	// 3. Tag popularity by postcode, over active subscriptions, kept in tag_popularity_cache.
	tagPopularityView,

	// 4. Subscribes by weekday (ISO: 1 = Monday) and hour, in UTC and in the configured zone
	// (analytics_settings; offsets from tz_offsets, so daylight saving is right without ICU).
	// Times come from the epoch, and the zone's half (an ASOF join) is skipped when the zone is
	// UTC.
	`CREATE OR REPLACE VIEW subscribes_by_weekday_hour AS
	WITH utc AS (
		SELECT isodow(t) AS weekday, hour(t) AS hour, count(*) AS subscribes
		FROM (SELECT make_timestamp(epoch_us(occurred_at)) AS t FROM events WHERE event_type = 'Subscribe')
		GROUP BY ALL
	), zoned AS (
		SELECT isodow(t) AS weekday, hour(t) AS hour, count(*) AS subscribes
		FROM (SELECT make_timestamp(epoch_us(e.occurred_at)) + to_minutes(coalesce(o.offset_minutes, 0)) AS t
			FROM events e ASOF LEFT JOIN tz_offsets o ON e.occurred_at >= o.from_utc
			WHERE e.event_type = 'Subscribe' AND (SELECT zone FROM analytics_settings) <> 'UTC')
		GROUP BY ALL
	)
	SELECT 'UTC' AS zone, weekday, ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'][weekday] AS weekday_name, hour, subscribes FROM utc
	UNION ALL
	SELECT (SELECT zone FROM analytics_settings), weekday, ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'][weekday], hour, subscribes FROM zoned`,
}

// AnalyticsViews names the analytics views a query may read besides the tables, in the order
// of the questions above; the table macro comes with its arguments. The query command's usage
// lists them from here, and a test checks that the store makes exactly these.
func AnalyticsViews() []string {
	return []string{
		"mailing_list", "subscription_changes", "subscriptions_daily", "subscriptions_hourly",
		"campaign_days(first_day, last_day[, days_around := 7])", "tag_popularity_by_postcode", "subscribes_by_weekday_hour",
	}
}

func migrateAnalytics(ctx context.Context, tx *sql.Tx) error {
	// The views themselves are made by refreshViews, after every migration, since they read
	// tables that later migrations add. (This migration used to create them too; a file
	// that ran it that way gets the same views from refreshViews.)
	return execAll(ctx, tx,
		`CREATE TABLE analytics_settings (zone VARCHAR NOT NULL)`,
		`INSERT INTO analytics_settings VALUES ('UTC')`,
		`CREATE TABLE tz_offsets (from_utc TIMESTAMPTZ NOT NULL, offset_minutes INTEGER NOT NULL)`,
	)
}

// refreshViews re-creates the analytics views, so a file made by an older hookbridge answers
// with this version's definitions.
func (s *Store) refreshViews(ctx context.Context) error {
	if err := execAll(ctx, s.db, analyticsViews...); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// setAnalyticsZone records the time zone the weekday-and-hour view uses and its UTC offsets
// from 1970 to 2100.
func (s *Store) setAnalyticsZone(ctx context.Context, zone string) error {
	if zone == "" {
		return nil // the file's own stands
	}
	var current string
	s.db.QueryRowContext(ctx, "SELECT zone FROM analytics_settings").Scan(&current)
	if current == zone {
		return nil
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return fmt.Errorf("store: analytics time zone %q: %w", zone, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: analytics time zone: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM tz_offsets"); err != nil {
		return fmt.Errorf("store: analytics time zone: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE analytics_settings SET zone = ?", zone); err != nil {
		return fmt.Errorf("store: analytics time zone: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO tz_offsets VALUES (?, ?)")
	if err != nil {
		return fmt.Errorf("store: analytics time zone: %w", err)
	}
	defer stmt.Close()
	for _, t := range zoneTransitions(loc, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) {
		_, off := t.In(loc).Zone()
		if _, err := stmt.ExecContext(ctx, t, off/60); err != nil {
			return fmt.Errorf("store: analytics time zone: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: analytics time zone: %w", err)
	}
	s.log.Info("store: analytics time zone set", "zone", zone)
	return nil
}

// zoneTransitions returns from and every instant in [from, to) where loc's UTC offset
// changes, to the second.
func zoneTransitions(loc *time.Location, from, to time.Time) []time.Time {
	out := []time.Time{from}
	offset := func(t time.Time) int { _, o := t.In(loc).Zone(); return o }
	prev := offset(from)
	for t := from; t.Before(to); t = t.Add(24 * time.Hour) {
		next := t.Add(24 * time.Hour)
		if offset(next) == prev {
			continue
		}
		lo, hi := t, next // the change lies in (lo, hi]
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2)
			if offset(mid) == prev {
				lo = mid
			} else {
				hi = mid
			}
		}
		out = append(out, hi)
		prev = offset(hi)
	}
	return out
}
