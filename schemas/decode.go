package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Rule names the reason the decoder refuses a body. Only bodies that cannot be identified are
// refused; everything else decodes with Flags.
type Rule string

// The refusal rules, as they appear in error answers and in the rejected table.
const (
	RuleEmptyBody           Rule = "empty_body"            // nothing but white space
	RuleNotJSON             Rule = "not_json"              // not JSON, even after the lenient pass
	RuleTruncated           Rule = "truncated"             // ends inside a string or with brackets open
	RuleNotEnvelope         Rule = "not_envelope"          // not an object, or none of the v2 envelope keys
	RuleMissingEventID      Rule = "missing_event_id"      // eventId missing, null or empty
	RuleInvalidEventID      Rule = "invalid_event_id"      // eventId is an object, array or boolean
	RuleMissingEventType    Rule = "missing_event_type"    // eventType missing, null or empty
	RuleInvalidEventType    Rule = "invalid_event_type"    // eventType is an object, array or boolean
	RuleMissingEventDetails Rule = "missing_event_details" // eventDetails missing or null
	RuleInvalidEventDetails Rule = "invalid_event_details" // eventDetails is not an object
)

// DecodeError is the error Decode returns for a refused body.
type DecodeError struct {
	Rule   Rule   `json:"rule"`
	Detail string `json:"detail"`
}

// Error gives the rule and the detail ("not_json: …").
func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s: %s", e.Rule, e.Detail)
}

func refuse(rule Rule, format string, args ...any) *DecodeError {
	return &DecodeError{Rule: rule, Detail: fmt.Sprintf(format, args...)}
}

// Decoder turns webhook bodies into Events. It is safe for concurrent use.
type Decoder struct {
	paths   compiledPaths
	parsers fastjson.ParserPool
	zones   sync.Map // time zone name -> *time.Location (nil when not an IANA name)
}

// NewDecoder returns a decoder that extracts contact and time fields through paths (fields
// paths does not name keep their defaults).
func NewDecoder(paths FieldPaths) (*Decoder, error) {
	if err := paths.Validate(); err != nil {
		return nil, fmt.Errorf("schemas: field paths: %w", err)
	}
	return &Decoder{paths: compilePaths(paths.Merge())}, nil
}

// Decode decodes one request body. It returns a *DecodeError when the body cannot be
// identified as a Rokt Calendar v2 event; any other irregularity is recorded in Event.Flags.
// The returned Event keeps body (not a copy) as Event.Body.
func (d *Decoder) Decode(body []byte) (*Event, error) {
	ev := &Event{Body: body}
	b, bom := stripBOM(body)
	if bom {
		ev.Flags.Set(FlagBOM)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, refuse(RuleEmptyBody, "the body is empty")
	}
	p := d.parsers.Get()
	defer d.parsers.Put(p)
	root, err := p.ParseBytes(b)
	if err != nil {
		if fixed, changed := dropTrailingCommas(b); changed {
			if root, err = p.ParseBytes(fixed); err == nil {
				ev.Flags.Set(FlagLenientJSON)
			}
		}
	}
	if err != nil {
		if looksTruncated(b) {
			return nil, refuse(RuleTruncated, "the body ends before its JSON is complete (a redelivery can repair it)")
		}
		return nil, refuse(RuleNotJSON, "the body is not JSON: %s", syntaxProblem(b))
	}
	s := decodeState{d: d, ev: ev}
	if err := s.envelope(root); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeState carries one Decode call's event while the body's values are walked.
type decodeState struct {
	d  *Decoder
	ev *Event
}

var envelopeKeys = []string{"eventId", "eventType", "eventDetails"}

func (s *decodeState) envelope(root *fastjson.Value) error {
	if root.Type() != fastjson.TypeObject {
		return refuse(RuleNotEnvelope, "the body is a JSON %s, not an object with eventId, eventType and eventDetails", root.Type())
	}
	var id, typ, details *fastjson.Value
	seen := 0
	s.visit(root, "", envelopeKeys, nil, func(i int, v *fastjson.Value) {
		seen++
		switch i {
		case 0:
			id = v
		case 1:
			typ = v
		case 2:
			details = v
		}
	})
	if seen == 0 {
		return refuse(RuleNotEnvelope, "no eventId, eventType or eventDetails: not a Rokt Calendar v2 webhook (v1 bodies are not supported)")
	}

	var err error
	if s.ev.ID, err = s.envelopeString(id, "eventId", RuleMissingEventID, RuleInvalidEventID); err != nil {
		return err
	}
	s.ev.ID = lowerASCII(s.ev.ID)
	// A number for eventType is what a .NET sender writes for an enum it forgot to name: it
	// identifies the event well enough to keep it, as an unknown type flagged type_drift.
	if s.ev.SentType, err = s.envelopeString(typ, "eventType", RuleMissingEventType, RuleInvalidEventType); err != nil {
		return err
	}
	s.ev.Type = s.normaliseType(s.ev.SentType)
	if details == nil || details.Type() == fastjson.TypeNull {
		return refuse(RuleMissingEventDetails, "eventDetails is missing or null (send {} when there is nothing to say)")
	}
	if details.Type() != fastjson.TypeObject {
		return refuse(RuleInvalidEventDetails, "eventDetails is a JSON %s, not an object", details.Type())
	}
	s.details(details)
	return nil
}

// envelopeString reads eventId or eventType. Numbers are accepted (flagged as drift).
func (s *decodeState) envelopeString(v *fastjson.Value, key string, missing, invalid Rule) (string, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return "", refuse(missing, "%s is missing or null", key)
	}
	var out string
	switch v.Type() {
	case fastjson.TypeString:
		out = strings.TrimSpace(s.text(v))
	case fastjson.TypeNumber:
		s.ev.Flags.Set(FlagTypeDrift)
		out = string(v.MarshalTo(nil))
	default:
		return "", refuse(invalid, "%s is a JSON %s, not a string", key, v.Type())
	}
	if out == "" {
		return "", refuse(missing, "%s is empty", key)
	}
	return out, nil
}

func (s *decodeState) normaliseType(sent string) EventType {
	t := EventType(sent)
	if t.Known() {
		return t
	}
	if alias, ok := typeAliases[sent]; ok {
		s.ev.Flags.Set(FlagTypeAlias)
		return alias
	}
	for _, k := range KnownTypes {
		if strings.EqualFold(sent, string(k)) {
			s.ev.Flags.Set(FlagTypeAlias)
			return k
		}
	}
	for alias, k := range typeAliases {
		if strings.EqualFold(sent, alias) {
			s.ev.Flags.Set(FlagTypeAlias)
			return k
		}
	}
	s.ev.Flags.Set(FlagUnknownType)
	return t
}

var detailKeys = []string{"actionType", "calendarSubscriptionId", "accountId", "accountName", "accountCode", "subscription", "subscriptionEvent"}

const (
	dkActionType = iota
	dkSubscriptionID
	dkAccountID
	dkAccountName
	dkAccountCode
	dkSubscription
	dkSubscriptionEvent
)

func (s *decodeState) details(v *fastjson.Value) {
	switch {
	case s.ev.Type == Test:
		s.ev.Details = &TestDetails{Raw: v.MarshalTo(nil)}
		return
	case s.ev.Flags.Has(FlagUnknownType):
		return
	}
	var c Common
	var sub, subEvent *fastjson.Value
	s.visit(v, "", detailKeys, s.d.paths.extra[""], func(i int, v *fastjson.Value) {
		switch i {
		case dkActionType:
			c.ActionType = s.str(v)
		case dkSubscriptionID:
			c.CalendarSubscriptionID = s.id(v)
		case dkAccountID:
			c.AccountID = s.id(v)
		case dkAccountName:
			c.AccountName = s.str(v)
		case dkAccountCode:
			c.AccountCode = s.str(v)
		case dkSubscription:
			sub = s.object(v)
		case dkSubscriptionEvent:
			subEvent = s.object(v)
		}
	})
	if c.ActionType == "" || c.AccountID == "" || c.AccountName == "" || c.AccountCode == "" {
		s.ev.Flags.Set(FlagMissingRequired)
	}

	var subObj *subscriptionObject
	if sub != nil {
		subObj = s.subscription(sub)
	}
	var evObj *SubscriptionEventDetails
	if subEvent != nil {
		evObj = s.subscriptionEvent(subEvent)
	}
	needSub := s.ev.Type != SubscriptionEventUpdated && s.ev.Type != SubscriptionEventDeleted
	needEvent := s.ev.Type != Subscribe && s.ev.Type != Unsubscribe && s.ev.Type != SubscriptionDetailsUpdated
	if (needSub && subObj == nil) || (needEvent && evObj == nil) {
		s.ev.Flags.Set(FlagShapeMismatch)
	}

	switch s.ev.Type {
	case Subscribe:
		s.ev.Details = &SubscribeDetails{Common: c, Subscription: subObj.details()}
	case SubscriptionDetailsUpdated:
		s.ev.Details = &SubscriptionDetailsUpdatedDetails{Common: c, Subscription: subObj.details()}
	case Unsubscribe:
		s.ev.Details = &UnsubscribeDetails{Common: c, Subscription: subObj.removedObject()}
	case SubscriptionEventAdded:
		s.ev.Details = &SubscriptionEventAddedDetails{Common: c, Subscription: subObj.basic(), SubscriptionEvent: evObj}
	case SubscriptionEventUpdated:
		s.ev.Details = &SubscriptionEventUpdatedDetails{Common: c, Subscription: subObj.basic(), SubscriptionEvent: evObj}
	case SubscriptionEventRemoved:
		s.ev.Details = &SubscriptionEventRemovedDetails{Common: c, Subscription: subObj.basic(), SubscriptionEvent: evObj.basic()}
		s.ev.calendarEventRead = evObj
	case SubscriptionEventDeleted:
		s.ev.Details = &SubscriptionEventDeletedDetails{Common: c, Subscription: subObj.basic(), SubscriptionEvent: evObj.basic()}
		s.ev.calendarEventRead = evObj
	}

	if inner := subObj.calendarSubscriptionID(); inner != "" && c.CalendarSubscriptionID != "" && inner != c.CalendarSubscriptionID {
		s.ev.Flags.Set(FlagIDConflict)
	}
	if s.ev.SubscriptionID() == "" {
		s.ev.Flags.Set(FlagNoSubscriptionRef)
	}
	s.contact(v)
	if evObj != nil {
		evObj.Start = s.eventTime(v, FieldEventStart)
		evObj.End = s.eventTime(v, FieldEventEnd)
		evObj.Timezone = s.pathString(v, FieldEventTimezone)
		s.placeInZone(evObj.Start, evObj.Timezone)
		s.placeInZone(evObj.End, evObj.Timezone)
	}
}

// subscriptionObject is the union of the three subscription shapes; the event type decides
// which typed view of it the Event gets.
type subscriptionObject struct {
	sub     SubscriptionDetails
	removed RemovedSubscription
}

func (o *subscriptionObject) details() *SubscriptionDetails {
	if o == nil {
		return nil
	}
	return &o.sub
}

func (o *subscriptionObject) basic() *SubscriptionBasic {
	if o == nil {
		return nil
	}
	return &o.sub.SubscriptionBasic
}

func (o *subscriptionObject) removedObject() *RemovedSubscription {
	if o == nil {
		return nil
	}
	o.removed.CalendarSubscriptionID = o.sub.CalendarSubscriptionID
	return &o.removed
}

func (o *subscriptionObject) calendarSubscriptionID() string {
	if o == nil {
		return ""
	}
	return o.sub.CalendarSubscriptionID
}

var subscriptionKeys = []string{
	"calendarSubscriptionId", "calendarId", "calendarTitle", "calendarCode", "subscriptionMethod", "calendarTags",
	"removedDateTimeUtc", "unsubscribeReasonText", "remoteIpAddress", "countryCode", "geoCountry", "userAgent",
}

func (s *decodeState) subscription(v *fastjson.Value) *subscriptionObject {
	o := &subscriptionObject{}
	s.visit(v, "subscription", subscriptionKeys, s.d.paths.extra["subscription"], func(i int, v *fastjson.Value) {
		switch i {
		case 0:
			o.sub.CalendarSubscriptionID = s.id(v)
		case 1:
			o.sub.CalendarID = s.id(v)
		case 2:
			o.sub.CalendarTitle = s.str(v)
		case 3:
			o.sub.CalendarCode = s.str(v)
		case 4:
			o.sub.SubscriptionMethod = canonicalMethod(s.str(v))
		case 5:
			o.sub.CalendarTags = s.tags(v)
		case 6:
			o.removed.RemovedDateTimeUtc = s.str(v)
			if o.removed.RemovedDateTimeUtc != "" {
				t, _, ok := ParseTime(o.removed.RemovedDateTimeUtc)
				if ok {
					t = t.UTC() // zone-less means UTC here: the key ends in Utc
					o.removed.RemovedAt = &t
				} else {
					s.ev.Flags.Set(FlagInvalidTime)
				}
			}
		case 7:
			o.removed.UnsubscribeReasonText = strings.TrimSpace(s.str(v)) // "   " says no more than ""
		case 8:
			o.removed.RemoteIPAddress = s.str(v)
		case 9:
			o.removed.CountryCode = s.str(v)
		case 10:
			o.removed.GeoCountry = s.str(v)
		case 11:
			o.removed.UserAgent = s.str(v)
		}
	})
	return o
}

func canonicalMethod(m string) string {
	for _, known := range []string{"Webcal", "Google", "Microsoft"} {
		if strings.EqualFold(m, known) {
			return known
		}
	}
	return m
}

func (s *decodeState) tags(v *fastjson.Value) []CalendarTag {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	if v.Type() != fastjson.TypeArray {
		s.ev.Flags.Set(FlagTypeDrift)
		return nil
	}
	items, _ := v.Array()
	out := make([]CalendarTag, 0, len(items))
	for _, item := range items {
		var t CalendarTag
		switch item.Type() {
		case fastjson.TypeObject:
			// Other Rokt APIs shape tags as id/name, id/text or internalId/externalId (spec §8.8).
			t.TagID = s.id(firstOf(item, "tagId", "id", "internalId"))
			t.Name = s.str(firstOf(item, "name", "text", "tagName", "displayName"))
		case fastjson.TypeString, fastjson.TypeNumber:
			s.ev.Flags.Set(FlagTypeDrift)
			t.TagID = s.id(item)
		case fastjson.TypeNull:
			s.ev.Flags.Set(FlagNullValue)
			continue
		default:
			s.ev.Flags.Set(FlagTypeDrift)
			continue
		}
		if t.TagID != "" || t.Name != "" {
			out = append(out, t)
		}
	}
	return out
}

// basic is the Subscription Event Basic part of what was read; nil when nothing was.
func (e *SubscriptionEventDetails) basic() *SubscriptionEventBasic {
	if e == nil {
		return nil
	}
	return &e.SubscriptionEventBasic
}

var subscriptionEventKeys = []string{"eventId", "title", "location", "description"}

func (s *decodeState) subscriptionEvent(v *fastjson.Value) *SubscriptionEventDetails {
	e := &SubscriptionEventDetails{}
	s.visit(v, "subscriptionEvent", subscriptionEventKeys, s.d.paths.extra["subscriptionevent"], func(i int, v *fastjson.Value) {
		switch i {
		case 0:
			e.CalendarEventID = s.str(v) // merchant-defined, not a GUID: keep its case
		case 1:
			e.Title = s.str(v)
		case 2:
			e.Location = s.str(v)
		case 3:
			e.Description = s.str(v)
		}
	})
	return e
}

func (s *decodeState) contact(details *fastjson.Value) {
	c := &s.ev.Contact
	if raw := s.pathString(details, FieldEmail); raw != "" {
		c.EmailOriginal = raw
		var ok bool
		c.Email, c.EmailKey, ok = NormalizeEmail(raw)
		if !ok {
			s.ev.Flags.Set(FlagInvalidEmail)
		}
	}
	c.FirstName = strings.TrimSpace(s.pathString(details, FieldFirstName))
	c.LastName = strings.TrimSpace(s.pathString(details, FieldLastName))
	c.Phone = strings.TrimSpace(s.pathString(details, FieldPhone))
	c.Postcode = NormalizePostcode(s.pathString(details, FieldPostcode))
	c.CountryCode = strings.ToUpper(strings.TrimSpace(s.pathString(details, FieldCountryCode)))
	if v, _ := s.pathValue(details, FieldMarketingConsent); v != nil {
		c.MarketingConsent = s.boolean(v)
	}
}

// pathValue returns the first candidate of field that holds a value (not null, not an empty
// string), and its key.
func (s *decodeState) pathValue(details *fastjson.Value, field string) (*fastjson.Value, string) {
	for _, segs := range s.d.paths.byField[field] {
		v := details
		for _, seg := range segs {
			if v.Type() != fastjson.TypeObject {
				v = nil
				break
			}
			if v = getFold(v, seg); v == nil {
				break
			}
		}
		if v == nil || v.Type() == fastjson.TypeNull {
			continue
		}
		if v.Type() == fastjson.TypeString {
			if b, _ := v.StringBytes(); len(bytes.TrimSpace(b)) == 0 {
				continue // an empty string is no better than a missing key
			}
		}
		return v, segs[len(segs)-1]
	}
	return nil, ""
}

func (s *decodeState) pathString(details *fastjson.Value, field string) string {
	v, _ := s.pathValue(details, field)
	if v == nil {
		return ""
	}
	return s.str(v)
}

func (s *decodeState) boolean(v *fastjson.Value) *bool {
	t, f := true, false
	switch v.Type() {
	case fastjson.TypeTrue:
		return &t
	case fastjson.TypeFalse:
		return &f
	}
	s.ev.Flags.Set(FlagTypeDrift)
	switch strings.ToLower(strings.TrimSpace(s.str(v))) {
	case "true", "yes", "y", "1", "on":
		return &t
	case "false", "no", "n", "0", "off":
		return &f
	}
	return nil
}

func (s *decodeState) eventTime(details *fastjson.Value, field string) *EventTime {
	v, key := s.pathValue(details, field)
	if v == nil {
		return nil
	}
	raw := s.str(v)
	t, zoned, ok := ParseTime(raw)
	if !ok {
		s.ev.Flags.Set(FlagInvalidTime)
		return nil
	}
	et := &EventTime{}
	switch {
	case zoned:
		utc := t.UTC()
		et.UTC = &utc
		// The wall clock as written, before conversion to UTC, until the event's zone says
		// what its clock showed (placeInZone).
		et.Wall = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
		et.offsetWall = true
	case hasSuffixFold(key, "Utc"):
		et.UTC = &t
	default:
		et.Wall = t
	}
	return et
}

// placeInZone fills the half of t that the event's IANA time zone makes knowable.
func (s *decodeState) placeInZone(t *EventTime, zone string) {
	if t == nil || zone == "" {
		return
	}
	loc := s.d.location(zone)
	if loc == nil {
		return
	}
	switch {
	case t.UTC == nil && !t.Wall.IsZero():
		w := t.Wall
		utc := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc).UTC()
		t.UTC = &utc
	case t.UTC != nil && (t.Wall.IsZero() || t.offsetWall):
		l := t.UTC.In(loc)
		t.Wall = time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
	}
}

func (d *Decoder) location(name string) *time.Location {
	if v, ok := d.zones.Load(name); ok {
		loc, _ := v.(*time.Location)
		return loc
	}
	var loc *time.Location
	if strings.Contains(name, "/") || name == "UTC" {
		if l, err := time.LoadLocation(name); err == nil {
			loc = l
		}
	}
	d.zones.Store(name, loc)
	return loc
}

// visit calls fn for each member of object v whose key is one of known (exactly, else
// case-insensitively, which flags key_case). Keys that are neither known nor in extra (which
// holds each configured key as written and lower-cased) are recorded as unknown.
func (s *decodeState) visit(v *fastjson.Value, path string, known []string, extra map[string]bool, fn func(i int, v *fastjson.Value)) {
	o, _ := v.Object()
	o.Visit(func(k []byte, v *fastjson.Value) {
		for i, want := range known {
			if string(k) == want {
				fn(i, v)
				return
			}
		}
		for i, want := range known {
			if foldEqual(k, want) {
				s.ev.Flags.Set(FlagKeyCase)
				fn(i, v)
				return
			}
		}
		if extra[string(k)] {
			return
		}
		s.ev.Flags.Set(FlagUnknownKey)
		name := string(k)
		if path != "" {
			name = path + "." + name
		}
		s.ev.UnknownKeys = append(s.ev.UnknownKeys, name)
	})
}

// object returns v when it is an object; null and other types are flagged and give nil.
func (s *decodeState) object(v *fastjson.Value) *fastjson.Value {
	switch v.Type() {
	case fastjson.TypeObject:
		return v
	case fastjson.TypeNull:
		s.ev.Flags.Set(FlagNullValue)
	default:
		s.ev.Flags.Set(FlagShapeMismatch)
	}
	return nil
}

// str reads a documented string member: null gives "" (flagged null_value), numbers and
// booleans their JSON text (flagged type_drift), objects and arrays "" (type_drift).
func (s *decodeState) str(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeString:
		return s.text(v)
	case fastjson.TypeNull:
		s.ev.Flags.Set(FlagNullValue)
		return ""
	case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
		s.ev.Flags.Set(FlagTypeDrift)
		return string(v.MarshalTo(nil))
	default:
		s.ev.Flags.Set(FlagTypeDrift)
		return ""
	}
}

// id reads a GUID-like member: trimmed and lower-cased.
func (s *decodeState) id(v *fastjson.Value) string {
	return lowerASCII(strings.TrimSpace(s.str(v)))
}

// text copies a string value out of the parser's buffer, repairing invalid UTF-8.
func (s *decodeState) text(v *fastjson.Value) string {
	b, _ := v.StringBytes()
	if !utf8.Valid(b) {
		s.ev.Flags.Set(FlagInvalidUTF8)
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

// getFold returns member key of object v, matched exactly, else case-insensitively.
func getFold(v *fastjson.Value, key string) *fastjson.Value {
	if m := v.Get(key); m != nil {
		return m
	}
	var found *fastjson.Value
	o, _ := v.Object()
	o.Visit(func(k []byte, m *fastjson.Value) {
		if found == nil && foldEqual(k, key) {
			found = m
		}
	})
	return found
}

// firstOf returns the first of keys that object v holds with a non-null value.
func firstOf(v *fastjson.Value, keys ...string) *fastjson.Value {
	for _, k := range keys {
		if m := getFold(v, k); m != nil && m.Type() != fastjson.TypeNull {
			return m
		}
	}
	return nil
}

// foldEqual reports whether k equals s under ASCII case folding, without allocating.
func foldEqual(k []byte, s string) bool {
	if len(k) != len(s) {
		return false
	}
	for i := 0; i < len(k); i++ {
		a, b := k[i], s[i]
		if a == b {
			continue
		}
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && foldEqual([]byte(s[len(s)-len(suffix):]), suffix)
}

// lowerASCII lower-cases s, allocating only when it has upper-case letters.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// syntaxProblem says where and why b is not JSON, by encoding/json's reading (this runs on
// refused bodies only). It names at most one character of the body: the detail reaches logs,
// and a body's text may hold an email address or a token.
func syntaxProblem(b []byte) string {
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(b, &v); errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	return "it does not parse as one JSON value"
}
