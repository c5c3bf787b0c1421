package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

var testMapping = map[string]string{"email": "email", "first_name": "firstname", "last_name": "lastname", "postcode": "zip",
	"calendar_title": "rokt_calendar", "status": "rokt_subscription_status", "contact_calendars": "rokt_calendars"}

func settings(f *fakeHubSpot, token string) json.RawMessage {
	b, _ := json.Marshal(Settings{Token: token, BaseURL: f.srv.URL, Timeout: "5s"})
	return b
}

func openSink(t testing.TB, raw json.RawMessage, m map[string]string) *Sink {
	t.Helper()
	mp, err := schemas.NewMapping(m)
	if err != nil {
		t.Fatal(err)
	}
	s := New().(*Sink)
	if err := s.Configure(context.Background(), sdk.Config{Name: "crm", Settings: raw, Mapping: mp}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestConformance(t *testing.T) {
	f := newFakeHubSpot(t, 100, 10*time.Second)
	failing := newFakeHubSpot(t, 100, 10*time.Second)
	failing.bad["ann.smith@example.org"] = true
	rows := sinktest.DefaultRows()[:2] // the Test event has no contact: the engine never sends it here
	sinktest.Run(t, sinktest.Config{
		New:      New,
		Settings: settings(f, f.token),
		Mapping:  testMapping,
		Rows:     rows,
		BadSettings: map[string]json.RawMessage{
			"token":    json.RawMessage(`{"base_url": "https://api.hubapi.com"}`),
			"base_url": json.RawMessage(`{"token": "x", "base_url": "api.hubapi.com"}`),
			"timeout":  json.RawMessage(`{"token": "x", "timeout": "soon"}`),
			"portal":   json.RawMessage(`{"token": "x", "portal": 1}`),
		},
		Delivered: func(t *testing.T, rows []schemas.Row) {
			got := f.snapshot()
			c := got["charlotte.nguyen+footy@example.com"]
			if c["firstname"] != "Charlotte" || c["rokt_subscription_status"] != "subscribed" || c["zip"] != "3121" || c["rokt_calendars"] != "scfl-2025-fixtures" {
				t.Errorf("Charlotte in HubSpot: %v", c)
			}
			if a := got["ann.smith@example.org"]; a["rokt_subscription_status"] != "unsubscribed" {
				t.Errorf("Ann in HubSpot: %v", a)
			}
		},
		Failing:     settings(failing, failing.token),
		FailingRows: rows,
		FailingSeqs: []int64{102},
	})
}

// contactRows makes the latest row of each of n contacts, as the engine hands them over
// (coalesced by email_key), with the state of all their subscriptions: every third contact
// has ended one of two subscriptions and keeps the other, every fifth ended its only one.
func contactRows(n int) ([]schemas.Row, map[string]string) {
	want := map[string]string{}
	var rows []schemas.Row
	t0 := time.Date(2025, 9, 1, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		email := fmt.Sprintf("Fan%03d@Example.com", i)
		key := strings.ToLower(email)
		r := schemas.Row{Seq: int64(1000 + i), EventID: fmt.Sprintf("ev-%d", i), EventType: "Subscribe", Email: "Fan" + fmt.Sprintf("%03d", i) + "@example.com", EmailKey: key,
			FirstName: "Fan", LastName: fmt.Sprint(i), Postcode: "3121", CalendarTitle: "SCFL Fixtures", ReceivedAt: t0, OccurredAt: t0}
		active := int64(1)
		r.ContactCalendars = []string{"scfl"}
		switch {
		case i%5 == 0:
			r.EventType, active, r.ContactCalendars, r.ContactEndedCalendars = "Unsubscribe", 0, []string{}, []string{"scfl"}
		case i%3 == 0:
			r.EventType, r.ContactCalendars, r.ContactEndedCalendars = "Unsubscribe", []string{"tvrc"}, []string{"scfl"} // still on another calendar
		}
		r.ContactActiveSubscriptions = &active
		r.ContactStatus = "subscribed"
		if active == 0 {
			r.ContactStatus = "unsubscribed"
		}
		r.Status = r.ContactStatus
		if r.EventType == "Unsubscribe" {
			r.Status = "unsubscribed"
		}
		r.EventTypeSent = r.EventType
		want[key] = r.ContactStatus
		rows = append(rows, r)
	}
	return rows, want
}

// TestRunWithInjectedFailures drives 2,000 contacts through a HubSpot that fails 30% of
// requests, answers some 429s and refuses one email: every good contact ends in the right
// state, the bad one is dead-lettered with HubSpot's reason, no contact is deleted, and
// sending everything again changes nothing.
func TestRunWithInjectedFailures(t *testing.T) {
	f := newFakeHubSpot(t, 1000, time.Second)
	f.failRate, f.rate429 = 0.3, 0.1
	rows, want := contactRows(2000)
	bad := strings.ToLower(rows[77].Email)
	f.bad[bad] = true
	s := openSink(t, settings(f, f.token), testMapping)
	out := sinktest.Drive(t, s, testMapping, rows, 20*time.Millisecond)
	if len(out.Failed) != 1 || out.Failed[rows[77].Seq].Outcome != sdk.Failed || !strings.Contains(out.Failed[rows[77].Seq].Reason, "INVALID_EMAIL") {
		t.Fatalf("failed rows %+v, want only the bad email with HubSpot's reason", out.Failed)
	}
	got := f.snapshot()
	for key, status := range want {
		if key == bad {
			if _, ok := got[key]; ok {
				t.Error("the refused email is in HubSpot")
			}
			continue
		}
		if got[key]["rokt_subscription_status"] != status {
			t.Errorf("%s: status %q, want %q (over all subscriptions)", key, got[key]["rokt_subscription_status"], status)
		}
	}
	if got["fan003@example.com"]["rokt_calendars"] != "tvrc" {
		t.Errorf("fan003 keeps its other calendar: %v", got["fan003@example.com"])
	}
	f.mu.Lock()
	injected, deletes, maxInputs := f.injected, f.deletes, f.maxInputs
	f.mu.Unlock()
	if injected == 0 || out.SinkDowns == 0 || out.Retries == 0 {
		t.Errorf("the run met no failure (%d injected, %d sink-downs, %d retried rows): it proves nothing", injected, out.SinkDowns, out.Retries)
	}
	if deletes != 0 || maxInputs > MaxInputs {
		t.Errorf("%d deletes, %d inputs in one request", deletes, maxInputs)
	}
	t.Logf("%d writes, %d sink-downs, %d rows retried, %d failures injected", out.Writes, out.SinkDowns, out.Retries, injected)

	before := f.snapshot()
	f.failRate, f.rate429 = 0, 0
	sinktest.Drive(t, s, testMapping, rows, 20*time.Millisecond)
	after := f.snapshot()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Error("sending everything again changed HubSpot's state")
	}
}

// TestPacingProvokesNo429: with a rolling window of 10 requests per second, 35 batches go
// through without one 429: the sink waits for the window instead.
func TestPacingProvokesNo429(t *testing.T) {
	f := newFakeHubSpot(t, 10, time.Second)
	s := openSink(t, settings(f, f.token), testMapping)
	rows, _ := contactRows(35)
	for i, r := range rows {
		b := sdk.NewBatch(fmt.Sprint("b", i), 1, sinktest.Record(t, s.Spec(), testMapping, []schemas.Row{r}), mustMapping(t))
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got429 != 0 || f.requests != 35 {
		t.Errorf("%d requests, %d answered 429", f.requests, f.got429)
	}
}

func mustMapping(t testing.TB) *schemas.Mapping {
	m, err := schemas.NewMapping(testMapping)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRateLimitAnswers: a 429 of the rolling window and of the daily limit back the sink off
// for as long as HubSpot says, and a refused token stops the sink without charging rows or
// showing the token.
func TestRateLimitAnswers(t *testing.T) {
	f := newFakeHubSpot(t, 100, 10*time.Second)
	f.rate429 = 1
	s := openSink(t, settings(f, f.token), testMapping)
	rows, _ := contactRows(2)
	write := func() error {
		return s.Write(context.Background(), sdk.NewBatch("b", 1, sinktest.Record(t, s.Spec(), testMapping, rows), mustMapping(t)))
	}
	sd, ok := sdk.AsSinkDown(write())
	if !ok || sd.StatusCode != 429 || sd.RetryAfter != time.Second {
		t.Fatalf("rolling-window 429: %+v", sd)
	}
	f.mu.Lock()
	f.rate429, f.dailyUsed = 0, f.daily
	f.mu.Unlock()
	s.pace = newPacer(time.Now)
	sd, ok = sdk.AsSinkDown(write())
	if !ok || sd.RetryAfter < time.Minute {
		t.Fatalf("daily 429: %+v", sd)
	}

	wrong := openSink(t, settings(f, "pat-na1-wrong-token-secret"), testMapping)
	err := wrong.Write(context.Background(), sdk.NewBatch("b", 1, sinktest.Record(t, s.Spec(), testMapping, rows), mustMapping(t)))
	sd, ok = sdk.AsSinkDown(err)
	if !ok || sd.StatusCode != 401 || strings.Contains(err.Error(), "wrong-token-secret") {
		t.Fatalf("refused token: %v", err)
	}
}

// TestCheck: the token is verified and every mapped property must exist, by name.
func TestCheck(t *testing.T) {
	f := newFakeHubSpot(t, 100, 10*time.Second)
	if err := openSink(t, settings(f, f.token), testMapping).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{"email": "email", "postcode": "postal_code", "calendar_title": "rokt_calendar_name"}
	err := openSink(t, settings(f, f.token), m).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "postal_code, rokt_calendar_name") {
		t.Errorf("missing properties: %v", err)
	}
	err = openSink(t, settings(f, "nope"), testMapping).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("bad token: %v", err)
	}
}

// BenchmarkRateLimitedThroughput measures requests per window against HubSpot's limit (100
// per rolling 10 s, scaled here to 10 per second): achieved/allowed, and the 429s provoked.
//
//	go test ./sinks/hubspot -run '^$' -bench RateLimited -benchtime 60x
func BenchmarkRateLimitedThroughput(b *testing.B) {
	f := newFakeHubSpot(b, 10, time.Second)
	s := openSink(b, settings(f, f.token), testMapping)
	rows, _ := contactRows(b.N)
	b.ResetTimer()
	start := time.Now()
	for i, r := range rows {
		batch := sdk.NewBatch(fmt.Sprint("b", i), 1, sinktest.Record(b, s.Spec(), testMapping, []schemas.Row{r}), mustMapping(b))
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// A rolling window allows one window's worth at once, then one window's worth per window.
	allowed := 10 * (elapsed.Seconds() + 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	b.ReportMetric(float64(f.requests)/allowed, "achieved/allowed")
	b.ReportMetric(float64(f.got429), "429s")
}
