package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/sinks/hubspot/hubspotfake"
	"github.com/hookbridge/hookbridge/sinks/mailchimp/mailchimpfake"
)

// crmSubscribeBody is a Subscribe to calendar cal, with the subscriber's first name and, when
// consent is set, the marketing consent flag.
func crmSubscribeBody(id, sub, email, first, cal string, consent bool) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaCalendarPage","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"a","subscription":{"calendarSubscriptionId":%q,"calendarId":%q,"calendarTitle":%q,"calendarCode":%q,"subscriberEmail":%q,"firstName":%q,"marketingAllowed":%v}}}`,
		id, sub, sub, "cal-"+cal, strings.ToUpper(cal)+" Fixtures", cal, email, first, consent)
}

// TestCRMSinksThroughTheDeliveryEngine runs hookbridge serve (a child process, with the
// hubspot and mailchimp sinks as its plugin processes) against the fake HubSpot and the fake
// Mailchimp in this process. Subscribers subscribe to one or two calendars and some
// unsubscribe from one; one address is refused by both vendors for good; the fakes fail 30%
// of requests (some after applying them), throttle with 429s and refuse some inputs
// transiently. In the end each contact is in the state of all their subscriptions in both
// CRMs and nobody else is there, and the refused address is the only dead letter of each
// sink, with the vendor's reason, in the admin API and in `hookbridge dead-letters`.
func TestCRMSinksThroughTheDeliveryEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hookbridge serve and its plugin processes")
	}
	const refused = "refused@example.com"
	hs := hubspotfake.New(t)
	mc := mailchimpfake.New(t)
	hs.With(func(f *hubspotfake.Server) {
		f.Bad[refused] = true
		f.Window = 500 * time.Millisecond // HubSpot's 100 per 10 s, 20 times faster
		f.Fail5xx, f.Throttle, f.InputErr = 0.3, 0.1, 0.05
		f.FailNext = []int{429, 503, 429, 504} // whatever the dice say, the first requests meet both
	})
	mc.With(func(f *mailchimpfake.Server) {
		f.Bad[refused] = true
		// Bodiless 403s are left out: without Retry-After the sink waits 30 s for them (the
		// sink's tests cover them).
		f.FailRate, f.AppliedShare, f.Rate429, f.RetryAfter, f.MemberErr = 0.3, 0.5, 0.1, "1", 0.05
		// Whatever the dice say: a throttled batch, a batch and a tag request that fail after
		// being applied.
		f.Script = []mailchimpfake.Answer{{Kind: "batch", Status: 429, RetryAfter: "1"}, {Kind: "batch", Status: 500, Applied: true},
			{Kind: "tags", Status: 500, Applied: true}}
	})

	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`sinks:
  - name: crm
    plugin: hubspot
    start: earliest
    retry: {schedule: [50ms, 100ms, 200ms], max_attempts: 100}
    mapping: {email: email, first_name: firstname, status: rokt_subscription_status, contact_calendars: rokt_calendars}
    settings: {token: %s, base_url: %q, timeout: 5s}
  - name: newsletter
    plugin: mailchimp
    start: earliest
    retry: {schedule: [50ms, 100ms, 200ms], max_attempts: 100}
    mapping: {email: email, first_name: FNAME}
    settings: {api_key: %s, list_id: %s, base_url: %q, tags_from: [calendar_code], timeout: 5s}
`, hs.Token, hs.URL, mc.Key, mc.List, mc.URL))
	addr := freeAddr(t)
	srv := startServer(t, addr, "--config", cfg)

	posted := 0
	post := func(body string) {
		t.Helper()
		if code := postEvent(addr, body); code != 200 {
			t.Fatalf("event answered %d: %s", code, body)
		}
		posted++
	}
	// caughtUp waits until both sinks have taken every event and have no row waiting.
	caughtUp := func(what string) {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for {
			st := status(t, addr)
			done := len(st.Sinks) == 2
			for _, s := range st.Sinks {
				done = done && s.Cursor == int64(posted) && s.PendingRows == 0
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the sinks never caught up with %d events: %+v", what, posted, st.Sinks)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Twenty subscribers: every one on scfl, two in three also on tvrc, every other one with
	// marketing consent. The subscriptions go first, so that the unsubscribes meet members
	// the CRMs know (the engine sends a contact's latest row only).
	type contact struct {
		email, first string
		consent      bool
		active       []string
	}
	var contacts []*contact
	for i := range 20 {
		c := &contact{email: fmt.Sprintf("fan%02d@example.com", i), first: fmt.Sprintf("Fan%02d", i), consent: i%2 == 0, active: []string{"scfl"}}
		post(crmSubscribeBody(fmt.Sprintf("sub-scfl-%02d", i), fmt.Sprintf("scfl-%02d", i), c.email, c.first, "scfl", c.consent))
		if i%3 != 0 {
			post(crmSubscribeBody(fmt.Sprintf("sub-tvrc-%02d", i), fmt.Sprintf("tvrc-%02d", i), c.email, c.first, "tvrc", c.consent))
			c.active = append(c.active, "tvrc")
		}
		contacts = append(contacts, c)
	}
	post(crmSubscribeBody("sub-refused", "scfl-refused", refused, "Nobody", "scfl", true))
	caughtUp("after the subscriptions")
	// Every fourth leaves scfl: those not on tvrc have no subscription left.
	for i, c := range contacts {
		if i%4 == 0 {
			post(unsubscribeBody(fmt.Sprintf("unsub-scfl-%02d", i), fmt.Sprintf("scfl-%02d", i)))
			c.active = slices.DeleteFunc(c.active, func(s string) bool { return s == "scfl" })
		}
	}
	caughtUp("after the unsubscribes")

	// HubSpot: the status and calendars over all of the contact's subscriptions.
	got := hs.Snapshot()
	for _, c := range contacts {
		want := map[string]string{"email": c.email, "firstname": c.first, "rokt_subscription_status": "subscribed", "rokt_calendars": strings.Join(c.active, ";")}
		if len(c.active) == 0 {
			want["rokt_subscription_status"] = "unsubscribed"
			delete(want, "rokt_calendars") // an empty list clears the property
		}
		if fmt.Sprint(got[c.email]) != fmt.Sprint(want) {
			t.Errorf("HubSpot %s: %v, want %v", c.email, got[c.email], want)
		}
	}
	if len(got) != len(contacts) {
		t.Errorf("HubSpot holds %d contacts, want %d (not the refused one)", len(got), len(contacts))
	}
	// Mailchimp: subscribed with consent, else pending; unsubscribed with nothing left; one
	// tag per active calendar.
	for _, c := range contacts {
		m := mc.Member(c.email)
		status := "pending"
		switch {
		case len(c.active) == 0:
			status = "unsubscribed"
		case c.consent:
			status = "subscribed"
		}
		var tags []string
		for _, cal := range c.active {
			tags = append(tags, "calendar:"+cal)
		}
		if m == nil || m.Status != status || fmt.Sprint(m.ActiveTags()) != fmt.Sprint(tags) || fmt.Sprint(m.Merge) != fmt.Sprint(map[string]string{"FNAME": c.first}) {
			t.Errorf("Mailchimp %s: %+v, want %s %v FNAME %s", c.email, m, status, tags, c.first)
		}
	}
	if n := len(mc.State()); n != len(contacts) {
		t.Errorf("Mailchimp holds %d members, want %d (not the refused one)", n, len(contacts))
	}

	// The failures were met, or the run proves less than it says.
	var hsInjected, mcInjected, scripted int
	hs.With(func(f *hubspotfake.Server) { hsInjected, scripted = f.Injected, len(f.FailNext) })
	mc.With(func(f *mailchimpfake.Server) { mcInjected, scripted = f.Injected, scripted+len(f.Script) })
	if hsInjected < 4 || mcInjected < 3 || scripted != 0 {
		t.Errorf("failures injected: HubSpot %d, Mailchimp %d; %d scripted ones not met", hsInjected, mcInjected, scripted)
	}

	// The refused address is each sink's only dead letter, with the vendor's reason.
	reasons := map[string]string{
		"crm":        "Email address " + refused + " is invalid",
		"newsletter": "ERROR_GENERIC: " + refused + " looks fake or invalid",
	}
	codes := map[string]int{"crm": 207, "newsletter": 200} // a 207 multi-status; a 200 with errors[]
	st := status(t, addr)
	for _, s := range st.Sinks {
		if s.DeadLetters != 1 {
			t.Errorf("%s: status counts %d dead letters, want 1", s.Name, s.DeadLetters)
		}
	}
	for sink, reason := range reasons {
		var page delivery.Page[delivery.DeadLetter]
		resp, err := http.Get("http://" + addr + "/admin/v1/dead-letters?all=true&sink=" + sink)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if len(page.Items) != 1 || page.Items[0].EventID != "sub-refused" || !strings.Contains(page.Items[0].Error, reason) || page.Items[0].StatusCode != codes[sink] {
			t.Errorf("%s: dead letters %+v, want only sub-refused with %q", sink, page.Items, reason)
		}
		out, _, err := runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}, "dead-letters", "--sink", sink, "--all")
		if err != nil || !strings.Contains(out, "sub-refused") || !strings.Contains(out, reason) || strings.Count(strings.TrimSpace(out), "\n") != 1 {
			t.Errorf("hookbridge dead-letters --sink %s: %v\n%s", sink, err, out)
		}
	}
	t.Logf("%d events; failures injected: HubSpot %d, Mailchimp %d; sinks %+v", posted, hsInjected, mcInjected, statusSummary(st))
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
}

// statusSummary keeps what a log line needs of each sink's status.
func statusSummary(st admin.StatusReport) []string {
	var out []string
	for _, s := range st.Sinks {
		out = append(out, fmt.Sprintf("%s: cursor %d, dead letters %d, last error %q", s.Name, s.Cursor, s.DeadLetters, s.LastError))
	}
	return out
}
