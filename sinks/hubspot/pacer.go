package hubspot

import (
	"net/http"
	"strconv"
	"time"
)

// Rate-limit headers HubSpot puts on its answers.
const (
	headerMax            = "X-HubSpot-RateLimit-Max"
	headerRemaining      = "X-HubSpot-RateLimit-Remaining"
	headerInterval       = "X-HubSpot-RateLimit-Interval-Milliseconds"
	headerDaily          = "X-HubSpot-RateLimit-Daily"
	headerDailyRemaining = "X-HubSpot-RateLimit-Daily-Remaining"
)

// pacer keeps the sink's requests under HubSpot's limits, as the X-HubSpot-RateLimit-*
// headers of each answer state them, so that the sink does not provoke 429s.
//
//   - Rolling window (Max requests per Interval-Milliseconds): a request starts only when
//     fewer than Max requests are counted in the window ending at its start. The sink counts
//     its own requests from when their answer came back. That is the latest moment HubSpot
//     can have counted them, so network latency cannot push a request into a window that
//     is already full.
//   - Other clients of the same app and account (another process with the same token) show
//     up as a Remaining lower than the sink's own count explains. Those requests are
//     counted as made at the moment the sink learns of them. That is conservative: they
//     leave the window no earlier than the sink assumes.
//   - Daily limit: at Daily-Remaining 0 no request starts before the next whole hour (see
//     nextDailyProbe).
//   - A 429 blocks requests until the wait it asked for has passed.
//
// Until HubSpot's headers say otherwise the pacer assumes the Free/Starter limit, 100 per
// 10 s. The pacer is used under the sink's lock; its methods take the time so that tests can
// drive it without sleeping.
type pacer struct {
	max      int
	interval time.Duration
	own      []time.Time // answers to the sink's requests, oldest first
	others   []time.Time // other clients' requests, as learnt from Remaining, oldest first
	blocked  time.Time   // no request before this (429, daily limit)
}

func newPacer() *pacer {
	return &pacer{max: 100, interval: 10 * time.Second}
}

// margin pads the window a little (1 %) because HubSpot's exact boundary semantics are not
// documented.
func (p *pacer) margin() time.Duration { return p.interval / 100 }

// delay returns how long from now until the next request may start (0: now).
func (p *pacer) delay(now time.Time) time.Duration {
	at := now
	if p.blocked.After(at) {
		at = p.blocked
	}
	cut := now.Add(-p.interval - p.margin())
	p.own = dropUpTo(p.own, cut)
	p.others = dropUpTo(p.others, cut)
	if n := len(p.own) + len(p.others); n >= p.max {
		// Wait until all but max-1 of the counted requests have left the window.
		free := nthOldest(p.own, p.others, n-p.max).Add(p.interval + p.margin())
		if free.After(at) {
			at = free
		}
	}
	return at.Sub(now)
}

// done records a request started at sent that ended at now. h holds the answer's headers,
// or nil when there was no answer.
func (p *pacer) done(sent, now time.Time, h http.Header) {
	p.own = append(p.own, now)
	if h == nil {
		return
	}
	if v, ok := headerInt(h, headerMax); ok && v > 0 {
		p.max = v
	}
	if v, ok := headerInt(h, headerInterval); ok && v > 0 {
		p.interval = time.Duration(v) * time.Millisecond
	}
	if rem, ok := headerInt(h, headerRemaining); ok {
		// HubSpot counted at most the sink's requests answered after the window that ends at
		// this request's arrival opened; anything above that is someone else's.
		mine := countAfter(p.own, sent.Add(-p.interval))
		theirs := countAfter(p.others, now.Add(-p.interval-p.margin()))
		for k := (p.max - rem) - mine - theirs; k > 0; k-- {
			p.others = append(p.others, now)
		}
	}
	if rem, ok := headerInt(h, headerDailyRemaining); ok && rem <= 0 && h.Get(headerDaily) != "" {
		p.block(nextDailyProbe(now))
	}
}

// block holds every request back until t.
func (p *pacer) block(t time.Time) {
	if t.After(p.blocked) {
		p.blocked = t
	}
}

// nextDailyProbe is when to try again after the daily limit ran out. HubSpot resets the day
// at midnight in the account's time zone, which the sink does not know. Midnight falls on
// a whole hour in most zones, so the sink tries once at each whole hour, plus a minute for
// clock skew: at most 24 refused requests a day, and the quota is used again within the
// hour after it resets (30 minutes late in half-hour zones).
func nextDailyProbe(now time.Time) time.Time {
	return now.UTC().Truncate(time.Hour).Add(time.Hour + time.Minute)
}

func headerInt(h http.Header, name string) (int, bool) {
	v, err := strconv.Atoi(h.Get(name))
	return v, err == nil
}

// dropUpTo removes the times at or before cut from the sorted ts.
func dropUpTo(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return ts[i:]
}

func countAfter(ts []time.Time, cut time.Time) int {
	n := 0
	for _, t := range ts {
		if t.After(cut) {
			n++
		}
	}
	return n
}

// nthOldest returns the k-th oldest (0-based) time of the two sorted slices together.
func nthOldest(a, b []time.Time, k int) time.Time {
	i, j := 0, 0
	for {
		var t time.Time
		if j >= len(b) || (i < len(a) && !a[i].After(b[j])) {
			t = a[i]
			i++
		} else {
			t = b[j]
			j++
		}
		if k == 0 {
			return t
		}
		k--
	}
}
