package delivery

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/connector/store"
	"github.com/hookbridge/hookbridge/schemas"
)

// stateColumns are taken from the subscription's current state in preference to the event:
// the state holds the latest non-null value of every event up to StateSeq (this one included),
// so an Unsubscribe carries the email it ended and a delayed row the contact's current data.
var stateColumns = store.FieldColumns()

// contactColumns are aggregates over every subscription of the row's contact (email_key).
var contactColumns = []string{"contact_status", "contact_active_subscriptions", "contact_calendars", "contact_ended_calendars", "contact_marketing_consent"}

// rowQuery builds the SELECT that reads events joined with current state, projected to cols
// (normalised column names; delivery columns allowed), for rows matching where. The
// subscriptions it joins are those named in subIDs: a literal list, which DuckDB answers
// through the subscriptions index instead of scanning the table on every read (see
// subscriptionsOf).
func rowQuery(cols []string, where string, subIDs []string) string {
	var sel []string
	needContact := false
	for _, c := range cols {
		switch {
		case c == "email_key":
			// The state's key is a valid address's only; an event's key of an invalid one
			// ("n/a") would make strangers one destination key.
			sel = append(sel, "coalesce(s.email_key, "+store.ValidEmailKey("e")+") AS email_key")
		case slices.Contains(stateColumns, c):
			sel = append(sel, fmt.Sprintf("coalesce(s.%s, e.%s) AS %s", c, c, c))
		case c == "email_original":
			// The original spelling belongs with whichever email is used.
			sel = append(sel, "CASE WHEN s.email IS NOT NULL AND s.email IS DISTINCT FROM e.email THEN s.email ELSE e.email_original END AS email_original")
		case c == "status" || c == "subscribed_at" || c == "unsubscribed_at":
			sel = append(sel, "s."+c+" AS "+c)
		case slices.Contains(contactColumns, c):
			needContact = true
			sel = append(sel, "c."+c+" AS "+c)
		default:
			sel = append(sel, "e."+c+" AS "+c)
		}
	}
	state := "(SELECT * FROM subscriptions WHERE " + inList("subscription_id", subIDs) + ")"
	q := "SELECT " + strings.Join(sel, ", ") + "\nFROM events e\nLEFT JOIN " + state + " s ON s.subscription_id = e.subscription_id\n"
	if needContact {
		q += `LEFT JOIN (
	SELECT email_key,
		CASE WHEN count(*) FILTER (WHERE status = 'subscribed') > 0 THEN 'subscribed' ELSE 'unsubscribed' END AS contact_status,
		count(*) FILTER (WHERE status = 'subscribed') AS contact_active_subscriptions,
		coalesce(list_sort(list_distinct(list(calendar_code) FILTER (WHERE status = 'subscribed' AND calendar_code IS NOT NULL))), []) AS contact_calendars,
		coalesce(list_sort(list_distinct(list(calendar_code) FILTER (WHERE status = 'unsubscribed' AND calendar_code IS NOT NULL))), []) AS contact_ended_calendars,
		arg_max(marketing_consent, consent_seq) FILTER (WHERE marketing_consent IS NOT NULL) AS contact_marketing_consent
	FROM subscriptions
	WHERE email_key IN (
		SELECT coalesce(s2.email_key, e2.email_key) FROM events e2
		LEFT JOIN ` + state + ` s2 ON s2.subscription_id = e2.subscription_id
		WHERE ` + strings.ReplaceAll(where, "e.", "e2.") + `)
	GROUP BY email_key
) c ON c.email_key = coalesce(s.email_key, e.email_key)
`
	}
	return q + "WHERE " + where + "\nORDER BY e.seq"
}

// inList renders "column IN ('a', 'b')", or false for an empty list.
func inList(column string, values []string) string {
	if len(values) == 0 {
		return "false"
	}
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return column + " IN (" + strings.Join(q, ", ") + ")"
}

// subscriptionsOf lists the subscriptions of the rows matching where (ordered by seq, at
// most limit when positive): a range read of events, cheap, so the read that follows looks
// them up by id.
func (l *loop) subscriptionsOf(ctx context.Context, where string, limit int) ([]string, error) {
	q := "SELECT e.subscription_id FROM events e WHERE " + where + " ORDER BY e.seq"
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := l.e.store.DB().QueryContext(ctx, "SELECT DISTINCT subscription_id FROM ("+q+") WHERE subscription_id IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("delivery: %s: find subscriptions: %w", l.name, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("delivery: %s: find subscriptions: %w", l.name, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delivery: %s: find subscriptions: %w", l.name, err)
	}
	return ids, nil
}

// readWhere reads the rows matching where, joined with their current state.
func (l *loop) readWhere(ctx context.Context, where string, limit int) ([]schemas.Row, error) {
	subIDs, err := l.subscriptionsOf(ctx, where, limit)
	if err != nil {
		return nil, err
	}
	q := rowQuery(l.readCols, where, subIDs)
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	return l.e.store.ReadRows(ctx, q)
}

// readNew reads up to limit rows of the sink's event types with seq in (after, upto].
func (l *loop) readNew(ctx context.Context, after, upto int64, limit int) ([]schemas.Row, error) {
	return l.readWhere(ctx, fmt.Sprintf("e.seq > %d AND e.seq <= %d%s", after, upto, l.typeFilter), limit)
}

// A backlog goes out batch by batch (a rate-limited CRM takes one every 100 ms or so), and
// reading each batch's rows costs two queries whatever their number. So when the rows of a
// batch must be read, those of the next aheadBatches-1 batches are read with them and kept
// while the store's subscription state stays where it was when they were read (any merge
// drops them all, so a row never goes out with state older than the last merge), and for at
// most aheadMaxAge.
const (
	aheadBatches = 4
	aheadMaxAge  = 2 * time.Second
)

// aheadRow is a row read ahead of its batch, and when.
type aheadRow struct {
	row *schemas.Row
	at  time.Time
}

// readDue puts into fresh the rows to send for the due keys: read at intake, read ahead, or
// read now together with the rows of the following keys, which are kept for later batches.
//
// state is the store's state seq from before this step read anything.
func (l *loop) readDue(ctx context.Context, now time.Time, state int64, due, following []*pendingKey, fresh map[int64]*schemas.Row) error {
	if state != l.aheadState {
		clear(l.ahead)
		l.aheadState = state
	}
	for seq, a := range l.ahead {
		if now.Sub(a.at) >= aheadMaxAge {
			delete(l.ahead, seq)
		}
	}
	var stale []int64
	for _, k := range due {
		rep := l.rep(k)
		if a, ok := l.ahead[rep]; ok {
			delete(l.ahead, rep)
			if fresh[rep] == nil {
				fresh[rep] = a.row
			}
		}
		if fresh[rep] == nil {
			stale = append(stale, rep)
		}
	}
	var next []int64
	for _, k := range following {
		rep := l.rep(k)
		switch _, ok := l.ahead[rep]; {
		case ok:
		case fresh[rep] != nil:
			l.ahead[rep] = aheadRow{row: fresh[rep], at: now}
		default:
			next = append(next, rep)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	rows, err := l.readSeqs(ctx, append(stale, next...))
	if err != nil {
		return err
	}
	isStale := make(map[int64]bool, len(stale))
	for _, seq := range stale {
		isStale[seq] = true
	}
	for i := range rows {
		if r := &rows[i]; isStale[r.Seq] {
			fresh[r.Seq] = r
		} else {
			l.ahead[r.Seq] = aheadRow{row: r, at: now}
		}
	}
	return nil
}

// readSeqs reads the given rows afresh (for retries and replays: state may have moved on).
func (l *loop) readSeqs(ctx context.Context, seqs []int64) ([]schemas.Row, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	return l.readWhere(ctx, "e.seq IN ("+joinSeqs(seqs, ", ")+")", 0)
}

// typeFilterSQL renders the sink's event-type filter as an AND clause.
func typeFilterSQL(types []string) string {
	if len(types) == 0 {
		return ""
	}
	return " AND " + inList("e.event_type", types)
}

// keyOf returns the row's destination key for ordering and coalescing: the key column's value,
// or a key unique to the row when it is empty (such rows are independent).
func keyOf(r *schemas.Row, column string) string {
	v, _ := r.Value(column)
	if s, ok := v.(string); ok && s != "" {
		return column + ":" + s
	}
	return "seq:" + strconv.FormatInt(r.Seq, 10)
}
