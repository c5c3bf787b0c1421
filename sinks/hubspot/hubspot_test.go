package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

// testMapping is the README's sample mapping plus the calendars the contact is on.
var testMapping = map[string]string{"email": "email", "first_name": "firstname", "last_name": "lastname", "postcode": "zip",
	"calendar_title": "rokt_calendar", "status": "rokt_subscription_status", "contact_calendars": "rokt_calendars"}

func settingsFor(f *fakeHubSpot, token string, edit ...func(*Settings)) json.RawMessage {
	set := Settings{Token: token, BaseURL: f.URL, Timeout: "5s"}
	for _, e := range edit {
		e(&set)
	}
	b, _ := json.Marshal(set)
	return b
}

func mustMapping(t testing.TB, m map[string]string) *schemas.Mapping {
	t.Helper()
	mp, err := schemas.NewMapping(m)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

func openSink(t testing.TB, raw json.RawMessage, m map[string]string, log *slog.Logger) *Sink {
	t.Helper()
	s := New().(*Sink)
	if err := s.Configure(context.Background(), sdk.Config{Name: "crm", Settings: raw, Mapping: mustMapping(t, m), Logger: log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// write sends rows as one batch, the way the host builds it.
func write(t testing.TB, s *Sink, m map[string]string, id string, rows []schemas.Row) (*sdk.Batch, error) {
	t.Helper()
	rec := sinktest.Record(t, s.Spec(), m, rows)
	defer rec.Release()
	b := sdk.NewBatch(id, 1, rec, mustMapping(t, m))
	return b, s.Write(context.Background(), b)
}

func marks(b *sdk.Batch) map[int64]sdk.RowResult {
	out := map[int64]sdk.RowResult{}
	for _, r := range b.Results() {
		out[r.Seq] = r
	}
	return out
}

// fan is a subscriber row as the engine sends it: the latest event of the contact joined
// with the state of all their subscriptions.
func fan(seq int64, email, eventType string, active, ended []string) schemas.Row {
	t0 := time.Date(2025, 9, 1, 21, 45, 0, 0, time.UTC)
	n := int64(len(active))
	r := schemas.Row{Seq: seq, EventID: fmt.Sprintf("ev-%d", seq), EventType: eventType, EventTypeSent: eventType, Source: "rokt",
		ReceivedAt: t0, OccurredAt: t0, Email: email, EmailKey: strings.ToLower(email),
		ContactActiveSubscriptions: &n, ContactCalendars: append([]string{}, active...), ContactEndedCalendars: ended,
		ContactStatus: schemas.StatusUnsubscribed, Status: schemas.StatusSubscribed}
	if n > 0 {
		r.ContactStatus = schemas.StatusSubscribed
	}
	if eventType == "Unsubscribe" {
		r.Status = schemas.StatusUnsubscribed
	} else {
		r.FirstName, r.LastName, r.Postcode = "Fan", fmt.Sprint(seq), "3121"
	}
	return r
}

func TestConformance(t *testing.T) {
	f := newFakeHubSpot(t)
	failing := newFakeHubSpot(t)
	failing.Bad["ann.smith@example.org"] = true
	rows := sinktest.DefaultRows()[:2] // the Test event has no contact; the spec does not take it
	sinktest.Run(t, sinktest.Config{
		New:      New,
		Settings: settingsFor(f, f.Token),
		Mapping:  testMapping,
		Rows:     rows,
		BadSettings: map[string]json.RawMessage{
			"token":         json.RawMessage(`{"base_url": "https://api.hubapi.com"}`),
			"base_url":      json.RawMessage(`{"token": "x", "base_url": "api.hubapi.com"}`),
			"timeout":       json.RawMessage(`{"token": "x", "timeout": "soon"}`),
			"status_values": json.RawMessage(`{"token": "x", "status_values": {"subscribed": "yes", "unsubscribed": "yes"}}`),
			"portal":        json.RawMessage(`{"token": "x", "portal": 1}`),
		},
		Delivered: func(t *testing.T, rows []schemas.Row) {
			got := f.Snapshot()
			c := got["charlotte.nguyen+footy@example.com"]
			if c["firstname"] != "Charlotte" || c["rokt_subscription_status"] != "subscribed" || c["zip"] != "3121" || c["rokt_calendars"] != "scfl-2025-fixtures" {
				t.Errorf("Charlotte in HubSpot: %v", c)
			}
			if a := got["ann.smith@example.org"]; a["rokt_subscription_status"] != "unsubscribed" || a["rokt_calendar"] != "TVRC Home Fixtures 2025/26" {
				t.Errorf("Ann in HubSpot: %v", a)
			}
			if len(got) != 2 {
				t.Errorf("%d contacts in HubSpot, want 2", len(got))
			}
		},
		Failing:     settingsFor(failing, failing.Token),
		FailingRows: rows,
		FailingSeqs: []int64{102},
	})
}

// TestConfigure: settings and mapping are refused naming the field, without a request.
func TestConfigure(t *testing.T) {
	f := newFakeHubSpot(t)
	noStatus := map[string]string{"email": "email", "first_name": "firstname"}
	cases := []struct {
		name    string
		set     string
		mapping map[string]string
		field   string // "" when the configuration is valid
	}{
		{"valid", `{"token": "t"}`, testMapping, ""},
		{"status property by setting", `{"token": "t", "status_property": "rokt_subscription_status"}`, noStatus, ""},
		{"status from contact_status", `{"token": "t"}`, map[string]string{"email": "email", "contact_status": "rokt_subscription_status"}, ""},
		{"status values", `{"token": "t", "status_values": {"subscribed": "Subscribed", "unsubscribed": "Unsubscribed"}}`, testMapping, ""},
		{"no token", `{}`, testMapping, "token"},
		{"token with a line break", `{"token": "pat-na1-abc\n"}`, testMapping, "token"},
		{"relative base_url", `{"token": "t", "base_url": "/crm"}`, testMapping, "base_url"},
		{"base_url with a query", `{"token": "t", "base_url": "https://api.hubapi.com?hapikey=x"}`, testMapping, "base_url"},
		{"negative timeout", `{"token": "t", "timeout": "-1s"}`, testMapping, "timeout"},
		{"one status value", `{"token": "t", "status_values": {"subscribed": "in"}}`, testMapping, "status_values"},
		{"unknown status value key", `{"token": "t", "status_values": {"subscribed": "in", "unsubscribed": "out", "pending": "p"}}`, testMapping, "pending"},
		{"unknown setting", `{"token": "t", "hapikey": "x"}`, testMapping, "hapikey"},
		{"no status property", `{"token": "t"}`, noStatus, "status_property"},
		{"status property mapped from another column", `{"token": "t", "status_property": "firstname"}`, noStatus, "status_property"},
		{"label instead of internal name", `{"token": "t"}`, map[string]string{"email": "email", "status": "Subscription Status"}, "mapping"},
		{"no mapping", `{"token": "t"}`, nil, "mapping"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var raw map[string]any
			if err := json.Unmarshal([]byte(c.set), &raw); err != nil {
				t.Fatal(err)
			}
			if _, ok := raw["base_url"]; !ok {
				raw["base_url"] = f.URL
			}
			set, _ := json.Marshal(raw)
			var mp *schemas.Mapping
			if c.mapping != nil {
				mp = mustMapping(t, c.mapping)
			}
			err := New().Configure(context.Background(), sdk.Config{Name: "crm", Settings: set, Mapping: mp})
			var se *sdk.SettingsError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.field != "" && (!errors.As(err, &se) || se.Field != c.field):
				t.Fatalf("got %v, want a settings error naming %q", err, c.field)
			}
		})
	}
	f.With(func(f *fakeHubSpot) {
		if f.Requests != 0 {
			t.Errorf("Configure made %d requests", f.Requests)
		}
	})
}

// TestPropertyValues: values reach HubSpot formatted for their property types (the fake
// refuses what HubSpot refuses), and the status property follows the contact's status over
// all their subscriptions: an Unsubscribe that leaves another subscription keeps the contact
// subscribed, the last one unsubscribes it, and the contact is never deleted.
func TestPropertyValues(t *testing.T) {
	m := map[string]string{"email": "email", "first_name": "firstname", "postcode": "zip", "status": "rokt_subscription_status",
		"contact_calendars": "rokt_calendars", "tag_names": "rokt_tags", "subscribed_at": "rokt_subscribed_on",
		"unsubscribed_at": "rokt_unsubscribed_at", "contact_active_subscriptions": "rokt_active_subscriptions",
		"marketing_consent": "rokt_marketing_consent", "account_name": "rokt_account"}
	f := newFakeHubSpot(t)
	s := openSink(t, settingsFor(f, f.Token), m, nil)
	const key = "charlotte@example.com"

	subscribed := time.Date(2025, 9, 1, 21, 45, 12, 0, time.UTC)
	consent := true
	r1 := fan(1, "Charlotte@example.com", "Subscribe", []string{"scfl", "tvrc"}, nil)
	r1.FirstName, r1.TagNames, r1.SubscribedAt, r1.MarketingConsent, r1.AccountName = "Charlotte", []string{"home", "finals"}, &subscribed, &consent, "SCFL"
	r2 := fan(2, "Charlotte@example.com", "Unsubscribe", []string{"tvrc"}, []string{"scfl"})
	unsubscribed := time.Date(2025, 10, 2, 8, 15, 30, 500e6, time.UTC)
	r2.UnsubscribedAt = &unsubscribed
	r3 := fan(3, "Charlotte@example.com", "Unsubscribe", nil, []string{"scfl", "tvrc"})

	steps := []struct {
		row  schemas.Row
		want map[string]string // "" means absent
	}{
		{r1, map[string]string{"firstname": "Charlotte", "zip": "3121", "rokt_subscription_status": "subscribed", "rokt_calendars": "scfl;tvrc",
			"rokt_tags": "home;finals", "rokt_subscribed_on": "2025-09-01", "rokt_active_subscriptions": "2", "rokt_marketing_consent": "true",
			"rokt_account": "SCFL", "rokt_unsubscribed_at": ""}},
		{r2, map[string]string{"firstname": "Charlotte", "rokt_subscription_status": "subscribed", "rokt_calendars": "tvrc",
			"rokt_active_subscriptions": "1", "rokt_unsubscribed_at": "2025-10-02T08:15:30.500Z", "rokt_subscribed_on": "2025-09-01"}},
		{r3, map[string]string{"firstname": "Charlotte", "rokt_subscription_status": "unsubscribed", "rokt_calendars": "",
			"rokt_active_subscriptions": "0"}},
	}
	for i, st := range steps {
		b, err := write(t, s, m, fmt.Sprint("b", i), []schemas.Row{st.row})
		if err != nil || len(b.Results()) != 0 {
			t.Fatalf("step %d: %v %+v", i+1, err, b.Results())
		}
		c, ok := f.Snapshot()[key]
		if !ok {
			t.Fatalf("step %d: the contact is not in HubSpot", i+1)
		}
		for prop, want := range st.want {
			if c[prop] != want {
				t.Errorf("step %d: %s = %q, want %q", i+1, prop, c[prop], want)
			}
		}
	}
	f.With(func(f *fakeHubSpot) {
		if f.Deletes != 0 || !f.TraceUsed {
			t.Errorf("%d deletes; trace ids sent: %v", f.Deletes, f.TraceUsed)
		}
	})

	t.Run("status values of an enumeration", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Props["rokt_subscription_status"] = fakeProp("rokt_subscription_status", "enumeration", "radio", "Subscribed", "Unsubscribed")
		s := openSink(t, settingsFor(f, f.Token, func(s *Settings) { s.StatusValues = &StatusValues{"Subscribed", "Unsubscribed"} }), testMapping, nil)
		if _, err := write(t, s, testMapping, "b", []schemas.Row{fan(1, "a@example.com", "Unsubscribe", nil, []string{"afl"})}); err != nil {
			t.Fatal(err)
		}
		if got := f.Snapshot()["a@example.com"]["rokt_subscription_status"]; got != "Unsubscribed" {
			t.Errorf("status %q", got)
		}
	})
	t.Run("status property named by setting", func(t *testing.T) {
		f := newFakeHubSpot(t)
		m := map[string]string{"email": "email"}
		s := openSink(t, settingsFor(f, f.Token, func(s *Settings) { s.StatusProperty = "rokt_subscription_status" }), m, nil)
		if _, err := write(t, s, m, "b", []schemas.Row{fan(1, "a@example.com", "Unsubscribe", []string{"afl"}, []string{"scfl"})}); err != nil {
			t.Fatal(err)
		}
		if got := f.Snapshot()["a@example.com"]["rokt_subscription_status"]; got != "subscribed" {
			t.Errorf("status %q, want subscribed (still on afl)", got)
		}
	})
	t.Run("token without the schema scope", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.SchemaReadable = false
		var logs bytes.Buffer
		s := openSink(t, settingsFor(f, f.Token), testMapping, slog.New(slog.NewTextHandler(&logs, nil)))
		b, err := write(t, s, testMapping, "b", []schemas.Row{fan(1, "a@example.com", "Subscribe", []string{"afl"}, nil)})
		if err != nil || len(b.Results()) != 0 || f.Snapshot()["a@example.com"]["rokt_calendars"] != "afl" {
			t.Fatalf("%v %+v %v", err, b.Results(), f.Snapshot())
		}
		if !strings.Contains(logs.String(), "crm.schemas.contacts.read") {
			t.Errorf("no warning about the scope: %s", logs.String())
		}
	})
}

// contactHistory makes n subscribers with one to three subscriptions each, some ended, and
// returns the latest row of each contact as the engine sends it (coalesced by email_key,
// with the state of all their subscriptions), and the state HubSpot must end in.
func contactHistory(n int, seed uint64) ([]schemas.Row, map[string]map[string]string) {
	rng := rand.New(rand.NewPCG(seed, seed))
	want := map[string]map[string]string{}
	var rows []schemas.Row
	for i := range n {
		email := fmt.Sprintf("Fan.%04d@example.com", i)
		cals := []string{"scfl", "tvrc", "afl"}
		rng.Shuffle(len(cals), func(a, b int) { cals[a], cals[b] = cals[b], cals[a] })
		cals = cals[:1+rng.IntN(3)]
		var active, ended []string
		latest, latestEnded := "", false
		for j, c := range cals {
			if rng.IntN(2) == 0 {
				ended = append(ended, c)
				latest, latestEnded = c, true // the Unsubscribe comes after every Subscribe
			} else {
				active = append(active, c)
				if !latestEnded || j == 0 {
					latest = c
				}
			}
		}
		slices.Sort(active)
		slices.Sort(ended)
		ev := "Subscribe"
		if latestEnded {
			ev = "Unsubscribe"
		}
		r := fan(int64(10000+i), email, ev, active, ended)
		r.CalendarCode, r.CalendarTitle = latest, strings.ToUpper(latest)+" Fixtures"
		rows = append(rows, r)
		w := map[string]string{"rokt_subscription_status": r.ContactStatus, "rokt_calendars": strings.Join(active, ";"),
			"rokt_calendar": r.CalendarTitle, "firstname": r.FirstName, "zip": r.Postcode}
		want[strings.ToLower(email)] = w
	}
	return rows, want
}

// TestRunWithInjectedFailures drives 3,000 subscribers through the engine's loop
// (sinktest.Drive: rows marked Retry go again, SinkDown waits are honoured) against a
// HubSpot that fails 30 % of requests with 5xx (some after applying them), answers some 429s,
// refuses some inputs transiently and one email for good. Every good subscriber ends in the
// state of all their subscriptions, the bad one is failed with HubSpot's reason, no
// contact is deleted, and sending everything again changes nothing.
func TestRunWithInjectedFailures(t *testing.T) {
	f := newFakeHubSpot(t)
	f.Max, f.Window = 100, 200*time.Millisecond // HubSpot's 100 per 10 s, 50 times faster
	f.Fail5xx, f.Throttle, f.InputErr = 0.3, 0.1, 0.02
	rows, want := contactHistory(3000, 42)
	badSeq, bad := rows[1234].Seq, rows[1234].EmailKey
	f.Bad[bad] = true
	var logs bytes.Buffer
	s := openSink(t, settingsFor(f, f.Token), testMapping, slog.New(slog.NewTextHandler(&logs, nil)))

	out := sinktest.Drive(t, s, testMapping, rows, time.Second)
	if r, ok := out.Failed[badSeq]; len(out.Failed) != 1 || !ok || !strings.Contains(r.Reason, "INVALID_EMAIL") || !strings.Contains(r.Reason, "Email address "+rows[1234].Email+" is invalid") {
		t.Fatalf("failed rows %+v, want only %d with HubSpot's INVALID_EMAIL message", out.Failed, badSeq)
	}
	if len(out.Delivered) != len(rows)-1 {
		t.Errorf("%d rows delivered, want %d", len(out.Delivered), len(rows)-1)
	}
	got := f.Snapshot()
	kinds := map[string]int{}
	for key, w := range want {
		if key == bad {
			if _, ok := got[key]; ok {
				t.Error("the refused email is in HubSpot")
			}
			continue
		}
		for prop, v := range w {
			if got[key][prop] != v {
				t.Errorf("%s: %s = %q, want %q", key, prop, got[key][prop], v)
			}
		}
		kinds[w["rokt_subscription_status"]+"/"+fmt.Sprint(w["firstname"] == "")]++
	}
	if len(got) != len(want)-1 {
		t.Errorf("HubSpot holds %d contacts, want %d: no contact but the good subscribers", len(got), len(want)-1)
	}
	// The history holds every case: subscribed, unsubscribed from everything, and
	// unsubscribed from one calendar while still on another.
	if kinds["subscribed/false"] == 0 || kinds["unsubscribed/true"] == 0 || kinds["subscribed/true"] == 0 {
		t.Errorf("the history misses a case: %v", kinds)
	}
	var injected, deletes, maxInputs, provoked int
	f.With(func(f *fakeHubSpot) {
		injected, deletes, maxInputs, provoked = f.Injected, f.Deletes, f.MaxInputs, f.Provoked
	})
	if injected == 0 || out.SinkDowns == 0 || out.Retries == 0 {
		t.Errorf("the run met no failure (%d injected, %d sink-downs, %d rows retried): it proves nothing", injected, out.SinkDowns, out.Retries)
	}
	if deletes != 0 || maxInputs > MaxInputs || provoked != 0 {
		t.Errorf("%d deletes, %d inputs in one request, %d 429s provoked", deletes, maxInputs, provoked)
	}
	if strings.Contains(logs.String(), f.Token) {
		t.Error("the token is in the log")
	}
	t.Logf("%d writes, %d sink-downs, %d rows retried, %d failures injected", out.Writes, out.SinkDowns, out.Retries, injected)

	f.With(func(f *fakeHubSpot) { f.Fail5xx, f.Throttle, f.InputErr = 0, 0, 0 })
	again := sinktest.Drive(t, s, testMapping, rows, time.Second)
	if len(again.Failed) != 1 || len(again.Delivered) != len(rows)-1 {
		t.Errorf("sent again: %d failed, %d delivered", len(again.Failed), len(again.Delivered))
	}
	if after := f.Snapshot(); fmt.Sprint(after) != fmt.Sprint(got) {
		t.Error("sending everything again changed HubSpot's state")
	}
}

// TestAnswers: each of HubSpot's answers leads to the documented outcome, and the token never
// shows in an error or the log.
func TestAnswers(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	three := func() []schemas.Row {
		return []schemas.Row{fan(1, "a@example.com", "Subscribe", []string{"afl"}, nil), fan(2, "b@example.com", "Subscribe", []string{"afl"}, nil),
			fan(3, "c@example.com", "Unsubscribe", nil, []string{"afl"})}
	}
	run := func(t *testing.T, f *fakeHubSpot, token string, rows []schemas.Row) (*sdk.Batch, error) {
		s := openSink(t, settingsFor(f, token), testMapping, log)
		b, err := write(t, s, testMapping, "b1", rows)
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("the token is in the error: %v", err)
		}
		return b, err
	}
	sinkDown := func(t *testing.T, err error, status int) *sdk.SinkDownError {
		t.Helper()
		sd, ok := sdk.AsSinkDown(err)
		if !ok || sd.StatusCode != status || sd.Pause {
			t.Fatalf("got %v, want SinkDown with status %d", err, status)
		}
		return sd
	}

	t.Run("401 refused token", func(t *testing.T) {
		f := newFakeHubSpot(t)
		b, err := run(t, f, "pat-na1-not-the-right-secret", three())
		sinkDown(t, err, 401)
		if len(b.Results()) != 0 || len(f.Snapshot()) != 0 {
			t.Errorf("rows charged: %+v", b.Results())
		}
	})
	t.Run("403 missing write scope", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.WriteScope = false
		_, err := run(t, f, f.Token, three())
		if sd := sinkDown(t, err, 403); !strings.Contains(sd.Error(), "MISSING_SCOPES") {
			t.Errorf("error without HubSpot's category: %v", sd)
		}
	})
	t.Run("429 rolling window with Retry-After", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Throttle, f.RetryAfter = 1, "3"
		_, err := run(t, f, f.Token, three())
		if sd := sinkDown(t, err, 429); sd.RetryAfter != 3*time.Second {
			t.Errorf("wait %v, want Retry-After's 3s", sd.RetryAfter)
		}
	})
	t.Run("429 rolling window without Retry-After", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Window = 250 * time.Millisecond
		s := openSink(t, settingsFor(f, f.Token), testMapping, log)
		if _, err := write(t, s, testMapping, "b0", three()[:1]); err != nil {
			t.Fatal(err)
		}
		f.With(func(f *fakeHubSpot) { f.Throttle = 1 })
		_, err := write(t, s, testMapping, "b1", three())
		if sd := sinkDown(t, err, 429); sd.RetryAfter != 250*time.Millisecond {
			t.Errorf("wait %v, want the window's interval from the headers", sd.RetryAfter)
		}
	})
	t.Run("429 daily limit", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.DailyUsed = f.Daily
		_, err := run(t, f, f.Token, three())
		if sd := sinkDown(t, err, 429); sd.RetryAfter <= 0 || sd.RetryAfter > 61*time.Minute {
			t.Errorf("wait %v, want until the next whole hour", sd.RetryAfter)
		}
	})
	t.Run("429 by policy", func(t *testing.T) {
		// Each policyName branch on its own: the 429s are injected with room left in the day
		// and the window, so the pacer learns nothing from the headers and the wait is
		// throttled's alone. The clock is pinned at 10:20 UTC.
		t0 := time.Date(2025, 9, 1, 10, 20, 0, 0, time.UTC)
		for _, c := range []struct {
			policy, retryAfter string
			want               time.Duration
		}{
			{"TEN_SECONDLY_ROLLING", "", 250 * time.Millisecond}, // one window, from the headers
			{"SECONDLY", "", time.Second},
			{"DAILY", "", 41 * time.Minute}, // until 11:01, the next whole hour and a minute
			{"TEN_SECONDLY_ROLLING", "3", 3 * time.Second},
			{"SECONDLY", "3", 3 * time.Second},
			{"DAILY", "3", 3 * time.Second}, // Retry-After wins
		} {
			t.Run(c.policy+" Retry-After "+c.retryAfter, func(t *testing.T) {
				f := newFakeHubSpot(t)
				f.Window, f.Throttle, f.ThrottlePolicy, f.RetryAfter = 250*time.Millisecond, 1, c.policy, c.retryAfter
				s := openSink(t, settingsFor(f, f.Token), testMapping, log)
				s.now = func() time.Time { return t0 }
				_, err := write(t, s, testMapping, "b1", three())
				if sd := sinkDown(t, err, 429); sd.RetryAfter != c.want || !strings.Contains(err.Error(), c.policy) {
					t.Errorf("got %v waiting %v, want %v", err, sd.RetryAfter, c.want)
				}
				if !s.pace.blocked.Equal(t0.Add(c.want)) {
					t.Errorf("the pacer holds requests until %v, want %v", s.pace.blocked, t0.Add(c.want))
				}
				f.With(func(f *fakeHubSpot) {
					if f.Requests != 1 || f.Injected != 1 {
						t.Errorf("%d requests (%d 429s), want the one refused", f.Requests, f.Injected)
					}
				})
			})
		}
	})
	t.Run("5xx retries the rows", func(t *testing.T) {
		f := newFakeHubSpot(t)
		s := openSink(t, settingsFor(f, f.Token), testMapping, log)
		if err := s.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.With(func(f *fakeHubSpot) { f.Fail5xx = 1 })
		b, err := write(t, s, testMapping, "b1", three())
		if err != nil {
			t.Fatal(err)
		}
		got := marks(b)
		for _, seq := range []int64{1, 2, 3} {
			if r := got[seq]; r.Outcome != sdk.Retry || r.StatusCode < 500 {
				t.Errorf("row %d: %+v, want a retry with the 5xx status", seq, r)
			}
		}
	})
	t.Run("207 fails the invalid email only", func(t *testing.T) {
		f := newFakeHubSpot(t)
		rows := three()
		rows[1] = fan(2, "b@example.c", "Subscribe", []string{"afl"}, nil) // an address to hookbridge, not to HubSpot
		b, err := run(t, f, f.Token, rows)
		got := marks(b)
		if err != nil || len(got) != 1 || got[2].Outcome != sdk.Failed || got[2].StatusCode != 207 || !strings.Contains(got[2].Reason, "Email address b@example.c is invalid") {
			t.Fatalf("%v %+v", err, got)
		}
		if c := f.Snapshot(); len(c) != 2 || c["c@example.com"]["rokt_subscription_status"] != "unsubscribed" {
			t.Errorf("HubSpot: %v", c)
		}
	})
	t.Run("a placeholder address is failed unsent", func(t *testing.T) {
		f := newFakeHubSpot(t)
		rows := three()
		rows[1] = fan(2, "N/A", "Subscribe", []string{"afl"}, nil)
		b, err := run(t, f, f.Token, rows)
		got := marks(b)
		if err != nil || len(got) != 1 || got[2].Outcome != sdk.Failed || got[2].StatusCode != 0 || !strings.Contains(got[2].Reason, "not an email address") {
			t.Fatalf("%v %+v", err, got)
		}
		if c := f.Snapshot(); len(c) != 2 {
			t.Errorf("HubSpot: %v", c)
		}
	})
	t.Run("400 naming one input fails it and sends the others", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.MultiStatus = false
		f.Bad["b@example.com"] = true
		b, err := run(t, f, f.Token, three())
		got := marks(b)
		if err != nil || len(got) != 1 || got[2].Outcome != sdk.Failed || got[2].StatusCode != 400 || !strings.Contains(got[2].Reason, "INVALID_EMAIL") {
			t.Fatalf("%v %+v", err, got)
		}
		if c := f.Snapshot(); len(c) != 2 || f.Upserts != 2 {
			t.Errorf("HubSpot after %d upserts: %v", f.Upserts, c)
		}
	})
	t.Run("409 naming no input retries the rows", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Conflict = true
		b, err := run(t, f, f.Token, three())
		got := marks(b)
		if err != nil || len(got) != 3 || got[1].Outcome != sdk.Retry || got[1].StatusCode != 409 || !strings.Contains(got[1].Reason, "CONFLICT") {
			t.Fatalf("%v %+v", err, got)
		}
	})
	t.Run("400 naming no input lets the host split", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.MultiStatus, f.NameBadInput = false, false
		f.Bad["b@example.com"] = true
		_, err := run(t, f, f.Token, three())
		if br, ok := sdk.AsRejected(err); !ok || br.StatusCode != 400 || !strings.Contains(br.Reason, "INVALID_EMAIL") {
			t.Fatalf("got %v, want the batch rejected with HubSpot's reason", err)
		}
	})
	t.Run("missing property pauses before sending", func(t *testing.T) {
		f := newFakeHubSpot(t)
		delete(f.Props, "rokt_calendars")
		_, err := run(t, f, f.Token, three())
		if sd, ok := sdk.AsSinkDown(err); !ok || !sd.Pause || !strings.Contains(err.Error(), "rokt_calendars") {
			t.Fatalf("got %v, want a pause naming rokt_calendars", err)
		}
		if f.Upserts != 0 {
			t.Errorf("%d upserts sent", f.Upserts)
		}
	})
	t.Run("missing property refused by HubSpot pauses", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.SchemaReadable = false
		delete(f.Props, "rokt_calendars")
		_, err := run(t, f, f.Token, three())
		if sd, ok := sdk.AsSinkDown(err); !ok || !sd.Pause || sd.StatusCode != 400 || !strings.Contains(err.Error(), "PROPERTY_DOESNT_EXIST") {
			t.Fatalf("got %v, want a pause with HubSpot's reason", err)
		}
	})
	t.Run("status value not an option pauses", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Props["rokt_subscription_status"] = fakeProp("rokt_subscription_status", "enumeration", "select", "Subscribed", "Unsubscribed")
		_, err := run(t, f, f.Token, three())
		if sd, ok := sdk.AsSinkDown(err); !ok || !sd.Pause || !strings.Contains(err.Error(), "status_values") {
			t.Fatalf("got %v, want a pause pointing at status_values", err)
		}
	})
	t.Run("a new calendar not among a property's options pauses", func(t *testing.T) {
		// Failing the rows would lose every subscriber of the new calendar for good; the
		// option is the operator's to add.
		f := newFakeHubSpot(t)
		f.Props["rokt_calendars"] = fakeProp("rokt_calendars", "enumeration", "checkbox", "afl")
		rows := three()
		rows[1] = fan(2, "b@example.com", "Subscribe", []string{"summer-fest"}, nil)
		_, err := run(t, f, f.Token, rows)
		if sd, ok := sdk.AsSinkDown(err); !ok || !sd.Pause || !strings.Contains(err.Error(), "summer-fest") || !strings.Contains(err.Error(), "add the option") {
			t.Fatalf("got %v, want a pause naming the value and the fix", err)
		}
	})
	t.Run("more than 100 rows go in parts", func(t *testing.T) {
		f := newFakeHubSpot(t)
		var rows []schemas.Row
		for i := range 250 {
			rows = append(rows, fan(int64(i+1), fmt.Sprintf("fan%d@example.com", i), "Subscribe", []string{"afl"}, nil))
		}
		b, err := run(t, f, f.Token, rows)
		if err != nil || len(b.Results()) != 0 || len(f.Snapshot()) != 250 || f.MaxInputs != MaxInputs || f.Upserts != 3 {
			t.Fatalf("%v %+v: %d contacts, %d upserts, at most %d inputs", err, b.Results(), len(f.Snapshot()), f.Upserts, f.MaxInputs)
		}
	})
	t.Run("row without email", func(t *testing.T) {
		f := newFakeHubSpot(t)
		rows := three()
		rows[0].Email, rows[0].EmailKey = "", ""
		b, err := run(t, f, f.Token, rows)
		if got := marks(b); err != nil || len(got) != 1 || got[1].Outcome != sdk.Failed {
			t.Fatalf("%v %+v", err, got)
		}
	})
	if strings.Contains(logs.String(), fakeToken) || strings.Contains(logs.String(), "not-the-right-secret") {
		t.Error("a token is in the log")
	}
}

// TestPacing: the sink paces itself by HubSpot's headers and provokes no 429: within its own
// window, when another client of the app uses part of the window, and at the daily limit.
func TestPacing(t *testing.T) {
	single := func(i int) []schemas.Row {
		return []schemas.Row{fan(int64(i+1), fmt.Sprintf("fan%d@example.com", i), "Subscribe", []string{"afl"}, nil)}
	}
	t.Run("own window", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Max, f.Window = 10, 300*time.Millisecond
		s := openSink(t, settingsFor(f, f.Token), testMapping, nil)
		for i := range 35 {
			if _, err := write(t, s, testMapping, fmt.Sprint("b", i), single(i)); err != nil {
				t.Fatal(err)
			}
		}
		f.With(func(f *fakeHubSpot) {
			if f.Provoked != 0 || f.Upserts != 35 || len(f.Contacts) != 35 {
				t.Errorf("%d upserts, %d contacts, %d 429s provoked", f.Upserts, len(f.Contacts), f.Provoked)
			}
		})
	})
	t.Run("another client in the window", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Max, f.Window = 10, 300*time.Millisecond
		f.Others(6)
		s := openSink(t, settingsFor(f, f.Token), testMapping, nil)
		for i := range 20 {
			if _, err := write(t, s, testMapping, fmt.Sprint("b", i), single(i)); err != nil {
				t.Fatal(err)
			}
		}
		f.With(func(f *fakeHubSpot) {
			if f.Provoked != 0 || f.Upserts != 20 {
				t.Errorf("%d upserts, %d 429s provoked", f.Upserts, f.Provoked)
			}
		})
	})
	t.Run("daily limit", func(t *testing.T) {
		f := newFakeHubSpot(t)
		f.Daily = 6 // the schema read and five upserts
		s := openSink(t, settingsFor(f, f.Token), testMapping, nil)
		for i := range 5 {
			if _, err := write(t, s, testMapping, fmt.Sprint("b", i), single(i)); err != nil {
				t.Fatal(err)
			}
		}
		_, err := write(t, s, testMapping, "b5", single(5))
		sd, ok := sdk.AsSinkDown(err)
		if !ok || sd.StatusCode != 0 || sd.RetryAfter <= 0 || sd.RetryAfter > 61*time.Minute {
			t.Fatalf("got %v, want SinkDown until the next whole hour", err)
		}
		f.With(func(f *fakeHubSpot) {
			if f.Requests != 6 || f.Daily429 != 0 {
				t.Errorf("%d requests, %d daily 429s", f.Requests, f.Daily429)
			}
		})
	})
}

// TestPacer drives the pacer with made-up times and headers.
func TestPacer(t *testing.T) {
	t0 := time.Date(2025, 9, 1, 10, 20, 0, 0, time.UTC)
	hdr := func(maxReq, remaining, intervalMS int) http.Header {
		h := http.Header{}
		h.Set(headerMax, fmt.Sprint(maxReq))
		h.Set(headerRemaining, fmt.Sprint(remaining))
		h.Set(headerInterval, fmt.Sprint(intervalMS))
		return h
	}
	t.Run("a full window waits for its oldest request", func(t *testing.T) {
		p := newPacer()
		for i := range 100 {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			if d := p.delay(at); d != 0 {
				t.Fatalf("request %d held %v", i, d)
			}
			p.done(at, at, hdr(100, 99-i, 10000))
		}
		if d := p.delay(t0.Add(100 * time.Millisecond)); d != 10*time.Second+100*time.Millisecond-100*time.Millisecond {
			t.Errorf("101st request held %v, want until the first leaves the window (10 s plus 1%%)", d)
		}
	})
	t.Run("headers raise the limit", func(t *testing.T) {
		p := newPacer()
		for i := range 150 {
			if d := p.delay(t0); d != 0 {
				t.Fatalf("request %d held %v under a limit of 190", i, d)
			}
			p.done(t0, t0, hdr(190, 189-i, 10000))
		}
	})
	t.Run("another client's requests count", func(t *testing.T) {
		p := newPacer()
		p.done(t0, t0, hdr(100, 59, 10000)) // 40 requests besides this one
		n := 1
		for ; p.delay(t0) == 0; n++ {
			p.done(t0, t0, nil)
		}
		if n != 60 {
			t.Errorf("%d requests in the window, want 60 (100 less the other client's 40)", n)
		}
	})
	t.Run("daily limit waits for the next whole hour", func(t *testing.T) {
		p := newPacer()
		h := hdr(100, 99, 10000)
		h.Set(headerDaily, "250000")
		h.Set(headerDailyRemaining, "0")
		p.done(t0, t0, h)
		if d := p.delay(t0); d != 41*time.Minute {
			t.Errorf("held %v, want 41m (11:01)", d)
		}
	})
	t.Run("a 429 blocks", func(t *testing.T) {
		p := newPacer()
		p.block(t0.Add(5 * time.Second))
		if d := p.delay(t0); d != 5*time.Second {
			t.Errorf("held %v", d)
		}
	})
}

// TestCheck: the token is verified, and every mapped property must exist, be writable and,
// for the status, offer the status values; the error names them.
func TestCheck(t *testing.T) {
	f := newFakeHubSpot(t)
	check := func(token string, m map[string]string, edit ...func(*Settings)) error {
		return openSink(t, settingsFor(f, token, edit...), m, nil).Check(context.Background())
	}
	if err := check(f.Token, testMapping); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		token   string
		mapping map[string]string
		edit    func(*Settings)
		want    string
	}{
		{"missing properties", f.Token, map[string]string{"email": "email", "postcode": "postal_code", "calendar_title": "rokt_calendar_name", "status": "rokt_subscription_status"},
			nil, "missing on contacts: postal_code, rokt_calendar_name (create them in HubSpot first)"},
		{"missing status property", f.Token, map[string]string{"email": "email"}, func(s *Settings) { s.StatusProperty = "rokt_status" }, "rokt_status"},
		{"read-only property", f.Token, map[string]string{"email": "email", "received_at": "createdate", "status": "rokt_subscription_status"}, nil, "read-only in HubSpot: createdate"},
		{"status values not options", f.Token, testMapping, func(s *Settings) { s.StatusValues = &StatusValues{"yes", "no"} }, `has no option "yes", "no"`},
		{"refused token", "pat-na1-not-the-right-secret", testMapping, nil, "refused the token (401 INVALID_AUTHENTICATION)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var edit []func(*Settings)
			if c.edit != nil {
				edit = append(edit, c.edit)
			}
			err := check(c.token, c.mapping, edit...)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.token) {
				t.Errorf("got %v, want an error saying %q (and not the token)", err, c.want)
			}
		})
	}
	t.Run("missing scope", func(t *testing.T) {
		g := newFakeHubSpot(t)
		g.SchemaReadable = false
		err := openSink(t, settingsFor(g, g.Token), testMapping, nil).Check(context.Background())
		if err == nil || !strings.Contains(err.Error(), "MISSING_SCOPES") || !strings.Contains(err.Error(), "crm.schemas.contacts.read") {
			t.Errorf("got %v", err)
		}
	})
}

// TestFakeFollowsTheDocs checks the fake's answers against the shapes HubSpot documents, so
// the other tests stand on them.
func TestFakeFollowsTheDocs(t *testing.T) {
	f := newFakeHubSpot(t)
	f.Max, f.Window, f.Daily = 3, time.Hour, 5
	post := func(token string, inputs []fakeInput) (*http.Response, map[string]any) {
		body, _ := json.Marshal(map[string]any{"inputs": inputs})
		req, _ := http.NewRequest(http.MethodPost, f.URL+"/crm/v3/objects/contacts/batch/upsert", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp, m
	}
	in := func(email, trace string) fakeInput {
		return fakeInput{IDProperty: "email", ID: email, TraceID: trace, Properties: map[string]string{"firstname": "A"}}
	}
	if resp, m := post("wrong", nil); resp.StatusCode != 401 || m["category"] != "INVALID_AUTHENTICATION" || m["status"] != "error" {
		t.Errorf("no token: %d %v", resp.StatusCode, m)
	}
	var many []fakeInput
	for i := range 101 {
		many = append(many, in(fmt.Sprintf("f%d@example.com", i), ""))
	}
	if resp, m := post(f.Token, many); resp.StatusCode != 400 || m["category"] != "VALIDATION_ERROR" || m["correlationId"] == nil {
		t.Errorf("101 inputs: %d %v", resp.StatusCode, m)
	}
	resp, m := post(f.Token, []fakeInput{in("a@example.com", "1"), in("b@example", "2")})
	errs, _ := m["errors"].([]any)
	if resp.StatusCode != 207 || len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "objectWriteTraceId:[2]") || resp.Header.Get(headerRemaining) != "1" {
		t.Errorf("invalid email with trace ids: %d %v %v", resp.StatusCode, m, resp.Header)
	}
	if resp, m := post(f.Token, []fakeInput{in("a@example.com", ""), in("b@example", "")}); resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(m["context"]), "ids:[b@example]") {
		t.Errorf("invalid email without trace ids: %d %v", resp.StatusCode, m)
	}
	resp, m = post(f.Token, []fakeInput{in("c@example.com", "")})
	if resp.StatusCode != 429 || m["policyName"] != "TEN_SECONDLY_ROLLING" || m["errorType"] != "RATE_LIMIT" || resp.Header.Get(headerRemaining) != "0" || resp.Header.Get(headerInterval) != "3600000" {
		t.Errorf("over the window: %d %v %v", resp.StatusCode, m, resp.Header)
	}
	f.With(func(f *fakeHubSpot) { f.Max, f.DailyUsed = 100, 5 })
	if resp, m := post(f.Token, []fakeInput{in("c@example.com", "")}); resp.StatusCode != 429 || m["policyName"] != "DAILY" || resp.Header.Get(headerDailyRemaining) != "0" {
		t.Errorf("over the day: %d %v", resp.StatusCode, m)
	}
	if c := f.Snapshot(); len(c) != 1 || c["a@example.com"]["firstname"] != "A" {
		t.Errorf("contacts: %v", c)
	}
	// Scripted failures answer the next requests in order, then the fake answers as before.
	f.With(func(f *fakeHubSpot) { f.DailyUsed, f.FailNext, f.ThrottlePolicy = 0, []int{503, 429}, "SECONDLY" })
	if resp, m := post(f.Token, []fakeInput{in("d@example.com", "")}); resp.StatusCode != 503 || m["category"] != "INTERNAL_ERROR" {
		t.Errorf("scripted 503: %d %v", resp.StatusCode, m)
	}
	if resp, m := post(f.Token, []fakeInput{in("d@example.com", "")}); resp.StatusCode != 429 || m["policyName"] != "SECONDLY" {
		t.Errorf("scripted 429: %d %v", resp.StatusCode, m)
	}
	if resp, _ := post(f.Token, []fakeInput{in("d@example.com", "")}); resp.StatusCode != 200 || f.Snapshot()["d@example.com"] == nil {
		t.Errorf("after the script: %d", resp.StatusCode)
	}
}

// BenchmarkPacing measures how close the sink's own header-driven pacing comes to HubSpot's
// rolling limit (100 per 10 s, scaled here to 10 per 1 s) without a 429. achieved/allowed
// is the shortest time the limit allows for the requests made, over the time they took (1
// is the limit itself). 429s counts the 429s the sink provoked. unpaced-429s is the baseline
// from the same run: the same number of requests sent back to back, without pacing, to a
// fresh fake with the same limit.
//
//	go test -tags duckdb_arrow ./sinks/hubspot -run '^$' -bench Pacing -benchtime 100x
func BenchmarkPacing(b *testing.B) {
	const limit, window = 10, time.Second
	f := newFakeHubSpot(b)
	f.Max, f.Window = limit, window
	s := openSink(b, settingsFor(f, f.Token), testMapping, nil)
	rows, _ := contactHistory(b.N, 7)
	b.ResetTimer()
	for i, r := range rows {
		if _, err := write(b, s, testMapping, fmt.Sprint("b", i), []schemas.Row{r}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var n, provoked int
	var took time.Duration
	f.With(func(f *fakeHubSpot) {
		n, provoked = len(f.Accepted), f.Provoked
		took = f.Accepted[n-1].Sub(f.Accepted[0])
	})
	ideal := time.Duration((n-1)/limit) * window
	b.ReportMetric(ideal.Seconds()/max(took.Seconds(), 1e-9), "achieved/allowed")
	b.ReportMetric(float64(provoked), "429s")

	base := newFakeHubSpot(b)
	base.Max, base.Window = limit, window
	client := &http.Client{}
	for range n {
		req, _ := http.NewRequest(http.MethodPost, base.URL+upsertPath, strings.NewReader(`{"inputs":[]}`))
		req.Header.Set("Authorization", "Bearer "+base.Token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	base.With(func(f *fakeHubSpot) { b.ReportMetric(float64(f.Provoked), "unpaced-429s") })
}
