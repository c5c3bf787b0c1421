package schemas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func readBody(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/bodies", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeFile(t *testing.T, name string) *Event {
	t.Helper()
	ev, err := mustDecoder(t, nil).Decode(readBody(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

func TestFixturesDecodeCleanly(t *testing.T) {
	tests := []struct {
		file    string
		typ     EventType
		details any
		subID   string
	}{
		{"fixture_subscribe.json", Subscribe, &SubscribeDetails{}, "5e0b7c2a-91f4-4d6e-8b3a-2c7f1e9d0a48"},
		{"fixture_unsubscribe.json", Unsubscribe, &UnsubscribeDetails{}, "5e0b7c2a-91f4-4d6e-8b3a-2c7f1e9d0a48"},
		{"fixture_subscription_details_updated.json", SubscriptionDetailsUpdated, &SubscriptionDetailsUpdatedDetails{}, "0d9c8b7a-6e5f-4d3c-a2b1-f0e9d8c7b6a5"},
		{"fixture_subscription_event_added.json", SubscriptionEventAdded, &SubscriptionEventAddedDetails{}, "5e0b7c2a-91f4-4d6e-8b3a-2c7f1e9d0a48"},
		{"fixture_subscription_event_updated.json", SubscriptionEventUpdated, &SubscriptionEventUpdatedDetails{}, "f3e2d1c0-b9a8-4776-9655-443322110fed"},
		{"fixture_subscription_event_removed.json", SubscriptionEventRemoved, &SubscriptionEventRemovedDetails{}, "0d9c8b7a-6e5f-4d3c-a2b1-f0e9d8c7b6a5"},
		{"fixture_subscription_event_deleted.json", SubscriptionEventDeleted, &SubscriptionEventDeletedDetails{}, "f3e2d1c0-b9a8-4776-9655-443322110fed"},
		{"fixture_test.json", Test, &TestDetails{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev := decodeFile(t, tt.file)
			if ev.Type != tt.typ || ev.SentType != string(tt.typ) {
				t.Errorf("type = %q (sent %q), want %q", ev.Type, ev.SentType, tt.typ)
			}
			if got, want := typeName(ev.Details), typeName(tt.details); got != want {
				t.Errorf("details are %s, want %s", got, want)
			}
			if ev.Flags != 0 {
				t.Errorf("a documented fixture got flags %v", ev.Flags.Names())
			}
			if got := ev.SubscriptionID(); got != tt.subID {
				t.Errorf("subscription id = %q, want %q", got, tt.subID)
			}
		})
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func TestTypedDetails(t *testing.T) {
	ev := decodeFile(t, "fixture_subscribe.json")
	d := ev.Details.(*SubscribeDetails)
	if d.ActionType != "SubscriptionViaOneClickLink" || d.AccountCode != "southern-cross-footy" {
		t.Errorf("common members: %+v", d.Common)
	}
	if d.Subscription == nil || len(d.Subscription.CalendarTags) != 2 || d.Subscription.CalendarTags[1].TagID != "7c4b2a19-8d3e-4f60-b1a2-c3d4e5f60718" {
		t.Fatalf("subscription: %+v", d.Subscription)
	}

	un := decodeFile(t, "fixture_unsubscribe.json").Details.(*UnsubscribeDetails)
	want := time.Date(2025, 9, 29, 7, 42, 11, 318204000, time.UTC)
	if un.Subscription.RemovedAt == nil || !un.Subscription.RemovedAt.Equal(want) || un.Subscription.RemovedAt.Location() != time.UTC {
		t.Errorf("removedDateTimeUtc parsed as %v, want %v (UTC)", un.Subscription.RemovedAt, want)
	}
	if un.Subscription.RemoteIPAddress != "203.0.113.45" || un.Subscription.GeoCountry != "Australia" {
		t.Errorf("removed object: %+v", un.Subscription)
	}

	del := decodeFile(t, "fixture_subscription_event_deleted.json").Details.(*SubscriptionEventDeletedDetails)
	if del.SubscriptionEvent == nil || del.SubscriptionEvent.CalendarEventID != "481207" {
		t.Errorf("Subscription Event Basic: %+v", del.SubscriptionEvent)
	}
	removed := decodeFile(t, "fixture_subscription_event_removed.json").Details.(*SubscriptionEventRemovedDetails)
	if removed.SubscriptionEvent == nil || removed.SubscriptionEvent.CalendarEventID != "tvrc-2025-h03" {
		t.Errorf("Subscription Event Basic of a removal: %+v", removed.SubscriptionEvent)
	}
	// The Basic shape has only the id; a title a sender adds anyway still reaches the row.
	extra := []byte(`{"eventId":"E1","eventType":"SubscriptionEventDeleted","eventDetails":{"subscriptionEvent":{"eventId":"77","title":"Grand final"}}}`)
	ev, err := mustDecoder(t, nil).Decode(extra)
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.Details.(*SubscriptionEventDeletedDetails).SubscriptionEvent; got == nil || got.CalendarEventID != "77" {
		t.Errorf("Subscription Event Basic of a deletion: %+v", got)
	}
	if row := ev.Row("rokt", time.Now()); row.CalendarEventID != "77" || row.EventTitle != "Grand final" {
		t.Errorf("row of a deletion with a title: id %q title %q", row.CalendarEventID, row.EventTitle)
	}
	// An event built by hand, not by the decoder, gives its Basic object's id to the row.
	byHand := &Event{ID: "h1", Type: SubscriptionEventRemoved, Details: &SubscriptionEventRemovedDetails{SubscriptionEvent: &SubscriptionEventBasic{CalendarEventID: "88"}}}
	if row := byHand.Row("rokt", time.Now()); row.CalendarEventID != "88" {
		t.Errorf("row of a removal built by hand: calendar event id %q", row.CalendarEventID)
	}
	added := decodeFile(t, "fixture_subscription_event_added.json").Details.(*SubscriptionEventAddedDetails)
	if added.Subscription.CalendarCode != "scfl-2025-fixtures" || !strings.HasPrefix(added.SubscriptionEvent.Title, "Richmond Rovers") {
		t.Errorf("EventAdded: %+v %+v", added.Subscription, added.SubscriptionEvent)
	}
	test := decodeFile(t, "test_with_payload.json").Details.(*TestDetails)
	if !strings.Contains(string(test.Raw), `"This is a test"`) {
		t.Errorf("Test details kept raw: %s", test.Raw)
	}
}

func TestQuirks(t *testing.T) {
	tests := []struct {
		file     string
		flags    []Flag
		notFlags []Flag
		check    func(t *testing.T, ev *Event, r Row)
	}{
		{file: "bom_subscribe.json", flags: []Flag{FlagBOM}, check: func(t *testing.T, ev *Event, r Row) {
			if ev.Body[0] != 0xEF {
				t.Error("the kept body lost its BOM")
			}
		}},
		{file: "vendor_basic_trailing_comma.json", flags: []Flag{FlagLenientJSON}, notFlags: []Flag{FlagNoSubscriptionRef}},
		{file: "comma_inside_string.json", flags: []Flag{FlagLenientJSON}, check: func(t *testing.T, ev *Event, r Row) {
			if r.EventTitle != "Doors, }then" || r.AccountName != "Lone Star, Live ]" || r.EventDescription != `a "quoted," ] word` {
				t.Errorf("commas inside strings were touched: %q %q %q", r.EventTitle, r.AccountName, r.EventDescription)
			}
		}},
		{file: "vendor_details_update_alias.json", flags: []Flag{FlagTypeAlias}, check: func(t *testing.T, ev *Event, r Row) {
			if ev.Type != SubscriptionDetailsUpdated || ev.SentType != "SubscriptionDetailsUpdate" {
				t.Errorf("type %q sent %q", ev.Type, ev.SentType)
			}
			if _, ok := ev.Details.(*SubscriptionDetailsUpdatedDetails); !ok {
				t.Errorf("details %T", ev.Details)
			}
			if r.SubscriptionMethod != "Webcal" {
				t.Errorf("WebCal not canonicalised: %q", r.SubscriptionMethod)
			}
		}},
		{file: "key_case.json", flags: []Flag{FlagTypeAlias, FlagKeyCase}, check: func(t *testing.T, ev *Event, r Row) {
			if ev.Type != Test || ev.ID != "a0a0a0a0-b1b1-4c2c-8d3d-e4e4e4e4e4e4" {
				t.Errorf("type %q id %q", ev.Type, ev.ID)
			}
		}},
		{file: "unknown_type.json", flags: []Flag{FlagUnknownType}, check: func(t *testing.T, ev *Event, r Row) {
			if ev.Type != "SubscriptionPaused" || ev.Details != nil || r.AccountID != "" {
				t.Errorf("an unknown type must decode as the envelope only: %q %T %q", ev.Type, ev.Details, r.AccountID)
			}
		}},
		{file: "numeric_ids.json", flags: []Flag{FlagTypeDrift}, check: func(t *testing.T, ev *Event, r Row) {
			if ev.ID != "987654321" || r.SubscriptionID != "42" || r.CalendarID != "7" || r.CalendarEventID != "391756" {
				t.Errorf("numeric ids: %q %q %q %q", ev.ID, r.SubscriptionID, r.CalendarID, r.CalendarEventID)
			}
		}},
		{file: "upper_case_guids.json", notFlags: []Flag{FlagTypeDrift}, check: func(t *testing.T, ev *Event, r Row) {
			for name, v := range map[string]string{"event_id": r.EventID, "account_id": r.AccountID, "subscription_id": r.SubscriptionID, "tag": r.TagIDs[0]} {
				if v != strings.ToLower(v) || v == "" {
					t.Errorf("%s not lower-cased: %q", name, v)
				}
			}
			if r.SubscriptionMethod != "Google" {
				t.Errorf("GOOGLE not canonicalised: %q", r.SubscriptionMethod)
			}
		}},
		{file: "nulls.json", flags: []Flag{FlagNullValue, FlagMissingRequired}, check: func(t *testing.T, ev *Event, r Row) {
			if r.Email != "fan@example.org" {
				t.Errorf("a null first candidate must fall through to the next: %q", r.Email)
			}
		}},
		{file: "vendor_deleted_typed_as_removed.json", flags: []Flag{FlagShapeMismatch, FlagNoSubscriptionRef, FlagLenientJSON}, check: func(t *testing.T, ev *Event, r Row) {
			if ev.Type != SubscriptionEventRemoved {
				t.Errorf("eventType must be trusted as sent: %q", ev.Type)
			}
		}},
		{file: "vendor_unsubscribe_no_subscription_id.json", flags: []Flag{FlagNoSubscriptionRef}, check: func(t *testing.T, ev *Event, r Row) {
			if r.SubscriptionID != "" {
				t.Errorf("an Unsubscribe without an id must not be linked: %q", r.SubscriptionID)
			}
			if want := time.Date(2020, 5, 6, 1, 18, 49, 755190000, time.UTC); !r.OccurredAt.Equal(want) {
				t.Errorf("occurred_at = %v, want removedDateTimeUtc %v", r.OccurredAt, want)
			}
		}},
		{file: "unknown_keys.json", flags: []Flag{FlagUnknownKey}, check: func(t *testing.T, ev *Event, r Row) {
			want := []string{"deliveryAttempt", "merchantRef", "subscription.deviceName", "subscription.optIn2"}
			if !slices.Equal(ev.UnknownKeys, want) {
				t.Errorf("unknown keys %v, want %v (configured contact keys are not unknown)", ev.UnknownKeys, want)
			}
			if r.Email != "Jo.Bloggs+footy@example.com" || r.EmailKey != "jo.bloggs+footy@example.com" || r.EmailOriginal != "Jo.Bloggs+footy@Example.COM" {
				t.Errorf("email %q key %q original %q", r.Email, r.EmailKey, r.EmailOriginal)
			}
			if !slices.Equal(r.TagNames, []string{"Home games"}) {
				t.Errorf("tag names %v", r.TagNames)
			}
		}},
		{file: "contact_fields.json", flags: []Flag{FlagTypeDrift}, check: func(t *testing.T, ev *Event, r Row) {
			if r.Email != "Ann.Smith+Rugby@mail.example.co.uk" {
				t.Errorf("an empty first candidate must fall through: email %q", r.Email)
			}
			if r.Postcode != "SW1A 1AA" || r.CountryCode != "GB" || r.FirstName != "Ann" || r.Phone != "+44 7700 900123" {
				t.Errorf("contact %q %q %q %q", r.Postcode, r.CountryCode, r.FirstName, r.Phone)
			}
			if r.MarketingConsent == nil || !*r.MarketingConsent {
				t.Errorf("consent %v", r.MarketingConsent)
			}
			if !slices.Equal(r.TagIDs, []string{"9a8b7c6d-5e4f-4321-9fed-cba987654321", "aaaa0000-1111-4222-8333-444455556666"}) {
				t.Errorf("tags in both shapes: %v", r.TagIDs)
			}
		}},
		{file: "event_times_wall_clock.json", notFlags: []Flag{FlagInvalidTime}, check: func(t *testing.T, ev *Event, r Row) {
			if r.EventStart == nil || !r.EventStart.Equal(time.Date(2025, 5, 9, 19, 10, 0, 0, time.UTC)) {
				t.Errorf("wall-clock start %v", r.EventStart)
			}
			// Melbourne is UTC+10 in May.
			if r.EventStartUTC == nil || !r.EventStartUTC.Equal(time.Date(2025, 5, 9, 9, 10, 0, 0, time.UTC)) {
				t.Errorf("start placed in Australia/Melbourne: %v", r.EventStartUTC)
			}
		}},
		{file: "event_times_utc_and_offset.json", check: func(t *testing.T, ev *Event, r Row) {
			if r.EventStartUTC == nil || !r.EventStartUTC.Equal(time.Date(2025, 10, 4, 1, 30, 0, 0, time.UTC)) || r.EventStart != nil {
				t.Errorf("a zone-less value under a Utc key is UTC: %v (wall %v)", r.EventStartUTC, r.EventStart)
			}
			if r.EventEndUTC == nil || !r.EventEndUTC.Equal(time.Date(2025, 10, 5, 4, 0, 0, 0, time.UTC)) {
				t.Errorf("offset end: %v", r.EventEndUTC)
			}
			if r.EventEnd == nil || !r.EventEnd.Equal(time.Date(2025, 10, 4, 23, 0, 0, 0, time.UTC)) {
				t.Errorf("offset end's wall clock as written: %v", r.EventEnd)
			}
		}},
		{file: "removed_time_variants.json", check: func(t *testing.T, ev *Event, r Row) {
			if r.RemovedAt == nil || !r.RemovedAt.Equal(time.Date(2025, 9, 29, 7, 42, 11, 0, time.UTC)) {
				t.Errorf("T separator, no fraction, Z: %v", r.RemovedAt)
			}
		}},
		{file: "invalid_time.json", flags: []Flag{FlagInvalidTime}, check: func(t *testing.T, ev *Event, r Row) {
			if r.RemovedAt != nil || !r.OccurredAt.Equal(r.ReceivedAt) {
				t.Errorf("an unparseable time is null and occurred_at falls back: %v %v", r.RemovedAt, r.OccurredAt)
			}
		}},
		{file: "invalid_email.json", flags: []Flag{FlagInvalidEmail}},
		{file: "invalid_utf8.json", flags: []Flag{FlagInvalidUTF8}, check: func(t *testing.T, ev *Event, r Row) {
			if r.EventTitle != "Caf\uFFFD night \uFFFD" || r.EventLocation != "München" {
				t.Errorf("title %q location %q", r.EventTitle, r.EventLocation)
			}
		}},
		{file: "id_conflict.json", flags: []Flag{FlagIDConflict}, check: func(t *testing.T, ev *Event, r Row) {
			if r.SubscriptionID != "11111111-1111-4111-8111-111111111111" {
				t.Errorf("eventDetails' id wins: %q", r.SubscriptionID)
			}
		}},
		{file: "shape_mismatch_subscription_string.json", flags: []Flag{FlagShapeMismatch}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev := decodeFile(t, tt.file)
			for _, f := range tt.flags {
				if !ev.Flags.Has(f) {
					t.Errorf("flag %s missing; got %v", f, ev.Flags.Names())
				}
			}
			for _, f := range tt.notFlags {
				if ev.Flags.Has(f) {
					t.Errorf("flag %s set; got %v", f, ev.Flags.Names())
				}
			}
			r := ev.Row("rokt", fixedReceivedAt)
			if !slices.Equal(r.Flags, ev.Flags.Names()) {
				t.Errorf("row flags %v != event flags %v", r.Flags, ev.Flags.Names())
			}
			if tt.check != nil {
				tt.check(t, ev, r)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		body string
		rule Rule
	}{
		{"", RuleEmptyBody},
		{" \n\t", RuleEmptyBody},
		{"\xEF\xBB\xBF", RuleEmptyBody},
		{"hello", RuleNotJSON},
		{"<xml/>", RuleNotJSON},
		{`{"eventId": "x", "eventType": "Test", "eventDetails": {}} trailing`, RuleNotJSON},
		{`{"eventId": "x", "eventType": "Test", "eventDetails": {`, RuleTruncated},
		{`{"eventId": "x", "eventType": "Te`, RuleTruncated},
		{"\x8f\x03{\"\xff[\x00", RuleNotJSON}, // binary with an open bracket in it
		{`subscriberEmail=jane@example.com&calendar={"a"`, RuleNotJSON},
		{`[]`, RuleNotEnvelope},
		{`"a string"`, RuleNotEnvelope},
		{`42`, RuleNotEnvelope},
		{`{}`, RuleNotEnvelope},
		{`{"event": "Subscribe"}`, RuleNotEnvelope},
		{`{"eventType": "Test", "eventDetails": {}}`, RuleMissingEventID},
		{`{"eventId": null, "eventType": "Test", "eventDetails": {}}`, RuleMissingEventID},
		{`{"eventId": "", "eventType": "Test", "eventDetails": {}}`, RuleMissingEventID},
		{`{"eventId": true, "eventType": "Test", "eventDetails": {}}`, RuleInvalidEventID},
		{`{"eventId": ["x"], "eventType": "Test", "eventDetails": {}}`, RuleInvalidEventID},
		{`{"eventId": "x", "eventDetails": {}}`, RuleMissingEventType},
		{`{"eventId": "x", "eventType": "", "eventDetails": {}}`, RuleMissingEventType},
		{`{"eventId": "x", "eventType": null, "eventDetails": {}}`, RuleMissingEventType},
		{`{"eventId": "x", "eventType": true, "eventDetails": {}}`, RuleInvalidEventType},
		{`{"eventId": "x", "eventType": {"name": "Subscribe"}, "eventDetails": {}}`, RuleInvalidEventType},
		{`{"eventId": "x", "eventType": "Test"}`, RuleMissingEventDetails},
		{`{"eventId": "x", "eventType": "Test", "eventDetails": null}`, RuleMissingEventDetails},
		{`{"eventId": "x", "eventType": "Test", "eventDetails": []}`, RuleInvalidEventDetails},
		{`{"eventId": "x", "eventType": "Test", "eventDetails": "{}"}`, RuleInvalidEventDetails},
	}
	dec := mustDecoder(t, nil)
	for _, tt := range tests {
		t.Run(string(tt.rule)+"/"+tt.body, func(t *testing.T) {
			ev, err := dec.Decode([]byte(tt.body))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, %v; want a *DecodeError with rule %s", ev, err, tt.rule)
			}
			if de.Rule != tt.rule {
				t.Errorf("rule %s (%s), want %s", de.Rule, de.Detail, tt.rule)
			}
			if de.Detail == "" || !strings.HasPrefix(err.Error(), string(tt.rule)+": ") {
				t.Errorf("error %q should name its rule and say why", err)
			}
		})
	}
}

// A refusal's detail reaches the logs and the answer: it says where the body stops being JSON
// without quoting the body, which may hold an email address or a token.
func TestNotJSONDetailQuotesNoBodyText(t *testing.T) {
	dec := mustDecoder(t, nil)
	for _, body := range []string{
		`subscriberEmail=jane.doe@example.com&token=abc`,
		`{"eventId": "x", "eventType": "Test", "eventDetails": {}} jane.doe@example.com`,
		`{"subscriberEmail": "jane.doe@example.com" "eventType": "Test"}`,
	} {
		_, err := dec.Decode([]byte(body))
		var de *DecodeError
		if !errors.As(err, &de) || de.Rule != RuleNotJSON {
			t.Fatalf("%s: %v, want not_json", body, err)
		}
		if strings.Contains(de.Detail, "jane") || strings.Contains(de.Detail, "abc") || !strings.Contains(de.Detail, "at byte ") {
			t.Errorf("%s: detail %q should give a position and no body text", body, de.Detail)
		}
	}
}

func TestAcceptsEmptyDetailsAndTolerableBodies(t *testing.T) {
	dec := mustDecoder(t, nil)
	for _, body := range []string{
		`{"eventId": "X", "eventType": "Test", "eventDetails": {}}`,
		`{"eventId": 12, "eventType": "Test", "eventDetails": {}}`,
		`{"eventId": "x", "eventType": "Test", "eventDetails": {},}`,
		`  {"eventId": "x", "eventType": "NewThing", "eventDetails": {"a": [1,2,]}}  `,
	} {
		if _, err := dec.Decode([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	// An eventType sent as a number (an enum a .NET sender forgot to name) is an unknown type.
	ev, err := dec.Decode([]byte(`{"eventId": "x", "eventType": 3, "eventDetails": {}}`))
	if err != nil {
		t.Fatalf("numeric eventType: %v", err)
	}
	if ev.SentType != "3" || ev.Type.Known() || !ev.Flags.Has(FlagUnknownType) || !ev.Flags.Has(FlagTypeDrift) {
		t.Errorf("numeric eventType: sent %q type %q flags %v", ev.SentType, ev.Type, ev.Flags.Names())
	}
}

func TestCustomFieldPaths(t *testing.T) {
	dec := mustDecoder(t, FieldPaths{
		FieldEmail:    {"subscription.contact.mail"},
		FieldPostcode: {"postalArea"},
	})
	body := `{"eventId":"e","eventType":"Subscribe","eventDetails":{"actionType":"a","calendarSubscriptionId":"S","accountId":"A","accountName":"n","accountCode":"c","postalArea":"2000",
		"subscription":{"calendarSubscriptionId":"S","calendarId":"C","calendarTitle":"t","calendarCode":"c","subscriberEmail":"ignored@example.com","contact":{"MAIL":"Kim@Example.com"}}}}`
	ev, err := dec.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Contact.Email != "Kim@example.com" || ev.Contact.Postcode != "2000" {
		t.Errorf("custom paths: %+v", ev.Contact)
	}
	// subscriberEmail is no longer a configured key, so it counts as unknown; contact and
	// postalArea are named by paths and do not.
	if !slices.Equal(ev.UnknownKeys, []string{"subscription.subscriberEmail"}) {
		t.Errorf("unknown keys %v", ev.UnknownKeys)
	}
	// Fields the configuration does not name keep their defaults.
	if _, err := NewDecoder(FieldPaths{"favourite_colour": {"x"}}); err == nil || !strings.Contains(err.Error(), "favourite_colour") {
		t.Errorf("unknown field accepted: %v", err)
	}
	if _, err := NewDecoder(FieldPaths{FieldEmail: {"subscription..email"}}); err == nil {
		t.Error("a path with an empty segment was accepted")
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, email, key string
		ok             bool
	}{
		{" Jo.Bloggs+News@Example.COM ", "Jo.Bloggs+News@example.com", "jo.bloggs+news@example.com", true},
		{"mailto:a@b.co", "a@b.co", "a@b.co", true},
		{"Mailto:Bob@Example.com", "Bob@example.com", "bob@example.com", true},
		{"no-at-sign", "no-at-sign", "no-at-sign", false},
		{"a@nodot", "a@nodot", "a@nodot", false},
		{"two words@example.com", "two words@example.com", "two words@example.com", false},
	}
	for _, tt := range tests {
		email, key, ok := NormalizeEmail(tt.in)
		if email != tt.email || key != tt.key || ok != tt.ok {
			t.Errorf("NormalizeEmail(%q) = %q %q %v, want %q %q %v", tt.in, email, key, ok, tt.email, tt.key, tt.ok)
		}
	}
	if got := NormalizePostcode("  2000 "); got != "2000" {
		t.Errorf("postcode %q", got)
	}
	for in, want := range map[string]string{"b334tc": "B33 4TC", "SW1A1AA": "SW1A 1AA", "M17CD": "M1 7CD", "K1A0B1": "K1A0B1", "90210": "90210", "1012AB": "1012AB", "D02X285": "D02X285"} {
		if got := NormalizePostcode(in); got != want {
			t.Errorf("NormalizePostcode(%q) = %q, want %q", in, got, want)
		}
	}
	if got := NormalizePostcode("ec1a\t1bb"); got != "EC1A 1BB" {
		t.Errorf("postcode %q", got)
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in    string
		want  time.Time
		zoned bool
	}{
		{"2020-05-06 01:18:49.755190", time.Date(2020, 5, 6, 1, 18, 49, 755190000, time.UTC), false},
		{"2020-05-06 01:18:49", time.Date(2020, 5, 6, 1, 18, 49, 0, time.UTC), false},
		{"2020-05-06T01:18:49.1234567", time.Date(2020, 5, 6, 1, 18, 49, 123456700, time.UTC), false},
		{"2025-10-04T10:00:00.000Z", time.Date(2025, 10, 4, 10, 0, 0, 0, time.UTC), true},
		{"2025-10-04 10:00:00+02:00", time.Date(2025, 10, 4, 8, 0, 0, 0, time.UTC), true},
		{"2025-10-04T10:00:00-0500", time.Date(2025, 10, 4, 15, 0, 0, 0, time.UTC), true},
		{"2025-10-04", time.Date(2025, 10, 4, 0, 0, 0, 0, time.UTC), false},
	}
	for _, tt := range tests {
		got, zoned, ok := ParseTime(tt.in)
		if !ok || !got.Equal(tt.want) || zoned != tt.zoned {
			t.Errorf("ParseTime(%q) = %v %v %v, want %v zoned=%v", tt.in, got, zoned, ok, tt.want, tt.zoned)
		}
	}
	for _, bad := range []string{"", "yesterday", "2025-13-01 00:00:00", "2025-10-04 10:00:00 PST8"} {
		if _, _, ok := ParseTime(bad); ok {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestFlagNamesRoundTrip(t *testing.T) {
	var all Flags
	for f := Flag(1); f < flagEnd; f <<= 1 {
		all.Set(f)
	}
	names := all.Names()
	if len(names) != len(flagNames) || ParseFlags(names) != all {
		t.Errorf("names %v do not round-trip", names)
	}
	if !slices.Equal(FlagNames(), names) {
		t.Errorf("FlagNames %v", FlagNames())
	}
}

// An unsubscribe reason of white space is no reason: it becomes empty, as "" does, so a
// breakdown by reason has no blank bucket beside the empty one.
func TestUnsubscribeReasonIsTrimmed(t *testing.T) {
	dec := mustDecoder(t, nil)
	for body, want := range map[string]string{
		`{"eventId":"u1","eventType":"Unsubscribe","eventDetails":{"calendarSubscriptionId":"s1","subscription":{"unsubscribeReasonText":"   "}}}`:                "",
		`{"eventId":"u2","eventType":"Unsubscribe","eventDetails":{"calendarSubscriptionId":"s1","subscription":{"unsubscribeReasonText":" too many emails\n"}}}`: "too many emails",
	} {
		ev, err := dec.Decode([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if r := ev.Row("rokt", time.Now()); r.UnsubscribeReason != want {
			t.Errorf("%s: reason %q, want %q", body, r.UnsubscribeReason, want)
		}
	}
}

// A start written with an offset ("…Z") is an instant: event_start is the clock the event's
// own time zone showed then, not the clock of the offset it was written in.
func TestEventStartWithAnOffsetIsShownInTheEventsZone(t *testing.T) {
	dec := mustDecoder(t, nil)
	body := `{"eventId":"e1","eventType":"SubscriptionEventAdded","eventDetails":{"calendarSubscriptionId":"s1","subscription":{"calendarSubscriptionId":"s1"},
		"subscriptionEvent":{"title":"Final","startDateTime":"2025-07-01T19:00:00Z","timezone":"Australia/Melbourne"}}}`
	ev, err := dec.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	r := ev.Row("rokt", time.Now())
	if r.EventStart == nil || r.EventStartUTC == nil {
		t.Fatalf("start: wall %v, utc %v", r.EventStart, r.EventStartUTC)
	}
	if got, want := r.EventStart.Format(time.DateTime), "2025-07-02 05:00:00"; got != want {
		t.Errorf("event_start %s, want %s (19:00 UTC in Melbourne)", got, want)
	}
	if got := r.EventStartUTC.UTC().Format(time.RFC3339); got != "2025-07-01T19:00:00Z" {
		t.Errorf("event_start_utc %s", got)
	}
}
