package simulate

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

func TestSameSeedSameEvents(t *testing.T) {
	a, b, c := New(Options{Seed: 7, Count: 2000}), New(Options{Seed: 7, Count: 2000}), New(Options{Seed: 8, Count: 2000})
	differ := false
	for i := 0; i < 2000; i++ {
		x, y, z := a.Next(), b.Next(), c.Next()
		if !bytes.Equal(x.Body, y.Body) || !x.ReceivedAt.Equal(y.ReceivedAt) {
			t.Fatalf("event %d differs between two runs with seed 7:\n%s\n%s", i, x.Body, y.Body)
		}
		differ = differ || !bytes.Equal(x.Body, z.Body)
	}
	if !differ {
		t.Error("seeds 7 and 8 gave the same events")
	}
}

// TestEventsAreRealistic decodes a run through the real decoder and checks what analysts and
// sinks depend on.
func TestEventsAreRealistic(t *testing.T) {
	const n = 20000
	g := New(Options{Seed: 3, Count: n, Span: 60 * 24 * time.Hour, DuplicateRate: 0.02, LateRate: 0.01})
	dec, err := schemas.NewDecoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	types := map[schemas.EventType]int{}
	seen := map[string]bool{}
	subscribed := map[string]bool{}
	var dups, outOfOrder, bareUnsubs, plus, upper, withEmail, subs, withPostcode int
	postcodes := map[string]bool{}
	var last time.Time
	maxSeen := time.Time{}
	byHour := make([]int, 24)
	byWeekday := make([]int, 7)
	firstAt := map[string]int{}         // eventId -> index of its first delivery
	firstTime := map[string]time.Time{} // eventId -> when it was first received
	lateRedeliveries := 0               // redeliveries 10 minutes or more late, after newer events
	for i := 0; i < n; i++ {
		ev := g.Next()
		if ev.ReceivedAt.Before(last) {
			t.Fatalf("event %d is received before the one before it", i)
		}
		last = ev.ReceivedAt
		e, err := dec.Decode(ev.Body)
		if err != nil {
			t.Fatalf("event %d refused: %v\n%s", i, err, ev.Body)
		}
		if seen[e.ID] {
			dups++
			if i-firstAt[e.ID] > 1 && ev.ReceivedAt.Sub(firstTime[e.ID]) >= 10*time.Minute {
				lateRedeliveries++
			}
			if !ev.Redelivery {
				t.Fatalf("event %d repeats an eventId without being a redelivery", i)
			}
			continue
		}
		if ev.Redelivery {
			t.Fatalf("event %d is a redelivery of an unseen event", i)
		}
		seen[e.ID] = true
		firstAt[e.ID], firstTime[e.ID] = i, ev.ReceivedAt
		byWeekday[ev.ReceivedAt.Weekday()]++
		if ev.ReceivedAt.Before(maxSeen) {
			outOfOrder++
		}
		if ev.ReceivedAt.After(maxSeen) {
			maxSeen = ev.ReceivedAt
		}
		types[e.Type]++
		byHour[ev.ReceivedAt.Hour()]++
		sid := e.SubscriptionID()
		switch e.Type {
		case schemas.Subscribe:
			subs++
			subscribed[sid] = true
			if e.Contact.Email != "" {
				withEmail++
			}
			if e.Contact.Postcode != "" {
				withPostcode++
				postcodes[e.Contact.Postcode] = true
			}
			if bytes.Contains(bytes.ToLower([]byte(e.Contact.Email)), []byte("+")) {
				plus++
			}
			if e.Contact.EmailOriginal != "" && bytes.Equal(bytes.ToUpper([]byte(e.Contact.EmailOriginal)), []byte(e.Contact.EmailOriginal)) {
				upper++
			}
		case schemas.Unsubscribe:
			if sid == "" {
				bareUnsubs++
			} else if !subscribed[sid] {
				t.Fatalf("an Unsubscribe of %s came before its Subscribe", sid)
			} else {
				delete(subscribed, sid)
			}
		}
	}
	t.Logf("types %v; %d duplicates, %d bare unsubscribes, %d plus-addressed, %d upper-case emails", types, dups, bareUnsubs, plus, upper)
	for _, typ := range []schemas.EventType{schemas.Subscribe, schemas.Unsubscribe, schemas.SubscriptionDetailsUpdated, schemas.SubscriptionEventAdded,
		schemas.SubscriptionEventUpdated, schemas.SubscriptionEventRemoved, schemas.SubscriptionEventDeleted, schemas.Test} {
		if types[typ] == 0 {
			t.Errorf("no %s event in %d", typ, n)
		}
	}
	if types[schemas.Subscribe] < types[schemas.Unsubscribe] {
		t.Errorf("more unsubscribes (%d) than subscribes (%d)", types[schemas.Unsubscribe], types[schemas.Subscribe])
	}
	if dups == 0 || bareUnsubs == 0 || plus == 0 || upper == 0 {
		t.Errorf("missing sender habits: %d duplicates, %d bare unsubscribes, %d plus-addressed, %d upper-case", dups, bareUnsubs, plus, upper)
	}
	if withEmail != subs || withPostcode != subs {
		t.Errorf("of %d subscribes, %d carry an email and %d a postcode the decoder found", subs, withEmail, withPostcode)
	}
	if len(postcodes) < 20 {
		t.Errorf("only %d distinct postcodes", len(postcodes))
	}
	// Late redeliveries arrive after newer events: out of order, as Rokt's retries do.
	if lateRedeliveries == 0 {
		t.Errorf("no redelivery came after newer events (%d duplicates)", dups)
	}
	// The weekly rhythm: weekends are busier than the middle of the week (this seed gives 1.8×
	// with the rhythm, 1.3× without it, from campaigns alone).
	if weekend, midweek := byWeekday[time.Saturday]+byWeekday[time.Sunday], byWeekday[time.Tuesday]+byWeekday[time.Wednesday]; float64(weekend) < 1.5*float64(midweek) {
		t.Errorf("no weekly rhythm: %d events on weekends, %d on Tuesdays and Wednesdays", weekend, midweek)
	}
	// The daily rhythm: evenings are busier than the small hours.
	if byHour[20] < 3*byHour[3] {
		t.Errorf("no daily rhythm: %d events at 20:00, %d at 03:00", byHour[20], byHour[3])
	}
	if span := last.Sub(g.o.Start); span < 40*24*time.Hour || span > 80*24*time.Hour {
		t.Errorf("%d events spread over %v, want about 60 days", n, span)
	}
}

func TestCampaignsSpikeSubscribes(t *testing.T) {
	g := New(Options{Seed: 5, Count: 30000, Span: 60 * 24 * time.Hour, Campaigns: 1})
	cp := g.Campaigns()[0]
	var in, out int
	for i := 0; i < 30000; i++ {
		ev := g.Next()
		if ev.Type != "Subscribe" || !bytes.Contains(ev.Body, []byte(`"calendarCode":"`+cp.Calendar+`"`)) {
			continue
		}
		if !ev.ReceivedAt.Before(cp.From) && ev.ReceivedAt.Before(cp.To) {
			in++
		} else {
			out++
		}
	}
	days := cp.To.Sub(cp.From).Hours() / 24
	inPerDay, outPerDay := float64(in)/days, float64(out)/(60-days)
	if inPerDay < 3*outPerDay {
		t.Errorf("campaign on %s: %.1f subscribes a day inside, %.1f outside", cp.Calendar, inPerDay, outPerDay)
	}
}

// A subscriber's postcode, country code and phone number agree: AU four digits and +61, GB
// outward and inward codes and +44, US ZIP (or ZIP+4) and +1.
func TestContactsAgreeWithTheirCountry(t *testing.T) {
	g := New(Options{Seed: 5, Count: 3000})
	formats := map[string]struct {
		postcode *regexp.Regexp
		phone    string
	}{
		"AU": {regexp.MustCompile(`^[0-9]{4}$`), "+61 4"},
		"GB": {regexp.MustCompile(`^(?i)[A-Z]{1,2}[0-9][A-Z0-9]? *[0-9][A-Z]{2}$`), "+44 7"},
		"US": {regexp.MustCompile(`^[0-9]{5}(-[0-9]{4})?$`), "+1 ("},
	}
	seen := map[string]int{}
	for i := 0; i < 3000; i++ {
		ev := g.Next()
		if ev.Type != "Subscribe" {
			continue
		}
		var body struct {
			EventDetails struct {
				Subscription map[string]any `json:"subscription"`
			} `json:"eventDetails"`
		}
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			t.Fatal(err)
		}
		sub := body.EventDetails.Subscription
		country, _ := sub["countryCode"].(string)
		f, ok := formats[country]
		if !ok {
			t.Fatalf("country code %q", country)
		}
		seen[country]++
		for _, key := range []string{"postcode", "zip", "zipCode", "postalCode", "channelFinderZipCode"} {
			if pc, ok := sub[key].(string); ok && !f.postcode.MatchString(strings.TrimSpace(pc)) {
				t.Errorf("%s postcode %q", country, pc)
			}
		}
		if phone, ok := sub["phoneNumber"].(string); ok && !strings.HasPrefix(phone, f.phone) {
			t.Errorf("%s phone %q", country, phone)
		}
	}
	if len(seen) != 3 {
		t.Errorf("countries seen: %v", seen)
	}
}

// A duplicate comes in a row, before the next event, even when a short span packs the events
// closer than a duplicate's few seconds: the share asked for is the share sent.
func TestDuplicatesComeInARowAtTheRateAsked(t *testing.T) {
	const n = 3000
	g := New(Options{Seed: 3, Count: n, Span: 10 * time.Second, DuplicateRate: 0.05, LateRate: -1})
	dups := 0
	var last string
	for i := 0; i < n; i++ {
		ev := g.Next()
		if ev.Redelivery {
			dups++
			if ev.EventID != last {
				t.Fatalf("event %d: a duplicate of %s came after %s, not in a row", i, ev.EventID, last)
			}
		}
		last = ev.EventID
	}
	if share := float64(dups) / n; share < 0.03 || share > 0.07 {
		t.Errorf("%d duplicates in %d events (%.3f), want about 0.05", dups, n, share)
	}
}
