package schemas

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// SchemaVersion is stored in the Arrow schema's metadata under MetadataSchemaVersion. Later
// versions only add nullable columns.
const SchemaVersion = "2"

// MetadataSchemaVersion is the Arrow metadata key that carries SchemaVersion.
const MetadataSchemaVersion = "hookbridge.schema_version"

// Column describes one normalised column. Its Name is used verbatim by configurations, SQL
// views and sinks.
type Column struct {
	Name string
	// Type is the column's Arrow type.
	Type arrow.DataType
	// Doc is the one-line description the README lists.
	Doc string
	// Delivery marks columns the delivery engine joins from current state; they are not
	// stored in the events table.
	Delivery bool

	get  func(*Row) any // nil when the column is null
	app  func(array.Builder, *Row)
	read func(arrow.Array, int, *Row)
	// readAll, when set, reads a whole column at once (string columns: one copy of the
	// array's data buffer, sliced per row, instead of one allocation per value).
	readAll func(arrow.Array, []Row)
}

var (
	typeString = arrow.BinaryTypes.String
	typeList   = arrow.ListOf(arrow.BinaryTypes.String)
	typeUTC    = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	typeWall   = &arrow.TimestampType{Unit: arrow.Microsecond}
)

var columns = []*Column{
	int64Col("seq", "position in the store's commit order; the delivery cursor", func(r *Row) *int64 { return &r.Seq }),
	strCol("event_id", "envelope eventId, lower-cased; unique", func(r *Row) *string { return &r.EventID }),
	strCol("event_type", "normalised eventType (SubscriptionDetailsUpdate becomes SubscriptionDetailsUpdated)", func(r *Row) *string { return &r.EventType }),
	strCol("event_type_sent", "eventType exactly as sent", func(r *Row) *string { return &r.EventTypeSent }),
	strCol("source", "the configured source that received the body (the {source} of /webhooks/{source})", func(r *Row) *string { return &r.Source }),
	timeCol("received_at", "when hookbridge received the body (UTC)", func(r *Row) *time.Time { return &r.ReceivedAt }),
	timeCol("occurred_at", "best known time of the change: removedDateTimeUtc for an Unsubscribe, else received_at", func(r *Row) *time.Time { return &r.OccurredAt }),
	strCol("action_type", "eventDetails.actionType (open set: SubscriptionViaCalendarPage, …)", func(r *Row) *string { return &r.ActionType }),
	strCol("account_id", "eventDetails.accountId, lower-cased", func(r *Row) *string { return &r.AccountID }),
	strCol("account_name", "eventDetails.accountName", func(r *Row) *string { return &r.AccountName }),
	strCol("account_code", "eventDetails.accountCode", func(r *Row) *string { return &r.AccountCode }),
	strCol("subscription_id", "calendarSubscriptionId from eventDetails, else from the subscription object; lower-cased", func(r *Row) *string { return &r.SubscriptionID }),
	strCol("calendar_id", "subscription.calendarId, lower-cased", func(r *Row) *string { return &r.CalendarID }),
	strCol("calendar_code", "subscription.calendarCode", func(r *Row) *string { return &r.CalendarCode }),
	strCol("calendar_title", "subscription.calendarTitle", func(r *Row) *string { return &r.CalendarTitle }),
	strCol("subscription_method", "subscription.subscriptionMethod: Webcal, Google, Microsoft (case normalised) or as sent", func(r *Row) *string { return &r.SubscriptionMethod }),
	listCol("tag_ids", "subscription.calendarTags[].tagId, lower-cased", func(r *Row) *[]string { return &r.TagIDs }),
	listCol("tag_names", "tag display names when a tag object carries one (name, text, tagName)", func(r *Row) *[]string { return &r.TagNames }),
	strCol("email", "subscriber email: trimmed, domain lower-cased, plus-addressing kept", func(r *Row) *string { return &r.Email }),
	strCol("email_original", "subscriber email exactly as sent", func(r *Row) *string { return &r.EmailOriginal }),
	strCol("email_key", "email fully lower-cased, for matching and de-duplication", func(r *Row) *string { return &r.EmailKey }),
	strCol("first_name", "subscriber first name", func(r *Row) *string { return &r.FirstName }),
	strCol("last_name", "subscriber last name", func(r *Row) *string { return &r.LastName }),
	strCol("phone", "subscriber phone number as sent (trimmed)", func(r *Row) *string { return &r.Phone }),
	strCol("postcode", "postcode or zip: trimmed, upper-cased, inner spaces collapsed", func(r *Row) *string { return &r.Postcode }),
	strCol("country_code", "country code (subscriber's, or the Removed Subscription Object's countryCode), upper-cased", func(r *Row) *string { return &r.CountryCode }),
	boolCol("marketing_consent", "marketing consent flag when the body carries one (marketingAllowed, optIn1, …)", func(r *Row) **bool { return &r.MarketingConsent }),
	optTimeCol("removed_at", "Unsubscribe: removedDateTimeUtc (UTC)", func(r *Row) **time.Time { return &r.RemovedAt }),
	strCol("unsubscribe_reason", "Unsubscribe: unsubscribeReasonText", func(r *Row) *string { return &r.UnsubscribeReason }),
	strCol("remote_ip", "Unsubscribe: remoteIpAddress", func(r *Row) *string { return &r.RemoteIP }),
	strCol("geo_country", "Unsubscribe: geoCountry", func(r *Row) *string { return &r.GeoCountry }),
	strCol("user_agent", "Unsubscribe: userAgent", func(r *Row) *string { return &r.UserAgent }),
	strCol("calendar_event_id", "subscriptionEvent.eventId: the merchant's calendar-event id (not the envelope eventId)", func(r *Row) *string { return &r.CalendarEventID }),
	strCol("event_title", "subscriptionEvent.title", func(r *Row) *string { return &r.EventTitle }),
	strCol("event_location", "subscriptionEvent.location", func(r *Row) *string { return &r.EventLocation }),
	strCol("event_description", "subscriptionEvent.description", func(r *Row) *string { return &r.EventDescription }),
	wallCol("event_start", "calendar event start, wall clock in event_timezone (no zone)", func(r *Row) **time.Time { return &r.EventStart }),
	wallCol("event_end", "calendar event end, wall clock in event_timezone (no zone)", func(r *Row) **time.Time { return &r.EventEnd }),
	optTimeCol("event_start_utc", "calendar event start as an instant, when the zone is known", func(r *Row) **time.Time { return &r.EventStartUTC }),
	optTimeCol("event_end_utc", "calendar event end as an instant, when the zone is known", func(r *Row) **time.Time { return &r.EventEndUTC }),
	strCol("event_timezone", "calendar event time zone as sent (IANA or Windows name)", func(r *Row) *string { return &r.EventTimezone }),
	listCol("flags", "irregularities the decoder tolerated (see Flags)", func(r *Row) *[]string { return &r.Flags }),
	binaryCol("raw", "the request body byte for byte", func(r *Row) *[]byte { return &r.Raw }),

	delivery(strCol("status", "the subscription's current status: subscribed or unsubscribed (an Unsubscribe is final)", func(r *Row) *string { return &r.Status })),
	delivery(optTimeCol("subscribed_at", "when the subscription was first seen active", func(r *Row) **time.Time { return &r.SubscribedAt })),
	delivery(optTimeCol("unsubscribed_at", "when the subscription ended", func(r *Row) **time.Time { return &r.UnsubscribedAt })),
	delivery(strCol("contact_status", "subscribed when the contact (email_key) has any active subscription, else unsubscribed", func(r *Row) *string { return &r.ContactStatus })),
	delivery(optInt64Col("contact_active_subscriptions", "how many active subscriptions the contact has", func(r *Row) **int64 { return &r.ContactActiveSubscriptions })),
	delivery(listCol("contact_calendars", "calendar codes the contact is subscribed to now", func(r *Row) *[]string { return &r.ContactCalendars })),
	delivery(listCol("contact_ended_calendars", "calendar codes whose subscriptions the contact ended", func(r *Row) *[]string { return &r.ContactEndedCalendars })),
	delivery(boolCol("contact_marketing_consent", "the contact's latest marketing-consent statement, over all their subscriptions (ended ones too); null when none made one", func(r *Row) **bool { return &r.ContactMarketingConsent })),
}

var columnByName = func() map[string]*Column {
	m := make(map[string]*Column, len(columns))
	for _, c := range columns {
		m[c.Name] = c
	}
	return m
}()

// Columns returns every normalised column in order: the stored columns, then the delivery
// columns.
func Columns() []Column {
	out := make([]Column, len(columns))
	for i, c := range columns {
		out[i] = *c
	}
	return out
}

// LookupColumn returns the column called name.
func LookupColumn(name string) (Column, bool) {
	c, ok := columnByName[name]
	if !ok {
		return Column{}, false
	}
	return *c, true
}

// Value returns column name of r as a plain Go value (string, bool, int64, []string, []byte,
// or time.Time), or nil when it is null.
func (r *Row) Value(name string) (any, error) {
	c, ok := columnByName[name]
	if !ok {
		return nil, fmt.Errorf("schemas: unknown column %q", name)
	}
	return c.get(r), nil
}

func delivery(c *Column) *Column {
	c.Delivery = true
	return c
}

func strCol(name, doc string, f func(*Row) *string) *Column {
	return &Column{Name: name, Type: typeString, Doc: doc,
		get: func(r *Row) any {
			if s := *f(r); s != "" {
				return s
			}
			return nil
		},
		app: func(b array.Builder, r *Row) {
			sb := b.(*array.StringBuilder)
			if s := *f(r); s != "" {
				sb.Append(s)
			} else {
				sb.AppendNull()
			}
		},
		read: func(a arrow.Array, i int, r *Row) {
			if a.IsValid(i) {
				*f(r) = strings.Clone(a.(*array.String).Value(i)) // Value aliases the Arrow buffer
			}
		},
		readAll: func(a arrow.Array, rows []Row) {
			sa := a.(*array.String)
			data, offs := string(sa.ValueBytes()), sa.ValueOffsets()
			for i := range rows {
				if sa.IsValid(i) {
					*f(&rows[i]) = data[offs[i]-offs[0] : offs[i+1]-offs[0]]
				}
			}
		},
	}
}

func binaryCol(name, doc string, f func(*Row) *[]byte) *Column {
	return &Column{Name: name, Type: arrow.BinaryTypes.Binary, Doc: doc,
		get: func(r *Row) any {
			if b := *f(r); b != nil {
				return b
			}
			return nil
		},
		app: func(b array.Builder, r *Row) {
			bb := b.(*array.BinaryBuilder)
			if v := *f(r); v != nil {
				bb.Append(v)
			} else {
				bb.AppendNull()
			}
		},
		read: func(a arrow.Array, i int, r *Row) {
			if a.IsValid(i) {
				*f(r) = append([]byte(nil), a.(*array.Binary).Value(i)...)
			}
		},
		readAll: func(a arrow.Array, rows []Row) {
			ba := a.(*array.Binary)
			data, offs := bytes.Clone(ba.ValueBytes()), ba.ValueOffsets()
			for i := range rows {
				if ba.IsValid(i) {
					lo, hi := offs[i]-offs[0], offs[i+1]-offs[0]
					*f(&rows[i]) = data[lo:hi:hi]
				}
			}
		},
	}
}

func int64Col(name, doc string, f func(*Row) *int64) *Column {
	return &Column{Name: name, Type: arrow.PrimitiveTypes.Int64, Doc: doc,
		get: func(r *Row) any { return *f(r) },
		app: func(b array.Builder, r *Row) { b.(*array.Int64Builder).Append(*f(r)) },
		read: func(a arrow.Array, i int, r *Row) {
			if a.IsValid(i) {
				*f(r) = a.(*array.Int64).Value(i)
			}
		},
	}
}

func optInt64Col(name, doc string, f func(*Row) **int64) *Column {
	return &Column{Name: name, Type: arrow.PrimitiveTypes.Int64, Doc: doc,
		get: func(r *Row) any {
			if p := *f(r); p != nil {
				return *p
			}
			return nil
		},
		app: func(b array.Builder, r *Row) {
			ib := b.(*array.Int64Builder)
			if p := *f(r); p != nil {
				ib.Append(*p)
			} else {
				ib.AppendNull()
			}
		},
		read: func(a arrow.Array, i int, r *Row) {
			if a.IsValid(i) {
				v := a.(*array.Int64).Value(i)
				*f(r) = &v
			}
		},
	}
}

func boolCol(name, doc string, f func(*Row) **bool) *Column {
	return &Column{Name: name, Type: arrow.FixedWidthTypes.Boolean, Doc: doc,
		get: func(r *Row) any {
			if p := *f(r); p != nil {
				return *p
			}
			return nil
		},
		app: func(b array.Builder, r *Row) {
			bb := b.(*array.BooleanBuilder)
			if p := *f(r); p != nil {
				bb.Append(*p)
			} else {
				bb.AppendNull()
			}
		},
		read: func(a arrow.Array, i int, r *Row) {
			if a.IsValid(i) {
				v := a.(*array.Boolean).Value(i)
				*f(r) = &v
			}
		},
	}
}

func timeCol(name, doc string, f func(*Row) *time.Time) *Column {
	return &Column{Name: name, Type: typeUTC, Doc: doc,
		get: func(r *Row) any {
			if t := *f(r); !t.IsZero() {
				return t
			}
			return nil
		},
		app: func(b array.Builder, r *Row) {
			tb := b.(*array.TimestampBuilder)
			if t := *f(r); !t.IsZero() {
				tb.Append(arrow.Timestamp(t.UnixMicro()))
			} else {
				tb.AppendNull()
			}
		},
		read: func(a arrow.Array, i int, r *Row) {
			if a.IsValid(i) {
				*f(r) = time.UnixMicro(int64(a.(*array.Timestamp).Value(i))).UTC()
			}
		},
	}
}

func optTimeCol(name, doc string, f func(*Row) **time.Time) *Column {
	return timePtrCol(name, doc, typeUTC, f)
}

func wallCol(name, doc string, f func(*Row) **time.Time) *Column {
	return timePtrCol(name, doc, typeWall, f)
}

func timePtrCol(name, doc string, typ arrow.DataType, f func(*Row) **time.Time) *Column {
	return &Column{Name: name, Type: typ, Doc: doc,
		get: func(r *Row) any {
			if p := *f(r); p != nil {
				return *p
			}
			return nil
		},
		app: func(b array.Builder, r *Row) {
			tb := b.(*array.TimestampBuilder)
			if p := *f(r); p != nil {
				tb.Append(arrow.Timestamp(p.UnixMicro()))
			} else {
				tb.AppendNull()
			}
		},
		read: func(a arrow.Array, i int, r *Row) {
			if a.IsValid(i) {
				t := time.UnixMicro(int64(a.(*array.Timestamp).Value(i))).UTC()
				*f(r) = &t
			}
		},
	}
}

func listCol(name, doc string, f func(*Row) *[]string) *Column {
	return &Column{Name: name, Type: typeList, Doc: doc,
		get: func(r *Row) any {
			if l := *f(r); l != nil {
				return l
			}
			return nil
		},
		app: func(b array.Builder, r *Row) {
			lb := b.(*array.ListBuilder)
			l := *f(r)
			if l == nil {
				lb.AppendNull()
				return
			}
			lb.Append(true)
			vb := lb.ValueBuilder().(*array.StringBuilder)
			for _, s := range l {
				vb.Append(s)
			}
		},
		read: func(a arrow.Array, i int, r *Row) {
			if !a.IsValid(i) {
				return
			}
			la := a.(*array.List)
			start, end := la.ValueOffsets(i)
			vals := la.ListValues().(*array.String)
			l := make([]string, 0, end-start)
			for j := start; j < end; j++ {
				l = append(l, strings.Clone(vals.Value(int(j))))
			}
			*f(r) = l
		},
		readAll: func(a arrow.Array, rows []Row) {
			la := a.(*array.List)
			if len(rows) == 0 {
				return
			}
			// One copy of the values these rows use (a sliced list still sees all its values).
			vals := la.ListValues().(*array.String)
			voffs := vals.ValueOffsets()
			first, _ := la.ValueOffsets(0)
			_, last := la.ValueOffsets(len(rows) - 1)
			base := voffs[first]
			data := string(vals.ValueBytes()[base-voffs[0] : voffs[last]-voffs[0]])
			for i := range rows {
				if !la.IsValid(i) {
					continue
				}
				start, end := la.ValueOffsets(i)
				l := make([]string, 0, end-start)
				for j := start; j < end; j++ {
					l = append(l, data[voffs[j]-base:voffs[j+1]-base])
				}
				*f(&rows[i]) = l
			}
		},
	}
}
