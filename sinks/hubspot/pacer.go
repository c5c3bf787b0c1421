package hubspot

import (
	"net/http"
	"strconv"
	"time"
)

// pacer keeps the sink under HubSpot's rolling-window limit: it counts its own requests in a
// sliding window sized from the X-HubSpot-RateLimit-* headers (Max per Interval-Milliseconds)
// and holds a request back until the window has room, so the limit is never hit. The daily
// limit and a 429 block it until they reset.
type pacer struct {
	now      func() time.Time
	max      int
	interval time.Duration
	sent     []time.Time
	blocked  time.Time
}

// A request is counted from when the sink sends it, HubSpot counts it from when it arrives:
// each window is stretched by a fortieth (250 ms of 10 s) so a request that travels faster
// than the one it replaces in the window cannot make a 101st.
func (p *pacer) margin() time.Duration { return p.interval / 40 }

func newPacer(now func() time.Time) *pacer {
	// Until HubSpot says otherwise: the Free/Starter burst limit.
	return &pacer{now: now, max: 100, interval: 10 * time.Second}
}

// wait returns how long to hold the next request, and counts it as sent then.
func (p *pacer) wait() time.Duration {
	now := p.now()
	at := now
	if p.blocked.After(at) {
		at = p.blocked
	}
	// Requests older than one interval before at no longer count.
	for {
		for len(p.sent) > 0 && !p.sent[0].After(at.Add(-p.interval-p.margin())) {
			p.sent = p.sent[1:]
		}
		if len(p.sent) < p.max {
			break
		}
		at = p.sent[0].Add(p.interval + p.margin())
	}
	p.sent = append(p.sent, at)
	return at.Sub(now)
}

// observe reads the rate-limit headers of an answer.
func (p *pacer) observe(h http.Header) {
	if v, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Max")); err == nil && v > 0 {
		p.max = v
	}
	if v, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && v > 0 {
		p.interval = time.Duration(v) * time.Millisecond
	}
	now := p.now()
	if v, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Remaining")); err == nil && v <= 0 {
		// Someone else (another app on the account) used the window: wait it out.
		p.blocked = maxTime(p.blocked, now.Add(p.interval))
	}
	if v, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Daily-Remaining")); err == nil && v <= 0 && h.Get("X-HubSpot-RateLimit-Daily") != "" {
		p.blocked = maxTime(p.blocked, now.Add(untilUTCMidnight(now)))
	}
}

// throttled blocks requests for d after a 429.
func (p *pacer) throttled(d time.Duration) {
	p.blocked = maxTime(p.blocked, p.now().Add(d))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
