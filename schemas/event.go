// Package schemas is hookbridge's vocabulary: the Rokt Calendar (v2) webhook event types, a
// tolerant decoder that turns a request body into a typed Event, the normalised Row every event
// becomes, the Arrow schema those rows travel in, and the declarative mapping from normalised
// columns to a sink's field names.
//
// The vendor documents its format only in part and contradicts itself in places (see
// spec/rokt-calendar-webhooks.md), so the decoder refuses only bodies it cannot identify and
// records every other irregularity as a Flag on the event.
//
// The package is pure Go: it needs neither cgo nor DuckDB, so plugin authors can import it.
package schemas

import (
	"encoding/json"
	"time"
)

// EventType is the normalised value of the envelope's eventType.
type EventType string

// The event types Rokt Calendar documents. The vendor calls these the values supported
// "currently": any other value decodes as an envelope with the FlagUnknownType flag.
const (
	Subscribe                  EventType = "Subscribe"
	Unsubscribe                EventType = "Unsubscribe"
	SubscriptionDetailsUpdated EventType = "SubscriptionDetailsUpdated"
	SubscriptionEventAdded     EventType = "SubscriptionEventAdded"
	SubscriptionEventUpdated   EventType = "SubscriptionEventUpdated"
	SubscriptionEventRemoved   EventType = "SubscriptionEventRemoved"
	SubscriptionEventDeleted   EventType = "SubscriptionEventDeleted"
	Test                       EventType = "Test"
)

// KnownTypes lists the documented event types in the vendor's order.
var KnownTypes = []EventType{
	Subscribe, Unsubscribe, SubscriptionDetailsUpdated, SubscriptionEventAdded,
	SubscriptionEventUpdated, SubscriptionEventRemoved, SubscriptionEventDeleted, Test,
}

// typeAliases maps spellings the vendor's own examples use to the documented type.
var typeAliases = map[string]EventType{
	"SubscriptionDetailsUpdate": SubscriptionDetailsUpdated,
}

// Known reports whether t is one of the documented event types.
func (t EventType) Known() bool {
	for _, k := range KnownTypes {
		if t == k {
			return true
		}
	}
	return false
}

// Event is one decoded webhook body.
type Event struct {
	// ID is the envelope's eventId, trimmed and lower-cased: the idempotency key.
	ID string
	// Type is the normalised event type (aliases resolved, case corrected).
	Type EventType
	// SentType is eventType exactly as the sender spelled it (trimmed).
	SentType string
	// Details holds the typed eventDetails: one of *SubscribeDetails, *UnsubscribeDetails,
	// *SubscriptionDetailsUpdatedDetails, *SubscriptionEventAddedDetails,
	// *SubscriptionEventUpdatedDetails, *SubscriptionEventRemovedDetails,
	// *SubscriptionEventDeletedDetails or *TestDetails; nil for an unknown type.
	Details Details
	// Contact holds the subscriber fields found through the decoder's FieldPaths.
	Contact Contact
	// Flags records every tolerated irregularity.
	Flags Flags
	// UnknownKeys lists the dotted paths of keys the decoder did not expect, for diagnostics.
	UnknownKeys []string
	// Body is the request body byte for byte, as received (BOM and trailing commas included).
	Body []byte

	// calendarEventRead is the subscriptionEvent object of a Removed or Deleted event as read,
	// with whatever the Basic shape leaves out.
	calendarEventRead *SubscriptionEventDetails
}

// Details is implemented by every typed eventDetails shape.
type Details interface {
	// Base returns the members common to the seven non-Test types (zero for Test).
	Base() *Common
}

// Common holds the members of eventDetails that every non-Test event type documents.
type Common struct {
	ActionType             string `json:"actionType"`
	CalendarSubscriptionID string `json:"calendarSubscriptionId"`
	AccountID              string `json:"accountId"`
	AccountName            string `json:"accountName"`
	AccountCode            string `json:"accountCode"`
}

// Base implements Details.
func (c *Common) Base() *Common { return c }

// SubscriptionBasic is the vendor's "Subscription Basic" object.
type SubscriptionBasic struct {
	CalendarSubscriptionID string `json:"calendarSubscriptionId"`
	CalendarID             string `json:"calendarId"`
	CalendarTitle          string `json:"calendarTitle"`
	CalendarCode           string `json:"calendarCode"`
	// SubscriptionMethod is canonicalised: Webcal, Google or Microsoft whatever the casing
	// sent; other values are kept as sent.
	SubscriptionMethod string `json:"subscriptionMethod,omitempty"`
}

// CalendarTag is one entry of calendarTags. Only tagId is confirmed; the decoder also reads
// the id/name shapes other Rokt APIs use (id, internalId; name, text, tagName).
type CalendarTag struct {
	TagID string `json:"tagId"`
	Name  string `json:"name,omitempty"`
}

// SubscriptionDetails is the vendor's "Subscription Details" object: Subscription Basic plus
// the tags the subscription is filtered by.
type SubscriptionDetails struct {
	SubscriptionBasic
	CalendarTags []CalendarTag `json:"calendarTags,omitempty"`
}

// RemovedSubscription is the vendor's "Removed Subscription Object" carried by Unsubscribe.
type RemovedSubscription struct {
	RemovedDateTimeUtc    string `json:"removedDateTimeUtc"`
	UnsubscribeReasonText string `json:"unsubscribeReasonText"`
	RemoteIPAddress       string `json:"remoteIpAddress"`
	CountryCode           string `json:"countryCode"`
	GeoCountry            string `json:"geoCountry"`
	UserAgent             string `json:"userAgent"`
	// CalendarSubscriptionID is not documented in this object; read when a sender adds it.
	CalendarSubscriptionID string `json:"calendarSubscriptionId,omitempty"`

	// RemovedAt is RemovedDateTimeUtc parsed (UTC); nil when absent or unparseable.
	RemovedAt *time.Time `json:"-"`
}

// SubscriptionEventBasic is the vendor's "Subscription Event Basic" object, carried by
// SubscriptionEventRemoved and SubscriptionEventDeleted: the merchant's calendar-event id,
// which is not a GUID and not the envelope's eventId.
type SubscriptionEventBasic struct {
	CalendarEventID string `json:"eventId,omitempty"`
}

// SubscriptionEventDetails is the vendor's "Subscription Event Details" object, carried by
// SubscriptionEventAdded and SubscriptionEventUpdated. Only title, location and description
// are confirmed; the calendar-event id is read under the Basic object's key when sent.
type SubscriptionEventDetails struct {
	SubscriptionEventBasic
	Title       string `json:"title,omitempty"`
	Location    string `json:"location,omitempty"`
	Description string `json:"description,omitempty"`

	// Start and End are found through FieldPaths (no key names are confirmed).
	Start    *EventTime `json:"-"`
	End      *EventTime `json:"-"`
	Timezone string     `json:"-"`
}

// EventTime is a calendar event's start or end. Rokt does not say whether zone-less times
// are local or UTC, so both readings are kept apart.
type EventTime struct {
	// Wall is the wall-clock time in the event's own time zone, stored with time.UTC as its
	// location; zero when unknown.
	Wall time.Time
	// UTC is the instant, when it can be known: the value carried a zone or offset, its key
	// ends in "Utc", or its wall clock could be placed in a named IANA time zone.
	UTC *time.Time
	// offsetWall says Wall is the clock of the value's own offset ("…T19:00:00Z"), which the
	// event's time zone, when known, replaces.
	offsetWall bool
}

// SubscribeDetails is eventDetails of a Subscribe event.
type SubscribeDetails struct {
	Common
	Subscription *SubscriptionDetails `json:"subscription"`
}

// UnsubscribeDetails is eventDetails of an Unsubscribe event.
type UnsubscribeDetails struct {
	Common
	Subscription *RemovedSubscription `json:"subscription"`
}

// SubscriptionDetailsUpdatedDetails is eventDetails of a SubscriptionDetailsUpdated event.
type SubscriptionDetailsUpdatedDetails struct {
	Common
	Subscription *SubscriptionDetails `json:"subscription"`
}

// SubscriptionEventAddedDetails is eventDetails of a SubscriptionEventAdded event.
type SubscriptionEventAddedDetails struct {
	Common
	Subscription      *SubscriptionBasic        `json:"subscription"`
	SubscriptionEvent *SubscriptionEventDetails `json:"subscriptionEvent"`
}

// SubscriptionEventUpdatedDetails is eventDetails of a SubscriptionEventUpdated event. The
// vendor sends no subscription object with it.
type SubscriptionEventUpdatedDetails struct {
	Common
	SubscriptionEvent *SubscriptionEventDetails `json:"subscriptionEvent"`
	// Subscription is not documented for this type; it is read when a sender adds one.
	Subscription *SubscriptionBasic `json:"subscription,omitempty"`
}

// SubscriptionEventRemovedDetails is eventDetails of a SubscriptionEventRemoved event.
type SubscriptionEventRemovedDetails struct {
	Common
	Subscription      *SubscriptionBasic      `json:"subscription"`
	SubscriptionEvent *SubscriptionEventBasic `json:"subscriptionEvent"`
}

// SubscriptionEventDeletedDetails is eventDetails of a SubscriptionEventDeleted event. The
// vendor sends no subscription object with it.
type SubscriptionEventDeletedDetails struct {
	Common
	SubscriptionEvent *SubscriptionEventBasic `json:"subscriptionEvent"`
	// Subscription is not documented for this type; it is read when a sender adds one.
	Subscription *SubscriptionBasic `json:"subscription,omitempty"`
}

// TestDetails is eventDetails of a Test event. Its shape is undocumented, so it is kept raw.
type TestDetails struct {
	Raw json.RawMessage
}

// Base implements Details; Test events carry no documented members.
func (t *TestDetails) Base() *Common { return &Common{} }

// Contact holds the subscriber fields extracted through FieldPaths.
type Contact struct {
	// Email is trimmed with its domain lower-cased; plus-addressing is kept.
	Email string
	// EmailOriginal is the value exactly as sent.
	EmailOriginal string
	// EmailKey is Email fully lower-cased, for matching.
	EmailKey  string
	FirstName string
	LastName  string
	Phone     string
	// Postcode is trimmed, upper-cased, inner spaces collapsed.
	Postcode    string
	CountryCode string
	// MarketingConsent is nil when no consent field was found.
	MarketingConsent *bool
}

// SubscriptionID returns the subscription this event refers to: eventDetails'
// calendarSubscriptionId, else the one inside the subscription object; "" when neither.
func (e *Event) SubscriptionID() string {
	if e.Details == nil {
		return ""
	}
	if id := e.Details.Base().CalendarSubscriptionID; id != "" {
		return id
	}
	if sub, _ := e.subscription(); sub != nil {
		return sub.CalendarSubscriptionID
	}
	if rm := e.removed(); rm != nil {
		return rm.CalendarSubscriptionID
	}
	return ""
}

// subscription returns the Subscription Basic members of the event, if it carries any.
func (e *Event) subscription() (*SubscriptionBasic, []CalendarTag) {
	switch d := e.Details.(type) {
	case *SubscribeDetails:
		if d.Subscription != nil {
			return &d.Subscription.SubscriptionBasic, d.Subscription.CalendarTags
		}
	case *SubscriptionDetailsUpdatedDetails:
		if d.Subscription != nil {
			return &d.Subscription.SubscriptionBasic, d.Subscription.CalendarTags
		}
	case *SubscriptionEventAddedDetails:
		return d.Subscription, nil
	case *SubscriptionEventRemovedDetails:
		return d.Subscription, nil
	case *SubscriptionEventUpdatedDetails:
		return d.Subscription, nil
	case *SubscriptionEventDeletedDetails:
		return d.Subscription, nil
	}
	return nil, nil
}

// calendarEvent returns the event's calendar event: the Subscription Event Details of an
// Added or Updated event; for a Removed or Deleted event, everything the decoder read from its
// subscriptionEvent object (a sender adding a title to a removal keeps it in the row), or its
// Basic object when the event was not made by the decoder.
func (e *Event) calendarEvent() *SubscriptionEventDetails {
	var basic *SubscriptionEventBasic
	switch d := e.Details.(type) {
	case *SubscriptionEventAddedDetails:
		return d.SubscriptionEvent
	case *SubscriptionEventUpdatedDetails:
		return d.SubscriptionEvent
	case *SubscriptionEventRemovedDetails:
		basic = d.SubscriptionEvent
	case *SubscriptionEventDeletedDetails:
		basic = d.SubscriptionEvent
	default:
		return nil
	}
	if e.calendarEventRead != nil {
		return e.calendarEventRead
	}
	if basic == nil {
		return nil
	}
	return &SubscriptionEventDetails{SubscriptionEventBasic: *basic}
}

// removed returns the Removed Subscription Object of an Unsubscribe, if any.
func (e *Event) removed() *RemovedSubscription {
	if d, ok := e.Details.(*UnsubscribeDetails); ok {
		return d.Subscription
	}
	return nil
}
