package mailchimp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

var testMapping = map[string]string{"email": "email", "first_name": "FNAME", "last_name": "LNAME", "postcode": "ZIP"}

func settings(f *fakeMailchimp, extra string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"api_key": %q, "list_id": %q, "base_url": %q, "tags_from": ["calendar_code", "postcode"], "timeout": "5s"%s}`, f.key, f.list, f.srv.URL, extra))
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
	failing.bad["ann.smith@example.org"] = true
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
			c := f.member("charlotte.nguyen+footy@example.com")
			if c == nil || c.Status != "subscribed" || c.Merge["FNAME"] != "Charlotte" || c.Merge["ZIP"] != "3121" || !c.Tags["calendar:scfl-2025-fixtures"] || !c.Tags["postcode:3121"] {
				t.Errorf("Charlotte in the audience: %+v", c)
			}
			if a := f.member("ann.smith@example.org"); a == nil || a.Status != "unsubscribed" {
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
	write := func(s *Sink, rows ...schemas.Row) {
		t.Helper()
		b := sdk.NewBatch("b", 1, sinktest.Record(t, s.Spec(), testMapping, rows), mustMapping(t))
		if err := s.Write(context.Background(), b); err != nil || len(b.Results()) > 0 {
			t.Fatalf("%v %+v", err, b.Results())
		}
	}
	s := openSink(t, settings(f, ""))
	write(s, fan(1, "yes@example.com", true, []string{"scfl", "tvrc"}, nil, "Subscribe"),
		fan(2, "no@example.com", false, []string{"scfl"}, nil, "Subscribe"),
		fan(3, "both@example.com", true, []string{"scfl", "tvrc"}, nil, "Subscribe"))
	if m := f.member("yes@example.com"); m.Status != "subscribed" || !m.Tags["calendar:scfl"] || !m.Tags["calendar:tvrc"] {
		t.Errorf("with consent: %+v", m)
	}
	if m := f.member("no@example.com"); m.Status != "pending" {
		t.Errorf("without consent: %+v", m)
	}
	// both@ ends scfl but keeps tvrc; yes@ ends both.
	write(s, fan(4, "both@example.com", true, []string{"tvrc"}, []string{"scfl"}, "Unsubscribe"),
		fan(5, "yes@example.com", true, nil, []string{"scfl", "tvrc"}, "Unsubscribe"))
	if m := f.member("both@example.com"); m.Status != "subscribed" || m.Tags["calendar:scfl"] || !m.Tags["calendar:tvrc"] {
		t.Errorf("an Unsubscribe with another subscription left: %+v", m)
	}
	if m := f.member("yes@example.com"); m.Status != "unsubscribed" || m.Tags["calendar:scfl"] || m.Tags["calendar:tvrc"] {
		t.Errorf("an Unsubscribe of the last subscription: %+v", m)
	}
	skip := openSink(t, settings(f, `, "without_consent": "skip"`))
	write(skip, fan(6, "quiet@example.com", false, []string{"scfl"}, nil, "Subscribe"))
	if m := f.member("quiet@example.com"); m != nil {
		t.Errorf("without_consent: skip sent %+v", m)
	}
	tx := openSink(t, settings(f, `, "without_consent": "transactional", "double_opt_in": true`))
	write(tx, fan(7, "tx@example.com", false, []string{"scfl"}, nil, "Subscribe"), fan(8, "doi@example.com", true, []string{"scfl"}, nil, "Subscribe"))
	if m := f.member("tx@example.com"); m.Status != "transactional" {
		t.Errorf("without_consent: transactional: %+v", m)
	}
	if m := f.member("doi@example.com"); m.Status != "pending" {
		t.Errorf("double opt-in: %+v", m)
	}

	// A member Mailchimp has keeps its status when the row would only make them pending or
	// transactional (no downgrade, no second confirmation email); their merge fields change.
	both := fan(9, "both@example.com", false, []string{"tvrc", "hcn"}, []string{"scfl"}, "Subscribe")
	both.FirstName = "Renamed"
	write(s, both)
	if m := f.member("both@example.com"); m.Status != "subscribed" || m.Merge["FNAME"] != "Renamed" || !m.Tags["calendar:hcn"] {
		t.Errorf("an existing subscriber's row without consent: %+v", m)
	}
	write(tx, fan(10, "both@example.com", true, []string{"tvrc", "hcn"}, []string{"scfl"}, "Subscribe"))
	if m := f.member("both@example.com"); m.Status != "subscribed" {
		t.Errorf("double opt-in made an existing subscriber pending again: %+v", m)
	}
	// Consent on the row subscribes a pending member; an unsubscribed contact stays unsubscribed
	// until a row with an active subscription and consent comes.
	write(s, fan(11, "no@example.com", true, []string{"scfl"}, nil, "Subscribe"))
	if m := f.member("no@example.com"); m.Status != "subscribed" {
		t.Errorf("consent given later: %+v", m)
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
// tags and, without consent, their merge fields go through their own endpoints) through an audience that fails 30% of requests, answers 429
// and bodiless 403s, and refuses one address: every good member ends right, the bad one is
// dead-lettered with Mailchimp's reason, no request ever used an 11th connection, and sending
// everything again changes nothing.
func TestRunWithInjectedFailures(t *testing.T) {
	f := newFakeMailchimp(t)
	var rows []schemas.Row
	want := map[string]string{}
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
		switch {
		case len(active) == 0:
			want[email] = "unsubscribed"
		case consent, i%2 == 0: // members from before keep their status without consent
			want[email] = "subscribed"
		default:
			want[email] = "pending"
		}
	}
	s := openSink(t, settings(f, ""))
	// Half the audience exists already, subscribed to scfl.
	sinktest.Drive(t, s, testMapping, func() []schemas.Row {
		var old []schemas.Row
		for i := 0; i < len(rows); i += 2 {
			old = append(old, fan(rows[i].Seq, rows[i].Email, true, []string{"scfl"}, nil, "Subscribe"))
		}
		return old
	}(), time.Millisecond)
	bad := "fan0777@example.com"
	f.mu.Lock()
	f.bad[bad] = true
	f.failRate, f.rate429, f.rate403 = 0.3, 0.05, 0.05
	f.delay = time.Millisecond
	f.mu.Unlock()

	out := sinktest.Drive(t, s, testMapping, rows, 5*time.Millisecond)
	if len(out.Failed) != 1 || !strings.Contains(out.Failed[778].Reason, "looks fake or invalid") {
		t.Fatalf("failed rows %+v, want only %s with Mailchimp's reason", out.Failed, bad)
	}
	for email, status := range want {
		m := f.member(email)
		if email == bad {
			continue
		}
		if m == nil || m.Status != status {
			t.Fatalf("%s: %+v, want %s", email, m, status)
		}
		if m.Tags["calendar:scfl"] && status != "pending" && status != "subscribed" {
			t.Errorf("%s kept the tag of the calendar it left: %+v", email, m)
		}
	}
	if m := f.member("fan0001@example.com"); m.Tags["calendar:scfl"] || !m.Tags["calendar:tvrc"] {
		t.Errorf("fan0001 moved from scfl to tvrc: %+v", m)
	}
	f.mu.Lock()
	maxActive, over, injected, maxBatch := f.maxActive, f.over, f.injected, f.maxBatch
	f.mu.Unlock()
	if maxActive > MaxConnections || over > 0 || maxBatch > MaxMembers {
		t.Errorf("%d connections at once (%d refused), %d members in one request", maxActive, over, maxBatch)
	}
	if injected == 0 || out.SinkDowns == 0 {
		t.Errorf("the run met no failure: it proves nothing")
	}
	t.Logf("%d writes, %d sink-downs, %d rows retried, %d failures injected, %d connections at most", out.Writes, out.SinkDowns, out.Retries, injected, maxActive)

	before := f.state()
	f.mu.Lock()
	f.failRate, f.rate429, f.rate403 = 0, 0, 0
	f.mu.Unlock()
	sinktest.Drive(t, s, testMapping, rows, time.Millisecond)
	if after := f.state(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("sending everything again changed the audience")
	}
}

// TestCheck: key, audience and merge fields are verified, the missing ones named.
func TestCheck(t *testing.T) {
	f := newFakeMailchimp(t)
	if err := openSink(t, settings(f, "")).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.fields = []string{"FNAME"}
	if err := openSink(t, settings(f, "")).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "LNAME, ZIP") {
		t.Errorf("missing merge fields: %v", err)
	}
	wrong := json.RawMessage(fmt.Sprintf(`{"api_key": "ffffffffffffffffffffffffffffffff-us21", "list_id": %q, "base_url": %q}`, f.list, f.srv.URL))
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
//
//	go test ./sinks/mailchimp -run '^$' -bench Concurrent -benchtime 10x
func BenchmarkConcurrentThroughput(b *testing.B) {
	f := newFakeMailchimp(b)
	f.rng = nil
	var rows []schemas.Row
	for i := 0; i < 500; i++ {
		rows = append(rows, fan(int64(i+1), fmt.Sprintf("fan%04d@example.com", i), true, []string{"scfl"}, nil, "Subscribe"))
	}
	s := openSink(b, settings(f, ""))
	write := func() {
		batch := sdk.NewBatch("b", 1, sinktest.Record(b, s.Spec(), testMapping, rows), mustMapping(b))
		if err := s.Write(context.Background(), batch); err != nil || len(batch.Results()) > 0 {
			b.Fatal(err, batch.Results())
		}
	}
	write() // the members exist: every later write updates tags, one request per member
	f.mu.Lock()
	f.delay = 5 * time.Millisecond
	f.requests, f.maxActive = 0, 0
	f.mu.Unlock()

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		write()
	}
	sinkRate := float64(f.requests) / time.Since(start).Seconds()
	b.StopTimer()

	// Baseline: the same tag requests from 10 goroutines with a plain client.
	body, _ := json.Marshal(map[string]any{"tags": []map[string]string{{"name": "calendar:scfl", "status": "active"}, {"name": "postcode:3121", "status": "active"}}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 10}}
	f.mu.Lock()
	f.requests = 0
	f.mu.Unlock()
	start = time.Now()
	var wg sync.WaitGroup
	jobs := make(chan string)
	for w := 0; w < MaxConnections; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for email := range jobs {
				req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/3.0/lists/"+f.list+"/members/"+subscriberHash(email)+"/tags", bytes.NewReader(body))
				req.SetBasicAuth("x", f.key)
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		for _, r := range rows {
			jobs <- r.Email
		}
	}
	close(jobs)
	wg.Wait()
	baseRate := float64(f.requests) / time.Since(start).Seconds()
	f.mu.Lock()
	defer f.mu.Unlock()
	b.ReportMetric(sinkRate/baseRate, "sink/baseline")
	b.ReportMetric(float64(f.maxActive), "max-connections")
	b.ReportMetric(float64(f.over), "refused")
}
