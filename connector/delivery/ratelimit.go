package delivery

import "time"

// limiter caps how often a sink is called: never more than n requests start in any rolling
// window (a sliding log, exact where token buckets allow bursts of 2n across a boundary), and
// at most daily requests per UTC day. A zero n or daily disables that cap. It is used by one
// loop goroutine only.
type limiter struct {
	n      int
	window time.Duration
	starts []time.Time // the last n request starts, oldest at head
	head   int

	daily int
	day   time.Time // the UTC day today counts
	today int
}

func newLimiter(n int, window time.Duration, daily int) *limiter {
	l := &limiter{n: n, window: window, daily: daily}
	if n > 0 && window > 0 {
		l.starts = make([]time.Time, 0, n)
	}
	return l
}

// wait returns how long to wait from now before the next request may start; 0 means now.
func (l *limiter) wait(now time.Time) time.Duration {
	var d time.Duration
	if l.starts != nil && len(l.starts) == l.n {
		if free := l.starts[l.head].Add(l.window); free.After(now) {
			d = free.Sub(now)
		}
	}
	if l.daily > 0 {
		day := now.UTC().Truncate(24 * time.Hour)
		if day.Equal(l.day) && l.today >= l.daily {
			d = max(d, day.Add(24*time.Hour).Sub(now))
		}
	}
	return d
}

// take records a request starting at now. The caller has checked wait(now) == 0.
func (l *limiter) take(now time.Time) {
	if l.starts != nil {
		if len(l.starts) < l.n {
			l.starts = append(l.starts, now)
		} else {
			l.starts[l.head] = now
			l.head = (l.head + 1) % l.n
		}
	}
	if l.daily > 0 {
		day := now.UTC().Truncate(24 * time.Hour)
		if !day.Equal(l.day) {
			l.day, l.today = day, 0
		}
		l.today++
	}
}

// seedDaily sets how many requests were already made today (read from the history at start,
// so a restart does not reset the daily quota).
func (l *limiter) seedDaily(now time.Time, count int) {
	l.day = now.UTC().Truncate(24 * time.Hour)
	l.today = count
}
