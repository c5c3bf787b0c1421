package mailchimp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
	"github.com/hookbridge/hookbridge/sinks/mailchimp/mailchimpfake"
)

var testMapping = map[string]string{"email": "email", "first_name": "FNAME", "last_name": "LNAME", "postcode": "ZIP"}

func settings(f *fakeMailchimp, extra string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"api_key": %q, "list_id": %q, "base_url": %q, "tags_from": ["calendar_code", "postcode"], "timeout": "5s"%s}`, f.Key, f.List, f.URL, extra))
}

func openSink(t testing.TB, raw json.RawMessage) *Sink {
	t.Helper()
	mp, err := schemas.NewMapping(testMapping)
	if err != nil {
		t.Fatal(err)
	}
	s := New().(*Sink)
	if err := s.Configure(context.Background(), sdk.Config{Name: "newsletter", Settings: raw, Mapping: mp}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestConformance(t *testing.T) {
	f := newFakeMailchimp(t)
	failing := newFakeMailchimp(t)
	failing.Bad["ann.smith@example.org"] = true
	rows := sinktest.DefaultRows()[:2]
	sinktest.Run(t, sinktest.Config{
		New:      New,
		Settings: settings(f, ""),
		Mapping:  testMapping,
		Rows:     rows,
		BadSettings: map[string]json.RawMessage{
			"api_key":         json.RawMessage(`{"api_key": "no-datacentre-", "list_id": "x"}`),
			"list_id":         json.RawMessage(`{"api_key": "abc-us21"}`),
			"without_consent": json.RawMessage(`{"api_key": "abc-us21", "list_id": "x", "without_consent": "subscribe"}`),
			"tags_from":       json.RawMessage(`{"api_key": "abc-us21", "list_id": "x", "tags_from": ["raw"]}`),
			"max_connections": json.RawMessage(`{"api_key": "abc-us21", "list_id": "x", "max_connections": 11}`),
			"consent_column":  json.RawMessage(`{"api_key": "abc-us21", "list_id": "x", "consent_column": "email"}`),
		},
		Delivered: func(t *testing.T, rows []schemas.Row) {
			c := f.Member("charlotte.nguyen+footy@example.com")
			if c == nil || c.Status != "subscribed" || c.Merge["FNAME"] != "Charlotte" || c.Merge["ZIP"] != "3121" || !c.Tags["calendar:scfl-2025-fixtures"] || !c.Tags["postcode:3121"] {
				t.Errorf("Charlotte in the audience: %+v", c)
			}
			if a := f.Member("ann.smith@example.org"); a == nil || a.Status != "unsubscribed" {
				t.Errorf("Ann in the audience: %+v", a)
			}
		},
		Failing:     settings(failing, ""),
		FailingRows: rows,
		FailingSeqs: []int64{102},
	})
}

// fan makes the latest row of a contact, with the state of all their subscriptions.
func fan(seq int64, email string, consent bool, active, ended []string, typ string) schemas.Row {
	n := int64(len(active))
	status := "subscribed"
	if n == 0 {
		status = "unsubscribed"
	}
	r := schemas.Row{Seq: seq, EventID: fmt.Sprint("ev-", seq), EventType: typ, EventTypeSent: typ, Email: email, EmailKey: strings.ToLower(email),
		FirstName: "Fan", LastName: fmt.Sprint(seq), Postcode: "3121", CalendarCode: "scfl", MarketingConsent: &consent,
		ContactStatus: status, ContactActiveSubscriptions: &n, ContactCalendars: active, ContactEndedCalendars: ended}
	return r
}

// TestConsentAndUnsubscribes: a calendar subscription is not marketing consent; an
// Unsubscribe removes that calendar's tag and unsubscribes only a member with no other
// subscription.
func TestConsentAndUnsubscribes(t *testing.T) {
	f := newFakeMailchimp(t)
	write := func(s *Sink, rows ...schemas.Row) { t.Helper(); writeAll(t, s, rows...) }
	s := openSink(t, settings(f, ""))
	write(s, fan(1, "yes@example.com", true, []string{"scfl", "tvrc"}, nil, "Subscribe"),
		fan(2, "no@example.com", false, []string{"scfl"}, nil, "Subscribe"),
		fan(3, "both@example.com", true, []string{"scfl", "tvrc"}, nil, "Subscribe"))
	if m := f.Member("yes@example.com"); m.Status != "subscribed" || !m.Tags["calendar:scfl"] || !m.Tags["calendar:tvrc"] {
		t.Errorf("with consent: %+v", m)
	}
	if m := f.Member("no@example.com"); m.Status != "pending" {
		t.Errorf("without consent: %+v", m)
	}
	// both@ ends scfl but keeps tvrc; yes@ ends both.
	write(s, fan(4, "both@example.com", true, []string{"tvrc"}, []string{"scfl"}, "Unsubscribe"),
		fan(5, "yes@example.com", true, nil, []string{"scfl", "tvrc"}, "Unsubscribe"))
	if m := f.Member("both@example.com"); m.Status != "subscribed" || m.Tags["calendar:scfl"] || !m.Tags["calendar:tvrc"] {
		t.Errorf("an Unsubscribe with another subscription left: %+v", m)
	}
	if m := f.Member("yes@example.com"); m.Status != "unsubscribed" || m.Tags["calendar:scfl"] || m.Tags["calendar:tvrc"] {
		t.Errorf("an Unsubscribe of the last subscription: %+v", m)
	}
	skip := openSink(t, settings(f, `, "without_consent": "skip"`))
	write(skip, fan(6, "quiet@example.com", false, []string{"scfl"}, nil, "Subscribe"))
	if m := f.Member("quiet@example.com"); m != nil {
		t.Errorf("without_consent: skip sent %+v", m)
	}
	tx := openSink(t, settings(f, `, "without_consent": "transactional", "double_opt_in": true`))
	write(tx, fan(7, "tx@example.com", false, []string{"scfl"}, nil, "Subscribe"), fan(8, "doi@example.com", true, []string{"scfl"}, nil, "Subscribe"))
	if m := f.Member("tx@example.com"); m.Status != "transactional" {
		t.Errorf("without_consent: transactional: %+v", m)
	}
	if m := f.Member("doi@example.com"); m.Status != "pending" {
		t.Errorf("double opt-in: %+v", m)
	}

	// A member Mailchimp has keeps its status when the row would only make them pending or
	// transactional (no downgrade, no second confirmation email); their merge fields change.
	both := fan(9, "both@example.com", false, []string{"tvrc", "hcn"}, []string{"scfl"}, "Subscribe")
	both.FirstName = "Renamed"
	write(s, both)
	if m := f.Member("both@example.com"); m.Status != "subscribed" || m.Merge["FNAME"] != "Renamed" || !m.Tags["calendar:hcn"] {
		t.Errorf("an existing subscriber's row without consent: %+v", m)
	}
	write(tx, fan(10, "both@example.com", true, []string{"tvrc", "hcn"}, []string{"scfl"}, "Subscribe"))
	if m := f.Member("both@example.com"); m.Status != "subscribed" {
		t.Errorf("double opt-in made an existing subscriber pending again: %+v", m)
	}
	// Consent on the row subscribes a pending member; an unsubscribed contact stays unsubscribed
	// until a row with an active subscription and consent comes.
	write(s, fan(11, "no@example.com", true, []string{"scfl"}, nil, "Subscribe"))
	if m := f.Member("no@example.com"); m.Status != "subscribed" {
		t.Errorf("consent given later: %+v", m)
	}
}

// writeAll writes rows as one batch and fails the test unless every row went through.
func writeAll(t *testing.T, s *Sink, rows ...schemas.Row) {
	t.Helper()
	b := sdk.NewBatch("b", 1, sinktest.Record(t, s.Spec(), testMapping, rows), mustMapping(t))
	if err := s.Write(context.Background(), b); err != nil || len(b.Results()) > 0 {
		t.Fatalf("%v %+v", err, b.Results())
	}
}

func mustMapping(t testing.TB) *schemas.Mapping {
	m, err := schemas.NewMapping(testMapping)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunWithInjectedFailures drives 1,500 contacts (half of them subscribed before, so their
// tags and, without consent, their merge fields go through their own endpoints) through an
// audience that fails 30% of write requests (batch, tags and merge-field PATCHes alike; half
// of those failures after applying the request), answers 429s and bodiless 403s, refuses
// some members with a transient error code, and refuses one address for good. Every member
// ends with the right status, exactly the right tags and merge fields, the audience holds no
// one else, the bad address is dead-lettered with Mailchimp's reason, no request ever used an
// 11th connection, and sending everything again changes nothing.
func TestRunWithInjectedFailures(t *testing.T) {
	f := newFakeMailchimp(t)
	type want struct {
		status string
		tags   []string
		merge  map[string]string
	}
	var rows []schemas.Row
	wants := map[string]want{}
	for i := 0; i < 1500; i++ {
		email := fmt.Sprintf("fan%04d@example.com", i)
		active, ended, typ := []string{"scfl"}, []string(nil), "Subscribe"
		switch {
		case i%4 == 0:
			active, ended, typ = nil, []string{"scfl"}, "Unsubscribe"
		case i%4 == 1:
			active, ended, typ = []string{"tvrc"}, []string{"scfl"}, "Unsubscribe"
		}
		consent := i%3 != 0
		rows = append(rows, fan(int64(i+1), email, consent, active, ended, typ))
		w := want{tags: []string{"postcode:3121"}, merge: map[string]string{"FNAME": "Fan", "LNAME": fmt.Sprint(i + 1), "ZIP": "3121"}}
		for _, c := range active {
			w.tags = append(w.tags, "calendar:"+c)
		}
		sort.Strings(w.tags)
		switch {
		case len(active) == 0:
			w.status = "unsubscribed"
		case consent, i%2 == 0: // members from before keep their status without consent
			w.status = "subscribed"
		default:
			w.status = "pending"
		}
		wants[email] = w
	}
	s := openSink(t, settings(f, ""))
	// Half the audience exists already, subscribed to scfl, under another first name.
	var old []schemas.Row
	for i := 0; i < len(rows); i += 2 {
		r := fan(rows[i].Seq, rows[i].Email, true, []string{"scfl"}, nil, "Subscribe")
		r.FirstName = "Old"
		old = append(old, r)
	}
	sinktest.Drive(t, s, testMapping, old, time.Millisecond)
	const bad, badSeq = "fan0777@example.com", 778
	f.With(func(f *fakeMailchimp) {
		f.Bad[bad] = true
		f.FailRate, f.AppliedShare, f.Rate429, f.Rate403, f.MemberErr = 0.3, 0.5, 0.05, 0.05, 0.03
		f.Delay = time.Millisecond
	})

	out := sinktest.Drive(t, s, testMapping, rows, 5*time.Millisecond)
	if r, ok := out.Failed[badSeq]; len(out.Failed) != 1 || !ok || !strings.Contains(r.Reason, "ERROR_GENERIC: "+bad+" looks fake or invalid") {
		var sample []sdk.RowResult
		for _, r := range out.Failed {
			if sample = append(sample, r); len(sample) == 3 {
				break
			}
		}
		t.Fatalf("%d failed rows (%+v …), want only %d (%s) with Mailchimp's reason", len(out.Failed), sample, badSeq, bad)
	}
	if len(out.Delivered) != len(rows)-1 {
		t.Errorf("%d rows delivered, want %d", len(out.Delivered), len(rows)-1)
	}
	checkAudience := func(when string) {
		t.Helper()
		if m := f.Member(bad); m != nil {
			t.Errorf("%s: the refused address is in the audience: %+v", when, m)
		}
		for email, w := range wants {
			if email == bad {
				continue
			}
			m := f.Member(email)
			if m == nil {
				t.Errorf("%s: %s is not in the audience", when, email)
				continue
			}
			if m.Status != w.status || fmt.Sprint(m.ActiveTags()) != fmt.Sprint(w.tags) || fmt.Sprint(m.Merge) != fmt.Sprint(w.merge) {
				t.Errorf("%s: %s is %s %v %v, want %s %v %v", when, email, m.Status, m.ActiveTags(), m.Merge, w.status, w.tags, w.merge)
			}
		}
		if n := len(f.State()); n != len(wants)-1 {
			t.Errorf("%s: the audience holds %d members, want %d", when, n, len(wants)-1)
		}
	}
	checkAudience("after the run")
	var maxActive, over, maxBatch, applied int
	var on map[string]int
	f.With(func(f *fakeMailchimp) {
		maxActive, over, maxBatch, applied, on = f.MaxActive, f.Over, f.MaxBatch, f.Applied, maps.Clone(f.InjectedOn)
	})
	if maxActive > MaxConnections || over > 0 || maxBatch > MaxMembers {
		t.Errorf("%d connections at once (%d refused), %d members in one request", maxActive, over, maxBatch)
	}
	// The run must have met each kind of failure, or it proves less than it says.
	if on["batch"] == 0 || on["tags"] == 0 || on["patch"] == 0 || on["member"] == 0 || applied == 0 || out.SinkDowns == 0 || out.Retries == 0 {
		t.Errorf("failures injected %v, %d after applying, %d sink-downs, %d rows retried: the run missed a path", on, applied, out.SinkDowns, out.Retries)
	}
	t.Logf("%d writes, %d sink-downs, %d rows retried, failures injected %v (%d after applying), %d connections at most", out.Writes, out.SinkDowns, out.Retries, on, applied, maxActive)

	before := f.State()
	f.With(func(f *fakeMailchimp) { f.FailRate, f.Rate429, f.Rate403, f.MemberErr = 0, 0, 0, 0 })
	sinktest.Drive(t, s, testMapping, rows, time.Millisecond)
	if after := f.State(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("sending everything again changed the audience")
	}
	checkAudience("sent again")
}

// three makes three subscribers with consent, on scfl.
func three() []schemas.Row {
	return []schemas.Row{fan(1, "a@example.com", true, []string{"scfl"}, nil, "Subscribe"), fan(2, "b@example.com", true, []string{"scfl"}, nil, "Subscribe"),
		fan(3, "c@example.com", true, []string{"scfl"}, nil, "Subscribe")}
}

// writeRows sends rows as one batch and returns it with Write's error.
func writeRows(t *testing.T, s *Sink, rows ...schemas.Row) (*sdk.Batch, error) {
	t.Helper()
	rec := sinktest.Record(t, s.Spec(), testMapping, rows)
	t.Cleanup(rec.Release)
	b := sdk.NewBatch("b", 1, rec, mustMapping(t))
	return b, s.Write(context.Background(), b)
}

// TestThrottling: Mailchimp's two throttle answers, 429 and 403 without a body, back the
// whole sink off for Retry-After (10 s and 30 s without one) and charge no row; a 403 with a
// body is a refused key, not a throttle. On the per-member requests that follow the batch
// upsert the same answers retry the rows after the same wait instead, and a refused key
// still stops the write.
func TestThrottling(t *testing.T) {
	disabled := mailchimpfake.Answer{Status: 403, Title: "User Disabled", Detail: "This account has been disabled."}
	forbidden := mailchimpfake.Answer{Status: 403, Title: "Forbidden", Detail: "You don't have permission to access this resource."}
	cases := []struct {
		name   string
		answer mailchimpfake.Answer
		wait   time.Duration
		says   string // in the error
	}{
		{"429 with Retry-After", mailchimpfake.Answer{Status: 429, RetryAfter: "7", Title: "Too Many Requests"}, 7 * time.Second, "429 Too Many Requests"},
		{"429 without Retry-After", mailchimpfake.Answer{Status: 429, Title: "Too Many Requests"}, 10 * time.Second, "429 Too Many Requests"},
		{"403 without a body", mailchimpfake.Answer{Status: 403, Bodiless: true}, 30 * time.Second, "throttled"},
		{"403 without a body, with Retry-After", mailchimpfake.Answer{Status: 403, Bodiless: true, RetryAfter: "12"}, 12 * time.Second, "throttled"},
		{"403 user disabled", disabled, time.Minute, "403 User Disabled: This account has been disabled. (check the API key)"},
		{"403 forbidden", forbidden, time.Minute, "403 Forbidden"},
	}
	for _, c := range cases {
		t.Run("batch: "+c.name, func(t *testing.T) {
			f := newFakeMailchimp(t)
			s := openSink(t, settings(f, ""))
			a := c.answer
			a.Kind = "batch"
			f.With(func(f *fakeMailchimp) { f.Script = []mailchimpfake.Answer{a} })
			b, err := writeRows(t, s, three()...)
			sd, ok := sdk.AsSinkDown(err)
			if !ok || sd.Pause || sd.StatusCode != a.Status || sd.RetryAfter != c.wait || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v (%+v), want the sink down for %v with status %d, saying %q", err, sd, c.wait, a.Status, c.says)
			}
			if throttle := c.answer.Status == 429 || c.answer.Bodiless; throttle == strings.Contains(err.Error(), "check the API key") {
				t.Errorf("throttle %v, but the error is %v", throttle, err)
			}
			if len(b.Results()) != 0 || len(f.State()) != 0 {
				t.Errorf("rows charged %+v, audience %v", b.Results(), f.State())
			}
		})
	}
	for _, c := range cases {
		t.Run("tags: "+c.name, func(t *testing.T) {
			f := newFakeMailchimp(t)
			// One connection: the first tag request is answered, the others wait their turn.
			s := openSink(t, settings(f, `, "max_connections": 1`))
			if b, err := writeRows(t, s, three()...); err != nil || len(b.Results()) != 0 {
				t.Fatal(err, b.Results())
			}
			a := c.answer
			a.Kind = "tags"
			f.With(func(f *fakeMailchimp) { f.Script = []mailchimpfake.Answer{a} })
			b, err := writeRows(t, s, three()...) // existing members: one tag request each
			if throttle := a.Status == 429 || a.Bodiless; !throttle {
				// A refused key stops the write: the sink is down (the host then charges no row).
				if sd, ok := sdk.AsSinkDown(err); !ok || sd.StatusCode != 403 || sd.RetryAfter != c.wait || !strings.Contains(err.Error(), "check the API key") {
					t.Fatalf("got %v (%+v): want the sink down", err, sd)
				}
				return
			}
			if err != nil {
				t.Fatalf("a throttled tag request stopped the write: %v", err)
			}
			got := b.Results()
			if len(got) != 3 {
				t.Fatalf("rows %+v, want all three retried", got)
			}
			for _, r := range got {
				if r.Outcome != sdk.Retry || r.RetryAfter != c.wait {
					t.Errorf("row %d: %+v, want a retry after %v", r.Seq, r, c.wait)
				}
			}
			f.With(func(f *fakeMailchimp) {
				if f.TagCalls != 0 {
					t.Errorf("%d tag requests sent after Mailchimp throttled", f.TagCalls)
				}
			})
		})
	}
	t.Run("merge fields: 500 retries the row, 400 fails it", func(t *testing.T) {
		f := newFakeMailchimp(t)
		s := openSink(t, settings(f, ""))
		if _, err := writeRows(t, s, three()...); err != nil {
			t.Fatal(err)
		}
		// Without consent the members keep their status and get their merge fields by PATCH.
		rows := three()
		for i := range rows {
			no := false
			rows[i].MarketingConsent = &no
		}
		f.With(func(f *fakeMailchimp) {
			f.Script = []mailchimpfake.Answer{{Kind: "patch", Status: 500, Title: "Internal Server Error"}, {Kind: "patch", Status: 400, Title: "Invalid Resource", Detail: "The resource submitted could not be validated."}}
		})
		b, err := writeRows(t, s, rows...)
		if err != nil {
			t.Fatal(err)
		}
		byOutcome := map[sdk.Outcome]int{}
		for _, r := range b.Results() {
			byOutcome[r.Outcome]++
			if !strings.HasPrefix(r.Reason, "merge fields: mailchimp: "+fmt.Sprint(r.StatusCode)) {
				t.Errorf("row %d: reason %q", r.Seq, r.Reason)
			}
		}
		if byOutcome[sdk.Retry] != 1 || byOutcome[sdk.Failed] != 1 || len(b.Results()) != 2 {
			t.Errorf("rows %+v, want one retried (500) and one failed (400)", b.Results())
		}
	})
}

// TestTransientMemberErrors: a member the batch answer refuses with a transient code is
// retried, one refused otherwise is failed with Mailchimp's words, and the others go through.
func TestTransientMemberErrors(t *testing.T) {
	f := newFakeMailchimp(t)
	s := openSink(t, settings(f, ""))
	f.With(func(f *fakeMailchimp) { f.MemberErr, f.Bad["c@example.com"] = 1, true })
	b, err := writeRows(t, s, three()...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]sdk.RowResult{}
	for _, r := range b.Results() {
		got[r.Seq] = r
	}
	if got[1].Outcome != sdk.Retry || got[2].Outcome != sdk.Retry || !strings.Contains(got[1].Reason, mailchimpfake.TransientCode) {
		t.Errorf("transient member errors: %+v", got)
	}
	if got[3].Outcome != sdk.Failed || !strings.Contains(got[3].Reason, "looks fake or invalid") {
		t.Errorf("bad address: %+v", got[3])
	}
}

// TestConfigure: settings are refused naming the field, and Configure sends no request.
func TestConfigure(t *testing.T) {
	f := newFakeMailchimp(t)
	cases := []struct {
		name    string
		extra   string
		mapping map[string]string
		field   string // "" when valid
		says    string
	}{
		{"valid", "", testMapping, "", ""},
		{"boolean consent column", `, "consent_column": "marketing_consent"`, testMapping, "", ""},
		{"text consent column", `, "consent_column": "action_type"`, testMapping, "", ""},
		{"unknown consent column", `, "consent_column": "optin"`, testMapping, "consent_column", `"optin" is not a column`},
		{"email as consent", `, "consent_column": "email"`, testMapping, "consent_column", "identifies"},
		{"status as consent", `, "consent_column": "contact_status"`, testMapping, "consent_column", "a calendar subscription is not marketing consent"},
		{"free text as consent", `, "consent_column": "event_description"`, testMapping, "consent_column", "free text"},
		{"time as consent", `, "consent_column": "received_at"`, testMapping, "consent_column", "timestamp"},
		{"list as consent", `, "consent_column": "tag_names"`, testMapping, "consent_column", "list"},
		{"tags from the mapping", `, "tags_from": []`, map[string]string{"email": "email", "calendar_code": "tags", "postcode": "tags:zip-"}, "", ""},
		{"tags from a column that gives none", `, "tags_from": []`, map[string]string{"email": "email", "first_name": "tags"}, "mapping", "tags come from"},
		{"tags named twice", "", map[string]string{"email": "email", "postcode": "tags"}, "mapping", "tags_from already"},
		{"tags_from twice", `, "tags_from": ["postcode", "postcode"]`, testMapping, "tags_from", "twice"},
		{"tags_from unknown", `, "tags_from": ["raw"]`, testMapping, "tags_from", "tags come from"},
		{"merge tag in lower case", "", map[string]string{"email": "email", "first_name": "fname"}, "mapping", "merge tags"},
		{"without_consent", `, "without_consent": "subscribe"`, testMapping, "without_consent", "pending, skip or transactional"},
		{"max_connections", `, "max_connections": 11`, testMapping, "max_connections", "between 1 and 10"},
		{"base_url", `, "base_url": "mailchimp"`, testMapping, "base_url", "absolute"},
		{"timeout", `, "timeout": "soon"`, testMapping, "timeout", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mp, err := schemas.NewMapping(c.mapping)
			if err != nil {
				t.Fatal(err)
			}
			raw := settings(f, c.extra)
			if strings.Contains(c.extra, `"base_url"`) {
				raw = json.RawMessage(fmt.Sprintf(`{"api_key": %q, "list_id": %q%s}`, f.Key, f.List, c.extra))
			}
			err = New().Configure(context.Background(), sdk.Config{Name: "newsletter", Settings: raw, Mapping: mp})
			var se *sdk.SettingsError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.field != "" && (!errors.As(err, &se) || se.Field != c.field || !strings.Contains(se.Message, c.says)):
				t.Fatalf("got %v, want a settings error naming %q and saying %q", err, c.field, c.says)
			}
		})
	}
	f.With(func(f *fakeMailchimp) {
		if f.Requests != 0 {
			t.Errorf("Configure made %d requests", f.Requests)
		}
	})
}

// TestConsentColumn: consent comes from the column consent_column names, read by name: a text
// column counts as consent when it says true, yes, y, 1 or on (any case), and the default
// column is then ignored.
func TestConsentColumn(t *testing.T) {
	f := newFakeMailchimp(t)
	s := openSink(t, settings(f, `, "consent_column": "action_type"`))
	says := map[string]string{"Yes": "subscribed", " on ": "subscribed", "1": "subscribed", "TRUE": "subscribed", "y": "subscribed",
		"no": "pending", "off": "pending", "0": "pending", "maybe": "pending", "": "pending", "SubscriptionViaSms": "pending"}
	var rows []schemas.Row
	i := 0
	for v := range says {
		i++
		// marketing_consent says the opposite of action_type's answer: it must not count.
		r := fan(int64(i), fmt.Sprintf("fan%d@example.com", i), says[v] != "subscribed", []string{"scfl"}, nil, "Subscribe")
		r.ActionType = v
		rows = append(rows, r)
	}
	if b, err := writeRows(t, s, rows...); err != nil || len(b.Results()) != 0 {
		t.Fatal(err, b.Results())
	}
	for _, r := range rows {
		if m := f.Member(r.Email); m == nil || m.Status != says[r.ActionType] {
			t.Errorf("action_type %q: %+v, want %s", r.ActionType, m, says[r.ActionType])
		}
	}
	// The spec asks the host for every column consent_column accepts, since the host reads
	// the spec before the settings.
	for _, c := range []string{"marketing_consent", "action_type"} {
		if !slices.Contains(s.Spec().Columns, c) {
			t.Errorf("the spec does not ask for %s", c)
		}
	}
	// Personal data is no consent flag, and is not sent for the sake of one.
	for _, c := range []string{"first_name", "phone", "remote_ip", "geo_country"} {
		if consentProblem(c) == "" || slices.Contains(s.Spec().Columns, c) {
			t.Errorf("%s accepted as a consent column, or asked for in the spec (%v)", c, s.Spec().Columns)
		}
	}
	// A record without the column (a host that does not send it) pauses the sink rather
	// than making every subscriber pending.
	rec := sinktest.Record(t, sdk.Spec{KeyColumn: "email_key", Columns: []string{"email"}}, testMapping, rows[:1])
	defer rec.Release()
	err := s.Write(context.Background(), sdk.NewBatch("b2", 1, rec, mustMapping(t)))
	if sd, ok := sdk.AsSinkDown(err); !ok || !sd.Pause || !strings.Contains(err.Error(), "action_type") {
		t.Errorf("rows without the consent column: %v", err)
	}
}

// TestTagsFromTheMapping: a column mapped to tags gives the same tags as tags_from, and
// tags:PREFIX names them with another prefix; a calendar the contact left loses its tag.
func TestTagsFromTheMapping(t *testing.T) {
	f := newFakeMailchimp(t)
	m := map[string]string{"email": "email", "first_name": "FNAME", "calendar_code": "tags", "postcode": "tags:zip-"}
	mp, err := schemas.NewMapping(m)
	if err != nil {
		t.Fatal(err)
	}
	s := New().(*Sink)
	if err := s.Configure(context.Background(), sdk.Config{Name: "newsletter", Settings: settings(f, `, "tags_from": []`), Mapping: mp}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	write := func(r schemas.Row) {
		t.Helper()
		rec := sinktest.Record(t, s.Spec(), m, []schemas.Row{r})
		defer rec.Release()
		b := sdk.NewBatch("b", 1, rec, mp)
		if err := s.Write(context.Background(), b); err != nil || len(b.Results()) != 0 {
			t.Fatal(err, b.Results())
		}
	}
	write(fan(1, "a@example.com", true, []string{"scfl", "tvrc"}, nil, "Subscribe"))
	if got := f.Member("a@example.com"); got == nil || fmt.Sprint(got.ActiveTags()) != "[calendar:scfl calendar:tvrc zip-3121]" || fmt.Sprint(got.Merge) != "map[FNAME:Fan]" {
		t.Errorf("tags from the mapping: %+v", got)
	}
	write(fan(2, "a@example.com", true, []string{"tvrc"}, []string{"scfl"}, "Unsubscribe"))
	if got := f.Member("a@example.com"); got == nil || fmt.Sprint(got.ActiveTags()) != "[calendar:tvrc zip-3121]" {
		t.Errorf("after leaving scfl: %+v", got)
	}
}

// TestFakeFollowsTheDocs checks the fake's answers against what Mailchimp documents, so the
// other tests stand on them: auth, the batch limit, the connection limit with its 429, and
// the scripted and injected failures.
func TestFakeFollowsTheDocs(t *testing.T) {
	f := newFakeMailchimp(t)
	f.With(func(f *fakeMailchimp) { f.RNG = nil })
	do := func(method, path, key string, body any) (*http.Response, map[string]any, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, f.URL+"/3.0"+path, rd)
		if key != "" {
			req.SetBasicAuth("anystring", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp, m, raw
	}
	isProblem := func(resp *http.Response, m map[string]any, status int, title string) bool {
		return resp.StatusCode == status && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") &&
			m["title"] == title && m["status"] == float64(status) && m["type"] != nil && m["detail"] != nil && m["instance"] != nil
	}
	member := func(email string) map[string]any {
		return map[string]any{"email_address": email, "status": "subscribed", "tags": []string{"t"}}
	}
	batch := "/lists/" + f.List
	for _, key := range []string{"", "ffffffffffffffffffffffffffffffff-us21"} {
		if resp, m, _ := do("POST", batch, key, map[string]any{"members": []any{member("a@example.com")}}); !isProblem(resp, m, 401, "API Key Invalid") {
			t.Errorf("key %q: %d %v", key, resp.StatusCode, m)
		}
	}
	var many []any
	for i := range 501 {
		many = append(many, member(fmt.Sprintf("f%d@example.com", i)))
	}
	if resp, m, _ := do("POST", batch, f.Key, map[string]any{"members": many}); !isProblem(resp, m, 400, "Invalid Resource") || !strings.Contains(m["detail"].(string), "500") {
		t.Errorf("501 members: %d %v", resp.StatusCode, m)
	}
	resp, m, _ := do("POST", batch, f.Key, map[string]any{"members": []any{member("a@example.com"), member("bad"), member("a@example.com")}, "update_existing": false})
	if errs, _ := m["errors"].([]any); resp.StatusCode != 200 || len(errs) != 2 || m["total_created"] != float64(1) || m["error_count"] != float64(2) ||
		!strings.Contains(fmt.Sprint(errs), "ERROR_GENERIC") || !strings.Contains(fmt.Sprint(errs), "ERROR_CONTACT_EXISTS") {
		t.Errorf("200 with errors[]: %d %v", resp.StatusCode, m)
	}
	if len(f.State()) != 1 || len(many) != 501 {
		t.Errorf("members after refused batches: %v", f.State())
	}

	// The eleventh simultaneous connection is refused with 429, Retry-After only when set.
	for _, ra := range []string{"", "3"} {
		f.With(func(f *fakeMailchimp) { f.Delay, f.RetryAfter, f.Over = 200*time.Millisecond, ra, 0 })
		var wg sync.WaitGroup
		var mu sync.Mutex
		var refused []*http.Response
		for range MaxConnections + 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, m, _ := do("GET", "/ping", f.Key, nil)
				if resp.StatusCode == 429 {
					mu.Lock()
					refused = append(refused, resp)
					mu.Unlock()
					if !isProblem(resp, m, 429, "Too Many Requests") {
						t.Errorf("429: %v", m)
					}
				}
			}()
		}
		wg.Wait()
		if len(refused) != 1 || refused[0].Header.Get("Retry-After") != ra {
			t.Errorf("Retry-After %q: %d refused", ra, len(refused))
		} else if h := refused[0].Header; h.Get("X-RateLimit-Remaining") != "" {
			t.Errorf("rate-limit headers Mailchimp does not send: %v", h)
		}
	}
	f.With(func(f *fakeMailchimp) { f.Delay = 0 })

	// Scripted answers: a bodiless 403, and a 500 after the request was applied.
	f.With(func(f *fakeMailchimp) {
		f.Script = []mailchimpfake.Answer{{Kind: "patch", Status: 403, Bodiless: true}, {Kind: "tags", Status: 500, Applied: true}}
	})
	hash := mailchimpfake.Hash("A@example.com")
	if resp, _, raw := do("GET", "/ping", f.Key, nil); resp.StatusCode != 200 || len(raw) == 0 {
		t.Errorf("a read took a scripted answer: %d", resp.StatusCode)
	}
	if resp, _, raw := do("PATCH", batch+"/members/"+hash, f.Key, map[string]any{"merge_fields": map[string]string{"FNAME": "A"}}); resp.StatusCode != 403 || len(bytes.TrimSpace(raw)) != 0 {
		t.Errorf("scripted bodiless 403: %d %q", resp.StatusCode, raw)
	}
	if resp, m, _ := do("POST", batch+"/members/"+hash+"/tags", f.Key, map[string]any{"tags": []map[string]string{{"name": "t", "status": "inactive"}, {"name": "u", "status": "active"}}}); !isProblem(resp, m, 500, "Internal Server Error") {
		t.Errorf("scripted 500: %d %v", resp.StatusCode, m)
	}
	if a := f.Member("a@example.com"); a == nil || fmt.Sprint(a.ActiveTags()) != "[u]" || a.Merge["FNAME"] != "" {
		t.Errorf("the 500 after applying should have applied the tags, the 403 nothing: %+v", a)
	}
	// Injected failures hit PATCHes too, and member errors carry the transient code.
	f.With(func(f *fakeMailchimp) { f.RNG, f.FailRate = rand.New(rand.NewPCG(1, 1)), 1 })
	if resp, m, _ := do("PATCH", batch+"/members/"+hash, f.Key, map[string]any{"merge_fields": map[string]string{"FNAME": "A"}}); !isProblem(resp, m, 500, "Internal Server Error") {
		t.Errorf("injected 500 on a PATCH: %d %v", resp.StatusCode, m)
	}
	f.With(func(f *fakeMailchimp) { f.FailRate, f.MemberErr = 0, 1 })
	if _, m, _ := do("POST", batch, f.Key, map[string]any{"members": []any{member("b@example.com")}}); !strings.Contains(fmt.Sprint(m["errors"]), mailchimpfake.TransientCode) {
		t.Errorf("member error: %v", m)
	}
}

// TestCheck: key, audience and merge fields are verified, the missing ones named.
func TestCheck(t *testing.T) {
	f := newFakeMailchimp(t)
	if err := openSink(t, settings(f, "")).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.With(func(f *fakeMailchimp) { f.Fields = []string{"FNAME"} })
	if err := openSink(t, settings(f, "")).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "LNAME, ZIP") {
		t.Errorf("missing merge fields: %v", err)
	}
	wrong := json.RawMessage(fmt.Sprintf(`{"api_key": "ffffffffffffffffffffffffffffffff-us21", "list_id": %q, "base_url": %q}`, f.List, f.URL))
	err := openSink(t, wrong).Check(context.Background())
	if sd, ok := sdk.AsSinkDown(err); !ok || sd.StatusCode != 401 || strings.Contains(err.Error(), "ffffffff") {
		t.Errorf("wrong key: %v", err)
	}
}

func TestHostFromKey(t *testing.T) {
	s := New().(*Sink)
	if err := s.Configure(context.Background(), sdk.Config{Settings: json.RawMessage(`{"api_key": "abc123-us6", "list_id": "x"}`)}); err != nil {
		t.Fatal(err)
	}
	if s.base != "https://us6.api.mailchimp.com" {
		t.Errorf("host %s", s.base)
	}
}

// BenchmarkConcurrentThroughput compares requests per second through the sink (tag updates
// of existing members, 10 connections) with a bare client making the same requests from 10
// goroutines, against a fake that takes 5 ms per request and refuses an 11th connection.
// Rounds of the two alternate, so that both meet the same machine load, and the reported
// sink/baseline is the median of the rounds' ratios. max-connections is the most
// simultaneous requests the fake saw from the sink, refused the requests it refused.
//
//	go test -tags duckdb_arrow ./sinks/mailchimp -run '^$' -bench Concurrent -benchtime 10x
func BenchmarkConcurrentThroughput(b *testing.B) {
	f := newFakeMailchimp(b)
	f.With(func(f *fakeMailchimp) { f.RNG = nil })
	var rows []schemas.Row
	for i := 0; i < 500; i++ {
		rows = append(rows, fan(int64(i+1), fmt.Sprintf("fan%04d@example.com", i), true, []string{"scfl"}, nil, "Subscribe"))
	}
	s := openSink(b, settings(f, ""))
	rec := sinktest.Record(b, s.Spec(), testMapping, rows)
	defer rec.Release()
	write := func() {
		batch := sdk.NewBatch("b", 1, rec, mustMapping(b))
		if err := s.Write(context.Background(), batch); err != nil || len(batch.Results()) > 0 {
			b.Fatal(err, batch.Results())
		}
	}
	write() // the members exist: every later write updates tags, one request per member
	f.With(func(f *fakeMailchimp) { f.Delay = 5 * time.Millisecond })

	// The baseline: the same tag requests from 10 goroutines with a plain client.
	body, _ := json.Marshal(map[string]any{"tags": []map[string]string{{"name": "calendar:scfl", "status": "active"}, {"name": "postcode:3121", "status": "active"}}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: MaxConnections}}
	defer client.CloseIdleConnections()
	bare := func() {
		var wg sync.WaitGroup
		jobs := make(chan string)
		for range MaxConnections {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for email := range jobs {
					req, _ := http.NewRequest(http.MethodPost, f.URL+"/3.0/lists/"+f.List+"/members/"+subscriberHash(email)+"/tags", bytes.NewReader(body))
					req.SetBasicAuth("x", f.Key)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		for _, r := range rows {
			jobs <- r.Email
		}
		close(jobs)
		wg.Wait()
	}
	// rate runs fn and returns the requests per second the fake served, and the most it
	// served at once.
	rate := func(fn func()) (float64, int) {
		f.With(func(f *fakeMailchimp) { f.Requests, f.MaxActive = 0, 0 })
		start := time.Now()
		fn()
		took := time.Since(start)
		var n, most int
		f.With(func(f *fakeMailchimp) { n, most = f.Requests, f.MaxActive })
		return float64(n) / took.Seconds(), most
	}
	rate(bare) // warm the baseline's connections as the sink's are
	var ratios []float64
	sinkMost := 0
	b.ResetTimer()
	for range b.N {
		sinkRate, most := rate(write)
		baseRate, _ := rate(bare)
		sinkMost = max(sinkMost, most)
		ratios = append(ratios, sinkRate/baseRate)
	}
	b.StopTimer()
	slices.Sort(ratios)
	var over int
	f.With(func(f *fakeMailchimp) { over = f.Over })
	b.ReportMetric(ratios[len(ratios)/2], "sink/baseline")
	b.ReportMetric(ratios[0], "min-ratio")
	b.ReportMetric(float64(sinkMost), "max-connections")
	b.ReportMetric(float64(over), "refused")
}

// By default consent is the person's latest statement (contact_marketing_consent), so the row
// sent for them says the same whichever of their rows it is: a row from a subscription that
// made no statement subscribes a person who consented on another. With without_consent: skip,
// a person who never consented is never sent, not even when they unsubscribe.
func TestConsentIsThePersonsLatestStatement(t *testing.T) {
	f := newFakeMailchimp(t)
	write := func(s *Sink, rows ...schemas.Row) { t.Helper(); writeAll(t, s, rows...) }
	yes := true
	jack := fan(1, "jack@example.com", false, []string{"scfl", "tvrc"}, nil, "Subscribe")
	jack.MarketingConsent, jack.ContactMarketingConsent = nil, &yes
	write(openSink(t, settings(f, "")), jack)
	if m := f.Member("jack@example.com"); m == nil || m.Status != "subscribed" {
		t.Errorf("a person who consented on another subscription: %+v", m)
	}
	skip := openSink(t, settings(f, `, "without_consent": "skip"`))
	write(skip, fan(2, "quiet@example.com", false, nil, []string{"scfl"}, "Unsubscribe"))
	if m := f.Member("quiet@example.com"); m != nil {
		t.Errorf("without_consent: skip sent the Unsubscribe of a person never sent: %+v", m)
	}
}

// An address the decoder could not take (a sender's "N/A") is failed without a request:
// Mailchimp would refuse it anyway.
func TestInvalidAddressIsNotSent(t *testing.T) {
	f := newFakeMailchimp(t)
	s := openSink(t, settings(f, ""))
	b := sdk.NewBatch("b", 1, sinktest.Record(t, s.Spec(), testMapping, []schemas.Row{fan(1, "N/A", true, []string{"scfl"}, nil, "Subscribe")}), mustMapping(t))
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	res := b.Results()
	if len(res) != 1 || res[0].Outcome != sdk.Failed || !strings.Contains(res[0].Reason, "not an email address") {
		t.Errorf("results %+v, want the row failed as not an address", res)
	}
	if m := f.Member("N/A"); m != nil {
		t.Errorf("sent: %+v", m)
	}
}
