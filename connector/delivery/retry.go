package delivery

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy decides when a failed row is tried again and when it is dead-lettered.
type RetryPolicy struct {
	// Schedule is the wait before each retry: Schedule[0] after the first failure, and so on;
	// the last entry repeats. Default: 5s, 5m, 30m, 2h, 5h, 10h, 10h (about 28 hours).
	Schedule []time.Duration
	// MaxAttempts bounds the attempts per row, the first included (default len(Schedule)+1).
	MaxAttempts int
	// MaxAge bounds the time from the first attempt to the last (default 72h).
	MaxAge time.Duration
	// Jitter spreads each wait by ± this fraction (default 0.2), so rows that failed together
	// do not all come back together.
	Jitter float64
	// HintCap bounds how long a destination's Retry-After (or a plugin's back-off hint) may
	// postpone a row (default 1h).
	HintCap time.Duration
}

// DefaultSchedule follows the retry schedules of established webhook services.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if len(p.Schedule) == 0 {
		p.Schedule = DefaultSchedule
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = len(p.Schedule) + 1
	}
	if p.MaxAge <= 0 {
		p.MaxAge = 72 * time.Hour
	}
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	if p.HintCap <= 0 {
		p.HintCap = time.Hour
	}
	return p
}

// next returns when a row that has failed attempts times (its first attempt at first) should
// be tried again, or give=true when the policy is spent. hint is the destination's own wait,
// if any; it is honoured up to HintCap.
func (p RetryPolicy) next(attempts int, first, now time.Time, hint time.Duration, rnd *rand.Rand) (at time.Time, give bool) {
	if attempts >= p.MaxAttempts {
		return time.Time{}, true
	}
	i := min(attempts-1, len(p.Schedule)-1)
	wait := p.Schedule[max(i, 0)]
	if p.Jitter > 0 && rnd != nil {
		wait = time.Duration(float64(wait) * (1 + p.Jitter*(2*rnd.Float64()-1)))
	}
	if hint > 0 {
		wait = max(wait, min(hint, p.HintCap))
	}
	at = now.Add(wait)
	if at.Sub(first) > p.MaxAge {
		return time.Time{}, true
	}
	return at, false
}
