// Package simulate emulates Rokt Calendar sending webhooks: accounts with calendars and tags,
// subscribers with plausible names, emails and postcodes, all eight event types in realistic
// proportions, weekly and daily rhythms with campaign spikes, and the sender's habits
// (duplicates, late redeliveries, both Unsubscribe shapes). The same seed gives the same
// events, byte for byte.
package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Options shape a simulation. Zero values take the defaults noted.
type Options struct {
	// Seed makes a run repeatable (default 1).
	Seed uint64
	// Start is the first event's receive time (default 2025-09-01 00:00 UTC).
	Start time.Time
	// Span is the stretch of time the events are spread over, with their rhythms (default
	// 90 days); Count is how many events to spread over it (default 10,000). Next keeps
	// going after Count, at the same pace.
	Span  time.Duration
	Count int
	// Subscribers is the size of the subscriber pool (default Count/4, at least 50).
	Subscribers int
	// DuplicateRate is the share of events sent twice in a row, as a sender does when it
	// misses an answer (default 0.01). LateRate is the share of events redelivered much later,
	// out of order (default 0.005). Use a negative value for none.
	DuplicateRate float64
	LateRate      float64
	// BareUnsubscribeRate is the share of Unsubscribes in the documented example's shape,
	// without the top-level calendarSubscriptionId (default 0.1; negative for none).
	BareUnsubscribeRate float64
	// Campaigns is how many campaign spikes fall in the span (default 3, negative for none).
	Campaigns int
}

func (o Options) withDefaults() Options {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Span <= 0 {
		o.Span = 90 * 24 * time.Hour
	}
	if o.Count <= 0 {
		o.Count = 10000
	}
	if o.Subscribers <= 0 {
		o.Subscribers = max(50, o.Count/4)
	}
	o.DuplicateRate = rate(o.DuplicateRate, 0.01)
	o.LateRate = rate(o.LateRate, 0.005)
	o.BareUnsubscribeRate = rate(o.BareUnsubscribeRate, 0.1)
	if o.Campaigns == 0 {
		o.Campaigns = 3
	}
	return o
}

func rate(v, def float64) float64 {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return min(v, 1)
}

// Event is one webhook delivery.
type Event struct {
	// ReceivedAt is when Rokt's delivery would arrive.
	ReceivedAt time.Time
	// EventID is the envelope eventId; Type its eventType.
	EventID string
	Type    string
	// Body is the request body.
	Body []byte
	// Redelivery is set on the second and later deliveries of an event.
	Redelivery bool
}

// Campaign is a window in which subscribes spike.
type Campaign struct {
	Calendar string // calendar code
	From, To time.Time
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	o         Options
	rng       *rand.Rand
	accounts  []*account
	calendars []*calendar
	people    []*person
	active    []*subscription
	campaigns []Campaign
	t, next   time.Time // the current fresh event's time and the next one's
	step      float64   // mean seconds between candidate events at peak intensity
	pending   []Event   // duplicates and late redeliveries waiting their turn
	buf       []byte
}

type account struct {
	id, name, code, country string
	calendars               []*calendar
}

type calendar struct {
	acc                    *account
	id, title, code        string
	tags                   []string
	popularity             float64
	eventsSeq              int
	events                 []string // merchant event ids live on this calendar
	venue, venueTZ, region string
}

type person struct {
	first, last, email, emailKey, postcode, phone string
	country                                       string // the person's, from their postcode
	consent                                       bool
	subs                                          int
}

type subscription struct {
	id     string
	cal    *calendar
	who    *person
	method string
	tags   []string
	action string
	// keys: which candidate keys this subscription's bodies use for email and postcode.
	emailKey, postcodeKey string
}

// New returns a generator.
func New(o Options) *Generator {
	o = o.withDefaults()
	g := &Generator{o: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), t: o.Start}
	g.world()
	// Thinning: candidates arrive at the peak intensity and are kept with probability
	// intensity/peak, which spreads Count events over Span on average.
	g.step = o.Span.Seconds() / float64(o.Count) * g.meanIntensity() / peakIntensity
	return g
}

// Campaigns returns the campaign windows of the run.
func (g *Generator) Campaigns() []Campaign { return g.campaigns }

// Next returns the next delivery, in receive order.
func (g *Generator) Next() Event {
	if g.next.IsZero() {
		g.next = g.advance(g.t)
	}
	if len(g.pending) > 0 && !g.pending[0].ReceivedAt.After(g.next) {
		ev := g.pending[0]
		g.pending = g.pending[1:]
		return ev
	}
	g.t = g.next
	ev := g.fresh()
	g.next = g.advance(g.t)
	if g.rng.Float64() < g.o.DuplicateRate {
		dup := ev
		dup.Redelivery = true
		// A few seconds later, but before the next event: "in a row", however densely a
		// short span packs the events (a duplicate due after the last event is never sent).
		dup.ReceivedAt = ev.ReceivedAt.Add(time.Duration(1+g.rng.IntN(30)) * time.Second)
		if dup.ReceivedAt.After(g.next) {
			dup.ReceivedAt = g.next
		}
		g.queue(dup)
	}
	if g.rng.Float64() < g.o.LateRate {
		late := ev
		late.Redelivery = true
		late.ReceivedAt = ev.ReceivedAt.Add(time.Duration(10+g.rng.IntN(6*60)) * time.Minute)
		g.queue(late)
	}
	return ev
}

// queue keeps pending redeliveries sorted by time.
func (g *Generator) queue(ev Event) {
	i := len(g.pending)
	for i > 0 && g.pending[i-1].ReceivedAt.After(ev.ReceivedAt) {
		i--
	}
	g.pending = append(g.pending, Event{})
	copy(g.pending[i+1:], g.pending[i:])
	g.pending[i] = ev
}

const peakIntensity = 2.2 * 1.6 * 4

// intensity is the relative traffic at t: a daily rhythm (quiet at night, peaks at lunch and
// evening, in the accounts' local time roughly), a weekly one (weekends busier) and campaigns.
func (g *Generator) intensity(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	daily := 0.15 + 1.0*math.Exp(-sq(h-12.5)/4) + 1.6*math.Exp(-sq(h-19.5)/5) + 0.4*math.Exp(-sq(h-8)/3)
	weekly := 1.0
	switch t.Weekday() {
	case time.Saturday:
		weekly = 1.5
	case time.Sunday:
		weekly = 1.3
	case time.Friday:
		weekly = 1.15
	}
	c := 1.0
	for _, cp := range g.campaigns {
		if !t.Before(cp.From) && t.Before(cp.To) {
			c = 4
		}
	}
	return daily * weekly * c
}

func (g *Generator) meanIntensity() float64 {
	var sum float64
	n := 0
	for t := g.o.Start; t.Before(g.o.Start.Add(g.o.Span)); t = t.Add(20 * time.Minute) {
		sum += g.intensity(t)
		n++
	}
	return sum / float64(n)
}

func sq(x float64) float64 { return x * x }

// advance returns the time of the next kept candidate after t.
func (g *Generator) advance(t time.Time) time.Time {
	for {
		t = t.Add(time.Duration(g.rng.ExpFloat64() * g.step * float64(time.Second)))
		if g.rng.Float64()*peakIntensity < g.intensity(t) {
			return t
		}
	}
}

func (g *Generator) inCampaign(cal *calendar) bool {
	for _, cp := range g.campaigns {
		if cp.Calendar == cal.code && !g.t.Before(cp.From) && g.t.Before(cp.To) {
			return true
		}
	}
	return false
}

// fresh makes a new event of a type drawn in realistic proportions; types that need an
// active subscription fall back to a Subscribe while there are too few.
func (g *Generator) fresh() Event {
	p := g.rng.Float64()
	typ := "Subscribe"
	switch {
	case p < 0.40:
	case p < 0.53:
		typ = "Unsubscribe"
	case p < 0.61:
		typ = "SubscriptionDetailsUpdated"
	case p < 0.76:
		typ = "SubscriptionEventAdded"
	case p < 0.86:
		typ = "SubscriptionEventUpdated"
	case p < 0.93:
		typ = "SubscriptionEventRemoved"
	case p < 0.99:
		typ = "SubscriptionEventDeleted"
	default:
		typ = "Test"
	}
	if typ != "Subscribe" && typ != "Test" && len(g.active) < 20 {
		typ = "Subscribe"
	}
	id := g.uuid()
	b := g.buf[:0]
	b = append(b, `{"eventId":"`...)
	b = append(b, id...)
	b = append(b, `","eventType":"`...)
	if typ == "SubscriptionDetailsUpdated" && g.rng.IntN(20) == 0 {
		b = append(b, "SubscriptionDetailsUpdate"...) // the documented example's spelling
	} else {
		b = append(b, typ...)
	}
	b = append(b, `","eventDetails":`...)
	switch typ {
	case "Test":
		b = append(b, `{}`...)
	case "Subscribe":
		b = g.subscribe(b)
	case "Unsubscribe":
		b = g.unsubscribe(b)
	case "SubscriptionDetailsUpdated":
		s := g.pick()
		if g.rng.IntN(3) == 0 {
			s.tags = g.tagsFor(s.cal)
		}
		if g.rng.IntN(4) == 0 {
			s.who.consent = !s.who.consent
		}
		b = g.details(b, s, "SubscriptionViaCalendarPage", true)
		b = append(b, '}')
	default:
		b = g.eventChange(b, typ)
	}
	b = append(b, '}')
	g.buf = b
	return Event{ReceivedAt: g.t, EventID: id, Type: typ, Body: append([]byte(nil), b...)}
}

var actions = []struct {
	name   string
	weight int
}{
	{"SubscriptionViaCalendarPage", 40}, {"SubscriptionViaOneClickLink", 20}, {"SubscriptionViaSms", 12},
	{"SubscriptionViaShowsPage", 10}, {"SubscriptionViaWebApi", 10}, {"SubscriptionWithEventsViaWebApi", 6},
	{"SubscriptionViaCalReplyNotificationPage", 2},
}

func (g *Generator) action() string {
	n := g.rng.IntN(100)
	for _, a := range actions {
		if n < a.weight {
			return a.name
		}
		n -= a.weight
	}
	return actions[0].name
}

var methods = []string{"Google", "Google", "Google", "Webcal", "Webcal", "WebCal", "Microsoft", "Microsoft", "Apple"}

func (g *Generator) subscribe(b []byte) []byte {
	cal := g.pickCalendar()
	who := g.people[g.rng.IntN(len(g.people))]
	s := &subscription{id: g.uuid(), cal: cal, who: who, method: methods[g.rng.IntN(len(methods))], tags: g.tagsFor(cal), action: g.action()}
	switch n := g.rng.IntN(10); {
	case n < 7:
		s.emailKey = "subscriberEmail"
	case n < 9:
		s.emailKey = "emailAddress"
	default:
		s.emailKey = "email"
	}
	switch n := g.rng.IntN(10); {
	case n < 6:
		s.postcodeKey = "postcode"
	case n < 9:
		s.postcodeKey = "zip"
	default:
		s.postcodeKey = "channelFinderZipCode"
	}
	who.subs++
	g.active = append(g.active, s)
	return append(g.details(b, s, s.action, true), '}')
}

// details writes eventDetails up to and including the subscription object (Details when
// full, else Basic), leaving eventDetails open.
func (g *Generator) details(b []byte, s *subscription, action string, full bool) []byte {
	b = g.head(b, s, action, true)
	b = append(b, `,"subscription":{"calendarSubscriptionId":"`...)
	b = append(b, s.id...)
	b = append(b, `","calendarId":"`...)
	b = append(b, s.cal.id...)
	b = append(b, `","calendarTitle":`...)
	b = appendString(b, s.cal.title)
	b = append(b, `,"calendarCode":"`...)
	b = append(b, s.cal.code...)
	b = append(b, `","subscriptionMethod":"`...)
	b = append(b, s.method...)
	b = append(b, '"')
	if full {
		b = append(b, `,"calendarTags":[`...)
		for i, t := range s.tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"tagId":"`...)
			b = append(b, t...)
			b = append(b, `"}`...)
		}
		b = append(b, ']')
		w := s.who
		b = append(b, `,"`...)
		b = append(b, s.emailKey...)
		b = append(b, `":`...)
		b = appendString(b, w.email)
		b = append(b, `,"firstName":`...)
		b = appendString(b, w.first)
		b = append(b, `,"lastName":`...)
		b = appendString(b, w.last)
		b = append(b, `,"`...)
		b = append(b, s.postcodeKey...)
		b = append(b, `":`...)
		b = appendString(b, w.postcode)
		b = append(b, `,"countryCode":"`...)
		b = append(b, w.country...)
		b = append(b, `","marketingAllowed":`...)
		b = strconv.AppendBool(b, w.consent)
		if w.phone != "" {
			b = append(b, `,"phoneNumber":`...)
			b = appendString(b, w.phone)
		}
	}
	return append(b, '}')
}

// head writes the common eventDetails members, leaving the object open.
func (g *Generator) head(b []byte, s *subscription, action string, withID bool) []byte {
	b = append(b, `{"actionType":"`...)
	b = append(b, action...)
	b = append(b, '"')
	if withID {
		b = append(b, `,"calendarSubscriptionId":"`...)
		b = append(b, s.id...)
		b = append(b, '"')
	}
	a := s.cal.acc
	b = append(b, `,"accountId":"`...)
	b = append(b, a.id...)
	b = append(b, `","accountName":`...)
	b = appendString(b, a.name)
	b = append(b, `,"accountCode":"`...)
	b = append(b, a.code...)
	return append(b, '"')
}

var reasons = []string{"", "", "", "The season has finished", "Too many notifications", "I no longer follow this team", "Subscribed by mistake", "Moved away"}

var userAgents = []string{
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
}

var geo = map[string]string{"AU": "Australia", "GB": "United Kingdom", "US": "United States"}

func (g *Generator) unsubscribe(b []byte) []byte {
	i := g.rng.IntN(len(g.active))
	s := g.active[i]
	g.active[i] = g.active[len(g.active)-1]
	g.active = g.active[:len(g.active)-1]
	s.who.subs--
	bare := g.rng.Float64() < g.o.BareUnsubscribeRate
	b = g.head(b, s, "SubscriptionViaCalendarPage", !bare)
	removed := g.t.Add(-time.Duration(g.rng.IntN(90000)) * time.Millisecond)
	b = append(b, `,"subscription":{"removedDateTimeUtc":"`...)
	b = removed.UTC().AppendFormat(b, "2006-01-02 15:04:05.000000")
	b = append(b, '"')
	if r := reasons[g.rng.IntN(len(reasons))]; r != "" {
		b = append(b, `,"unsubscribeReasonText":`...)
		b = appendString(b, r)
	}
	b = append(b, `,"remoteIpAddress":"`...)
	b = append(b, fmt.Sprintf("203.0.%d.%d", g.rng.IntN(256), 1+g.rng.IntN(254))...)
	b = append(b, `","countryCode":"`...) // where the request came from: the person's country
	b = append(b, s.who.country...)
	b = append(b, `","geoCountry":"`...)
	b = append(b, geo[s.who.country]...)
	b = append(b, `","userAgent":`...)
	b = appendString(b, userAgents[g.rng.IntN(len(userAgents))])
	return append(b, "}}"...)
}

// eventChange writes the four subscription-event types.
func (g *Generator) eventChange(b []byte, typ string) []byte {
	s := g.pick()
	cal := s.cal
	switch typ {
	case "SubscriptionEventAdded":
		cal.eventsSeq++
		ev := fmt.Sprintf("%s-%d", strings.SplitN(cal.code, "-", 2)[0], 1000+cal.eventsSeq)
		cal.events = append(cal.events, ev)
		b = g.details(b, s, "SubscriptionViaCalendarPage", false)
		b = append(b, `,"subscriptionEvent":`...)
		b = g.eventDetails(b, cal, ev)
	case "SubscriptionEventUpdated":
		b = g.head(b, s, "SubscriptionViaCalendarPage", true)
		b = append(b, `,"subscriptionEvent":`...)
		b = g.eventDetails(b, cal, g.calendarEvent(cal))
	case "SubscriptionEventRemoved":
		b = g.details(b, s, "SubscriptionViaCalendarPage", false)
		b = append(b, `,"subscriptionEvent":{"eventId":`...)
		b = appendString(b, g.calendarEvent(cal))
		b = append(b, '}')
	case "SubscriptionEventDeleted":
		b = g.head(b, s, "SubscriptionViaCalendarPage", true)
		b = append(b, `,"subscriptionEvent":{"eventId":`...)
		b = appendString(b, g.calendarEvent(cal))
		b = append(b, '}')
	}
	return append(b, '}')
}

func (g *Generator) calendarEvent(cal *calendar) string {
	if len(cal.events) == 0 {
		cal.eventsSeq++
		cal.events = append(cal.events, fmt.Sprintf("%s-%d", strings.SplitN(cal.code, "-", 2)[0], 1000+cal.eventsSeq))
	}
	return cal.events[g.rng.IntN(len(cal.events))]
}

func (g *Generator) eventDetails(b []byte, cal *calendar, id string) []byte {
	start := g.t.Add(time.Duration(24+g.rng.IntN(24*40)) * time.Hour).Truncate(15 * time.Minute)
	b = append(b, `{"eventId":`...)
	b = appendString(b, id)
	b = append(b, `,"title":`...)
	b = appendString(b, cal.title+" - "+id)
	b = append(b, `,"location":`...)
	b = appendString(b, cal.venue)
	b = append(b, `,"description":`...)
	b = appendString(b, "Gates open an hour before the start. "+cal.acc.name+".")
	if g.rng.IntN(2) == 0 {
		b = append(b, `,"startDateTime":"`...)
		b = start.AppendFormat(b, "2006-01-02 15:04:05")
		b = append(b, `","endDateTime":"`...)
		b = start.Add(150*time.Minute).AppendFormat(b, "2006-01-02 15:04:05")
		b = append(b, `","timezone":"`...)
		b = append(b, cal.venueTZ...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// pick returns an active subscription.
func (g *Generator) pick() *subscription { return g.active[g.rng.IntN(len(g.active))] }

// pickCalendar draws a calendar by popularity, boosted by its campaign.
func (g *Generator) pickCalendar() *calendar {
	var total float64
	w := make([]float64, len(g.calendars))
	for i, c := range g.calendars {
		w[i] = c.popularity
		if g.inCampaign(c) {
			w[i] *= 12
		}
		total += w[i]
	}
	x := g.rng.Float64() * total
	for i, c := range g.calendars {
		if x < w[i] {
			return c
		}
		x -= w[i]
	}
	return g.calendars[len(g.calendars)-1]
}

func (g *Generator) tagsFor(cal *calendar) []string {
	var out []string
	for _, t := range cal.tags {
		if g.rng.IntN(3) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// uuid returns a random (version 4) UUID from the generator's source.
func (g *Generator) uuid() string {
	var u [16]byte
	a, b := g.rng.Uint64(), g.rng.Uint64()
	for i := 0; i < 8; i++ {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, fmt.Sprintf(`\u%04x`, c)...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// AppendLine appends ev as one line of the import format (`hookbridge import` reads it):
// {"received_at": RFC 3339, "source": source, "body": the body as a JSON string}.
func AppendLine(b []byte, ev Event, source string) []byte {
	b = append(b, `{"received_at":"`...)
	b = ev.ReceivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","source":`...)
	b = appendString(b, source)
	b = append(b, `,"body":`...)
	b = appendString(b, string(ev.Body))
	return append(b, "}\n"...)
}
