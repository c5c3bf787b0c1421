package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hookbridge/hookbridge/schemas"
)

// The subscription state rule.
//
// Rokt sends no event time and retries for 30 minutes, so the events of one subscription
// arrive in any order. The rule therefore goes by state, not by time: an Unsubscribe is final
// for its subscription, and a Subscribe, which is a subscription's first event whenever it
// arrives, only fills in fields no other event of the subscription gave (a late retry never
// undoes newer details, and never makes an ended subscription active again). Other fields take
// the latest non-null value received. Events that name no subscription, Test and unknown
// types, and the calendar-event-only types (SubscriptionEventUpdated,
// SubscriptionEventDeleted) change nothing.
//
// The writer folds committed events per subscription in memory (pendingState) and merges the
// result into the table: what Subscribes said goes under the stored row
// (fillSubscriptionsSQL), then the other events' fields over it (mergeSubscriptionsSQL). The
// highest seq merged is kept in store_state in the same transaction, so after a crash the
// events above it are folded again at start.

// changesSubscription reports whether an event of type t changes subscription state.
func changesSubscription(t string) bool {
	switch schemas.EventType(t) {
	case schemas.Subscribe, schemas.Unsubscribe, schemas.SubscriptionDetailsUpdated,
		schemas.SubscriptionEventAdded, schemas.SubscriptionEventRemoved:
		return true
	}
	return false
}

// subDelta is one subscription's events of a commit group, folded. Its fields come from the
// events other than Subscribe; what Subscribes said is folded apart, in sub, since it may
// only fill what nothing else gave.
type subDelta struct {
	id           string
	unsubscribed bool
	fields
	sub                          *fields
	subscribedAt, unsubscribedAt *time.Time
	reason                       string
	firstSeen, lastSeen          time.Time
	firstSeq, lastSeq            int64
	lastType                     string
	events                       int32
}

// fields are the subscription's descriptive columns as some events gave them.
type fields struct {
	accountID, accountCode                                string
	calendarID, calendarCode, calendarTitle, method       string
	tagIDs, tagNames                                      []string
	email, emailKey, firstName, lastName, phone, postcode string
	country                                               string
	consent                                               *bool
	// consentSeq is the seq of the event whose consent statement consent is: a contact's
	// latest statement over all their subscriptions is the one with the highest.
	consentSeq int64
}

// fold takes r's values: later events win, empty values never erase. A Subscribe's only fill
// what is empty, so of several (which Rokt does not send) the first received stands, as in
// the rebuild.
func (f *fields) fold(r *schemas.Row) {
	if r.EventType == string(schemas.Subscribe) {
		f.merge(fields{}.from(r))
		return
	}
	*f = f.from(r)
}

// from returns f with r's non-empty values over it.
func (f fields) from(r *schemas.Row) fields {
	latest(&f.accountID, r.AccountID)
	latest(&f.accountCode, r.AccountCode)
	latest(&f.calendarID, r.CalendarID)
	latest(&f.calendarCode, r.CalendarCode)
	latest(&f.calendarTitle, r.CalendarTitle)
	latest(&f.method, r.SubscriptionMethod)
	if r.EventType == string(schemas.Subscribe) || r.EventType == string(schemas.SubscriptionDetailsUpdated) {
		if r.TagIDs != nil {
			f.tagIDs = r.TagIDs
		}
		if r.TagNames != nil {
			f.tagNames = r.TagNames
		}
	}
	latest(&f.email, r.Email)
	if !slices.Contains(r.Flags, schemas.FlagInvalidEmail.String()) {
		// A sender's "N/A" is kept in email, but as nobody's key: a subscription joins a
		// contact (mailing list, contact columns) by an address only.
		latest(&f.emailKey, r.EmailKey)
	}
	latest(&f.firstName, r.FirstName)
	latest(&f.lastName, r.LastName)
	latest(&f.phone, r.Phone)
	latest(&f.postcode, r.Postcode)
	latest(&f.country, r.CountryCode)
	if r.MarketingConsent != nil {
		f.consent, f.consentSeq = r.MarketingConsent, r.Seq
	}
	return f
}

// merge fills f's empty fields from g.
func (f *fields) merge(g fields) { *f = f.under(&g) }

// under returns f with every field it lacks taken from g: what a Subscribe (g) fills in.
func (f fields) under(g *fields) fields {
	if g == nil {
		return f
	}
	for _, p := range [][2]*string{{&f.accountID, &g.accountID}, {&f.accountCode, &g.accountCode}, {&f.calendarID, &g.calendarID},
		{&f.calendarCode, &g.calendarCode}, {&f.calendarTitle, &g.calendarTitle}, {&f.method, &g.method}, {&f.email, &g.email},
		{&f.emailKey, &g.emailKey}, {&f.firstName, &g.firstName}, {&f.lastName, &g.lastName}, {&f.phone, &g.phone},
		{&f.postcode, &g.postcode}, {&f.country, &g.country}} {
		if *p[0] == "" {
			*p[0] = *p[1]
		}
	}
	if f.tagIDs == nil {
		f.tagIDs = g.tagIDs
	}
	if f.tagNames == nil {
		f.tagNames = g.tagNames
	}
	if f.consent == nil {
		f.consent, f.consentSeq = g.consent, g.consentSeq
	}
	return f
}

// latest sets *dst to v when v is not empty: later events win, nulls never erase.
func latest(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func earliest(dst **time.Time, t time.Time) {
	if *dst == nil || t.Before(**dst) {
		*dst = &t
	}
}

// pendingState holds subscription changes committed to events but not yet merged into the
// subscriptions table. Merging costs a fixed ~7 ms per statement, so the writer merges when it
// is idle, or at most every stateMergeInterval under load, instead of once per commit.
type pendingState struct {
	byID  map[string]*subDelta
	order []*subDelta
	since time.Time // when the oldest pending change was committed
}

// fold adds rows (in seq order) to the pending deltas.
func (p *pendingState) fold(rows []*schemas.Row, now time.Time) {
	for _, r := range rows {
		if r.SubscriptionID == "" || !changesSubscription(r.EventType) {
			continue
		}
		if p.byID == nil {
			p.byID = map[string]*subDelta{}
		}
		d := p.byID[r.SubscriptionID]
		if d == nil {
			if len(p.order) == 0 {
				p.since = now
			}
			d = &subDelta{id: r.SubscriptionID, firstSeen: r.ReceivedAt, firstSeq: r.Seq}
			p.byID[r.SubscriptionID] = d
			p.order = append(p.order, d)
		}
		d.add(r)
	}
}

func (p *pendingState) reset() {
	p.byID, p.order = nil, nil
}

// add folds one event into d.
func (d *subDelta) add(r *schemas.Row) {
	if r.EventType == string(schemas.Unsubscribe) {
		d.unsubscribed = true
		earliest(&d.unsubscribedAt, r.OccurredAt)
		if d.reason == "" {
			d.reason = r.UnsubscribeReason // the first Unsubscribe's reason stands
		}
	} else {
		earliest(&d.subscribedAt, r.OccurredAt)
	}
	if r.EventType == string(schemas.Subscribe) {
		if d.sub == nil {
			d.sub = &fields{}
		}
		d.sub.fold(r)
	} else {
		d.fields.fold(r)
	}
	if r.ReceivedAt.Before(d.firstSeen) {
		d.firstSeen = r.ReceivedAt
	}
	if r.ReceivedAt.After(d.lastSeen) {
		d.lastSeen = r.ReceivedAt
	}
	d.firstSeq = min(d.firstSeq, r.Seq)
	d.lastSeq = max(d.lastSeq, r.Seq)
	d.lastType = r.EventType
	d.events++
}

// subscriptionsSchema is the subscriptions table as Arrow, in column order.
var subscriptionsSchema = func() *arrow.Schema {
	str, ts, list := arrow.BinaryTypes.String, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, arrow.ListOf(arrow.BinaryTypes.String)
	f := func(name string, t arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: true}
	}
	return arrow.NewSchema([]arrow.Field{
		f("subscription_id", str), f("status", str), f("account_id", str), f("account_code", str),
		f("calendar_id", str), f("calendar_code", str), f("calendar_title", str), f("subscription_method", str),
		f("tag_ids", list), f("tag_names", list), f("email", str), f("email_key", str), f("first_name", str),
		f("last_name", str), f("phone", str), f("postcode", str), f("country_code", str),
		f("marketing_consent", arrow.FixedWidthTypes.Boolean), f("subscribed_at", ts), f("unsubscribed_at", ts),
		f("unsubscribe_reason", str), f("first_seen_at", ts), f("last_seen_at", ts), f("first_seq", arrow.PrimitiveTypes.Int64),
		f("last_seq", arrow.PrimitiveTypes.Int64), f("last_event_type", str), f("events", arrow.PrimitiveTypes.Int32),
		f("consent_seq", arrow.PrimitiveTypes.Int64),
	}, nil)
}()

// deltaPart says which of a delta's fields a record carries.
type deltaPart int

const (
	// allFields: what the other events gave, filled in from the Subscribes (a subscription
	// new to the table).
	allFields deltaPart = iota
	// otherFields: what the events other than Subscribe gave (merged over the stored row).
	otherFields
	// subscribeFields: what the Subscribes gave, with no events counted (filled in under the
	// stored row).
	subscribeFields
)

// deltaRecord renders deltas as a record of subscriptionsSchema, with part's fields.
func deltaRecord(deltas []*subDelta, part deltaPart) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.NewGoAllocator(), subscriptionsSchema)
	defer b.Release()
	i := 0
	next := func() array.Builder { i++; return b.Field(i - 1) }
	for _, d := range deltas {
		i = 0
		f, events := d.fields, d.events
		switch part {
		case allFields:
			f = d.fields.under(d.sub)
		case subscribeFields:
			f, events = *d.sub, 0
		}
		status := schemas.StatusSubscribed
		if d.unsubscribed {
			status = schemas.StatusUnsubscribed
		}
		for _, s := range []string{d.id, status, f.accountID, f.accountCode, f.calendarID, f.calendarCode, f.calendarTitle, f.method} {
			appendString(next(), s)
		}
		appendList(next(), f.tagIDs)
		appendList(next(), f.tagNames)
		for _, s := range []string{f.email, f.emailKey, f.firstName, f.lastName, f.phone, f.postcode, f.country} {
			appendString(next(), s)
		}
		cb := next().(*array.BooleanBuilder)
		if f.consent != nil {
			cb.Append(*f.consent)
		} else {
			cb.AppendNull()
		}
		appendTime(next(), d.subscribedAt)
		appendTime(next(), d.unsubscribedAt)
		appendString(next(), d.reason)
		appendTime(next(), &d.firstSeen)
		appendTime(next(), &d.lastSeen)
		next().(*array.Int64Builder).Append(d.firstSeq)
		next().(*array.Int64Builder).Append(d.lastSeq)
		appendString(next(), d.lastType)
		next().(*array.Int32Builder).Append(events)
		if cs := next().(*array.Int64Builder); f.consent != nil {
			cs.Append(f.consentSeq)
		} else {
			cs.AppendNull()
		}
	}
	return b.NewRecordBatch()
}

func appendString(b array.Builder, s string) {
	sb := b.(*array.StringBuilder)
	if s == "" {
		sb.AppendNull()
		return
	}
	sb.Append(s)
}

func appendList(b array.Builder, l []string) {
	lb := b.(*array.ListBuilder)
	if l == nil {
		lb.AppendNull()
		return
	}
	lb.Append(true)
	vb := lb.ValueBuilder().(*array.StringBuilder)
	for _, s := range l {
		vb.Append(s)
	}
}

func appendTime(b array.Builder, t *time.Time) {
	tb := b.(*array.TimestampBuilder)
	if t == nil {
		tb.AppendNull()
		return
	}
	tb.Append(arrow.Timestamp(t.UnixMicro()))
}

// mergeSubscriptions merges deltas into the subscriptions table.
func (s *Store) mergeSubscriptions(ctx context.Context, tx *Tx, deltas []*subDelta) error {
	// INSERT … ON CONFLICT costs about as much for a new row as for an update, while a new
	// subscription (most of them, under traffic) goes in through the Appender for a fraction
	// of that; the filter of known ids tells which are certainly new. And DuckDB cannot update
	// a LIST column in place: an update that sets one deletes and re-inserts the whole row.
	// Most changes to existing subscriptions carry no tags (Unsubscribe, calendar-event
	// changes), so they merge by a statement that leaves the tag columns alone.
	var fresh, tagged, untagged []*subDelta
	for _, d := range deltas {
		switch {
		case !s.subsSeen.mayContain(d.id):
			fresh = append(fresh, d)
		case d.tagIDs != nil || d.tagNames != nil:
			tagged = append(tagged, d)
		default:
			untagged = append(untagged, d)
		}
	}
	if len(fresh) > 0 {
		rec := deltaRecord(fresh, allFields)
		err := tx.InsertRecord(ctx, "subscriptions", rec)
		rec.Release()
		if err != nil {
			// One taken for new may exist after all (the filter missed a write): relearn the
			// ids from the table, so the retry of this merge sorts them right.
			if lerr := s.loadSubscriptionIDs(ctx); lerr != nil {
				s.log.Error("store: reload subscription ids", "err", lerr)
			}
			return fmt.Errorf("insert new subscriptions: %w", err)
		}
	}
	// A Subscribe of a stored subscription arrived after other events of it: what it says
	// fills in only what the stored row lacks, before the other events' fields go over it.
	var late []*subDelta
	for _, d := range append(tagged[:len(tagged):len(tagged)], untagged...) {
		if d.sub != nil {
			late = append(late, d)
		}
	}
	for _, part := range []struct {
		deltas []*subDelta
		fields deltaPart
		sql    string
	}{{late, subscribeFields, fillSubscriptionsSQL}, {tagged, otherFields, mergeSubscriptionsSQL}, {untagged, otherFields, mergeUntaggedSQL}} {
		if len(part.deltas) == 0 {
			continue
		}
		rec := deltaRecord(part.deltas, part.fields)
		err := tx.execView(ctx, rec, part.sql)
		rec.Release()
		if err != nil {
			return fmt.Errorf("merge subscriptions: %w", err)
		}
	}
	// Added before the commit: if it fails, an id is only thought to exist, which costs the
	// slower statement and nothing else.
	for _, d := range fresh {
		s.subsSeen.add(d.id)
	}
	return nil
}

// loadSubscriptionIDs fills the filter of known subscription ids from the table, on a
// connection of its own (the writer's transaction may have failed).
func (s *Store) loadSubscriptionIDs(ctx context.Context) error {
	err := s.rawConn(ctx, func(c driver.Conn) error { return s.noteSubscriptionIDs(ctx, &Tx{conn: c, store: s}) })
	if err != nil {
		return fmt.Errorf("store: load subscription ids: %w", err)
	}
	return nil
}

// noteSubscriptionIDs replaces the filter of known subscription ids with the ids of the
// subscriptions table as tx sees it (the writer's, after the table was rebuilt). A
// new filter, not more ids added to the old one: every id added counts towards the filter's
// size, so adding the whole table again at each rebuild would grow it without end.
func (s *Store) noteSubscriptionIDs(ctx context.Context, tx *Tx) error {
	var n int64
	if err := tx.Query(ctx, "SELECT count(*) FROM subscriptions", nil, func(row []driver.Value) error {
		n = row[0].(int64)
		return nil
	}); err != nil {
		return err
	}
	f := newIDFilter(int(n))
	if err := tx.Query(ctx, "SELECT subscription_id FROM subscriptions", nil, func(row []driver.Value) error {
		f.add(row[0].(string))
		return nil
	}); err != nil {
		return err
	}
	s.subsSeen = f
	return nil
}

// mergeUntaggedSQL is mergeSubscriptionsSQL without the tag columns (excluded's are null).
var mergeUntaggedSQL = strings.NewReplacer(
	"\ttag_ids = coalesce(excluded.tag_ids, subscriptions.tag_ids),\n", "",
	"\ttag_names = coalesce(excluded.tag_names, subscriptions.tag_names),\n", "",
).Replace(mergeSubscriptionsSQL)

// fieldColumns are the subscription's descriptive columns (fields): each takes the first
// non-null of two rows, the merge's and the stored one, in an order that says which wins.
var fieldColumns = []string{
	"account_id", "account_code", "calendar_id", "calendar_code", "calendar_title", "subscription_method",
	"tag_ids", "tag_names", "email", "email_key", "first_name", "last_name", "phone", "postcode", "country_code",
	"marketing_consent",
}

// FieldColumns returns the subscription's descriptive columns: the ones the subscriptions
// table holds the latest value of, in preference to an event's.
func FieldColumns() []string { return slices.Clone(fieldColumns) }

// setFields is the SET clause of fieldColumns, first over second ("excluded" or
// "subscriptions"), consent_seq going with the consent that wins.
func setFields(first, second string) string {
	var b strings.Builder
	for _, c := range fieldColumns {
		fmt.Fprintf(&b, "\t%s = coalesce(%s.%s, %s.%s),\n", c, first, c, second, c)
	}
	fmt.Fprintf(&b, "\tconsent_seq = CASE WHEN %s.marketing_consent IS NULL THEN %s.consent_seq ELSE %s.consent_seq END", first, second, first)
	return b.String()
}

// fillSubscriptionsSQL merges what Subscribes said under the stored rows: each field only
// where the row has none. (A row not there after all is inserted whole, with no events
// counted; the merge of the other fields that follows counts them.)
var fillSubscriptionsSQL = `
INSERT INTO subscriptions SELECT * FROM ` + ingestView + `
ON CONFLICT (subscription_id) DO UPDATE SET
` + setFields("subscriptions", "excluded") + "\n"

// mergeSubscriptionsSQL merges the other events' fields over the stored rows, and the state
// and bookkeeping by the subscription state rule.
var mergeSubscriptionsSQL = `
INSERT INTO subscriptions SELECT * FROM ` + ingestView + `
ON CONFLICT (subscription_id) DO UPDATE SET
	status = CASE WHEN subscriptions.status = 'unsubscribed' OR excluded.status = 'unsubscribed' THEN 'unsubscribed' ELSE 'subscribed' END,
` + setFields("excluded", "subscriptions") + `,
	subscribed_at = least(subscriptions.subscribed_at, excluded.subscribed_at),
	unsubscribed_at = least(subscriptions.unsubscribed_at, excluded.unsubscribed_at),
	unsubscribe_reason = coalesce(subscriptions.unsubscribe_reason, excluded.unsubscribe_reason),
	first_seen_at = least(subscriptions.first_seen_at, excluded.first_seen_at),
	last_seen_at = greatest(subscriptions.last_seen_at, excluded.last_seen_at),
	first_seq = least(subscriptions.first_seq, excluded.first_seq),
	last_seq = greatest(subscriptions.last_seq, excluded.last_seq),
	last_event_type = excluded.last_event_type,
	events = subscriptions.events + excluded.events
`
