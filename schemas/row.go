package schemas

import (
	"errors"
	"time"
)

// Row is one event in the normalised shape shared by the store, the plugin protocol and every
// sink. Its fields are the columns listed by Columns; an empty string or nil pointer is a
// null column.
type Row struct {
	Seq           int64
	EventID       string
	EventType     string
	EventTypeSent string
	Source        string
	ReceivedAt    time.Time
	OccurredAt    time.Time

	ActionType  string
	AccountID   string
	AccountName string
	AccountCode string

	SubscriptionID     string
	CalendarID         string
	CalendarCode       string
	CalendarTitle      string
	SubscriptionMethod string
	TagIDs             []string
	TagNames           []string

	Email            string
	EmailOriginal    string
	EmailKey         string
	FirstName        string
	LastName         string
	Phone            string
	Postcode         string
	CountryCode      string
	MarketingConsent *bool

	RemovedAt         *time.Time
	UnsubscribeReason string
	RemoteIP          string
	GeoCountry        string
	UserAgent         string

	CalendarEventID  string
	EventTitle       string
	EventLocation    string
	EventDescription string
	EventStart       *time.Time // wall clock in EventTimezone (location time.UTC)
	EventEnd         *time.Time // wall clock in EventTimezone (location time.UTC)
	EventStartUTC    *time.Time
	EventEndUTC      *time.Time
	EventTimezone    string

	Flags []string
	Raw   []byte

	// The subscription's and contact's current state, joined by the delivery engine when a
	// row is sent to a sink; zero in the store's events table.
	Status                     string
	SubscribedAt               *time.Time
	UnsubscribedAt             *time.Time
	ContactStatus              string
	ContactActiveSubscriptions *int64
	ContactCalendars           []string
	ContactEndedCalendars      []string
	ContactMarketingConsent    *bool
}

// Subscription states, as the status and contact_status columns spell them.
const (
	StatusSubscribed   = "subscribed"
	StatusUnsubscribed = "unsubscribed"
)

// ContactState is the contact's status over all their subscriptions, StatusSubscribed or
// StatusUnsubscribed, from the contact columns: contact_status, else whether
// contact_active_subscriptions is above zero; "" when the row carries neither (a sink that
// did not ask for them). Sinks that keep one record per person decide by it.
func (r *Row) ContactState() string {
	switch {
	case r.ContactStatus != "":
		return r.ContactStatus
	case r.ContactActiveSubscriptions == nil:
		return ""
	case *r.ContactActiveSubscriptions > 0:
		return StatusSubscribed
	default:
		return StatusUnsubscribed
	}
}

// Row flattens e into the normalised shape. source names the webhook source and receivedAt
// the moment the body arrived; seq is left 0 for the store to assign.
func (e *Event) Row(source string, receivedAt time.Time) Row {
	receivedAt = receivedAt.UTC().Truncate(time.Microsecond)
	r := Row{
		EventID:       e.ID,
		EventType:     string(e.Type),
		EventTypeSent: e.SentType,
		Source:        source,
		ReceivedAt:    receivedAt,
		OccurredAt:    receivedAt,
		Flags:         e.Flags.Names(),
		Raw:           e.Body,
	}
	if e.Details != nil {
		c := e.Details.Base()
		r.ActionType, r.AccountID, r.AccountName, r.AccountCode = c.ActionType, c.AccountID, c.AccountName, c.AccountCode
	}
	r.SubscriptionID = e.SubscriptionID()
	if sub, tags := e.subscription(); sub != nil {
		r.CalendarID, r.CalendarCode, r.CalendarTitle, r.SubscriptionMethod = sub.CalendarID, sub.CalendarCode, sub.CalendarTitle, sub.SubscriptionMethod
		for _, t := range tags {
			if t.TagID != "" {
				r.TagIDs = append(r.TagIDs, t.TagID)
			}
			if t.Name != "" {
				r.TagNames = append(r.TagNames, t.Name)
			}
		}
		if tags != nil && len(tags) == 0 {
			// "calendarTags": [] says the subscription has no tags now: an empty list, not
			// the null of a body that says nothing about tags.
			r.TagIDs, r.TagNames = []string{}, []string{}
		}
	}
	c := e.Contact
	r.Email, r.EmailOriginal, r.EmailKey = c.Email, c.EmailOriginal, c.EmailKey
	r.FirstName, r.LastName, r.Phone, r.Postcode = c.FirstName, c.LastName, c.Phone, c.Postcode
	r.CountryCode, r.MarketingConsent = c.CountryCode, c.MarketingConsent
	if rm := e.removed(); rm != nil {
		r.RemovedAt = micro(rm.RemovedAt)
		r.UnsubscribeReason, r.RemoteIP, r.GeoCountry, r.UserAgent = rm.UnsubscribeReasonText, rm.RemoteIPAddress, rm.GeoCountry, rm.UserAgent
		if r.CountryCode == "" {
			r.CountryCode = rm.CountryCode
		}
		if r.RemovedAt != nil {
			r.OccurredAt = *r.RemovedAt
		}
	}
	if ce := e.calendarEvent(); ce != nil {
		r.CalendarEventID, r.EventTitle, r.EventLocation, r.EventDescription = ce.CalendarEventID, ce.Title, ce.Location, ce.Description
		r.EventTimezone = ce.Timezone
		if ce.Start != nil {
			r.EventStart, r.EventStartUTC = wall(ce.Start.Wall), micro(ce.Start.UTC)
		}
		if ce.End != nil {
			r.EventEnd, r.EventEndUTC = wall(ce.End.Wall), micro(ce.End.UTC)
		}
	}
	return r
}

func micro(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func wall(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return micro(&t)
}

// ErrNoRaw is returned by Row.Event for a row read without its raw column.
var ErrNoRaw = errors.New("schemas: the row carries no raw body (its raw column was not sent)")

// Event turns a stored row back into the typed event it was made from, by decoding its raw
// body with d (use the decoder the row was stored with, so contact fields come out the same).
// It is the inverse of Event.Row for sinks that want the vendor's typed eventDetails; the
// row's own columns are usually all a sink needs. Rows sent without the raw column give
// ErrNoRaw.
func (r *Row) Event(d *Decoder) (*Event, error) {
	if len(r.Raw) == 0 {
		return nil, ErrNoRaw
	}
	return d.Decode(r.Raw)
}
