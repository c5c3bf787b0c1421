package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

// dumpSubscriptions renders the subscriptions table for comparison.
func dumpSubscriptions(t *testing.T, s *Store) string {
	t.Helper()
	res, err := s.Query(context.Background(), "SELECT * FROM subscriptions ORDER BY subscription_id", 0, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range res.Rows {
		fmt.Fprintln(&b, r...)
	}
	return b.String()
}

// TestRebuildEqualsIncrementalState ingests a random history (events of many subscriptions,
// out of order, duplicates, commit groups of every size), then rebuilds subscriptions from
// the events: the incremental writer and the rebuild must agree exactly.
func TestRebuildEqualsIncrementalState(t *testing.T) {
	s := openStore(t, Options{})
	rnd := rand.New(rand.NewPCG(7, 11))
	types := []string{"Subscribe", "Subscribe", "Unsubscribe", "SubscriptionDetailsUpdated", "SubscriptionEventAdded", "SubscriptionEventRemoved", "SubscriptionEventUpdated", "Test"}
	var bodies []string
	for i := 0; i < 600; i++ {
		sub := fmt.Sprintf("sub-%d", rnd.IntN(60))
		typ := types[rnd.IntN(len(types))]
		email := fmt.Sprintf("u%d@example.com", rnd.IntN(40))
		if rnd.IntN(4) == 0 {
			email = ""
		}
		b := event(fmt.Sprintf("ev-%d", i), typ, sub, email)
		if typ == "Unsubscribe" {
			b = strings.Replace(b, `"done"`, fmt.Sprintf(`"reason %d"`, i), 1)
		}
		bodies = append(bodies, b)
		if rnd.IntN(10) == 0 {
			bodies = append(bodies, b) // a redelivery
		}
	}
	for start := 0; start < len(bodies); {
		n := 1 + rnd.IntN(40)
		var wg sync.WaitGroup
		for _, b := range bodies[start:min(start+n, len(bodies))] {
			wg.Add(1)
			go func(b string) { defer wg.Done(); s.Ingest(context.Background(), decode(t, b)) }(b)
		}
		wg.Wait()
		start += n
	}
	s.WaitState(context.Background(), s.CommittedSeq())
	incremental := dumpSubscriptions(t, s)
	if strings.Count(incremental, "\n") < 50 {
		t.Fatalf("only %d subscriptions", strings.Count(incremental, "\n"))
	}
	p, err := s.Reprocess(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Changed != 0 || p.Done == 0 {
		t.Errorf("reprocess with unchanged paths rewrote %d of %d rows", p.Changed, p.Done)
	}
	if rebuilt := dumpSubscriptions(t, s); rebuilt != incremental {
		t.Errorf("rebuilt subscriptions differ from the incremental ones:\n--- incremental\n%.2000s\n--- rebuilt\n%.2000s", incremental, rebuilt)
	}
}

func TestReprocessFollowsNewContactPaths(t *testing.T) {
	s := openStore(t, Options{})
	body := `{"eventId":"r1","eventType":"Subscribe","eventDetails":{"actionType":"a","calendarSubscriptionId":"s1","accountId":"a","accountName":"A","accountCode":"a",
		"subscription":{"calendarSubscriptionId":"s1","calendarId":"c","calendarTitle":"T","calendarCode":"t","contact":{"mail":"Kim@Example.com"},"zipcode":"3000"}}}`
	ingest(t, s, body)
	ingest(t, s, event("r2", "Subscribe", "s2", "already@example.com"))
	s.WaitState(context.Background(), 2)
	if got := queryStrings(t, s, "SELECT coalesce(email, '-') FROM events ORDER BY seq"); got[0] != "-" {
		t.Fatalf("the default paths should not find the email: %v", got)
	}
	dec, err := schemas.NewDecoder(schemas.FieldPaths{"email": {"subscription.contact.mail", "subscription.subscriberEmail"}, "postcode": {"subscription.zipcode"}})
	if err != nil {
		t.Fatal(err)
	}
	var last ReprocessProgress
	p, err := s.Reprocess(context.Background(), map[string]*schemas.Decoder{"rokt": dec}, func(p ReprocessProgress) { last = p })
	if err != nil {
		t.Fatal(err)
	}
	if p.Changed != 1 || p.Done != 2 || last.Phase != "subscriptions" {
		t.Errorf("progress %+v (last %+v)", p, last)
	}
	expectRows(t, queryStrings(t, s, "SELECT email, postcode FROM events WHERE seq = 1"), []string{"Kim@example.com | 3000"})
	expectRows(t, queryStrings(t, s, "SELECT email FROM mailing_list ORDER BY 1"), []string{"Kim@example.com", "already@example.com"})
	// Ingest goes on afterwards, folded on top of the rebuilt state.
	ingest(t, s, event("r3", "Unsubscribe", "s1", ""))
	s.WaitState(context.Background(), 3)
	expectRows(t, queryStrings(t, s, "SELECT email FROM mailing_list"), []string{"already@example.com"})
}

func TestKeyReport(t *testing.T) {
	s := openStore(t, Options{})
	ingest(t, s, event("k1", "Subscribe", "s1", "a@example.com"))
	ingest(t, s, event("k2", "Subscribe", "s2", ""))
	ingest(t, s, `{"eventId":"k3","eventType":"Test","eventDetails":{}}`)
	rep, total, err := s.KeyReport(context.Background(), "rokt")
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]KeyCount{}
	for _, k := range rep {
		byPath[k.Path] = k
	}
	if total != 3 || byPath["eventId"].Events != 3 || byPath["eventDetails.subscription.subscriberEmail"].Events != 2 {
		t.Errorf("report %+v", rep)
	}
	if !byPath["eventDetails.subscription.calendarCode"].Documented || byPath["eventDetails.subscription.subscriberEmail"].Documented {
		t.Error("documented marks")
	}
}
