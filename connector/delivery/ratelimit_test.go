package delivery

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestLimiterNeverExceedsTheRollingWindow drives the limiter with a simulated clock and checks
// every window of the resulting request log.
func TestLimiterNeverExceedsTheRollingWindow(t *testing.T) {
	l := newLimiter(100, 10*time.Second, 0)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := now
	var log []time.Time
	rnd := rand.New(rand.NewPCG(1, 2))
	for len(log) < 1000 {
		if d := l.wait(now); d > 0 {
			now = now.Add(d)
			continue
		}
		l.take(now)
		log = append(log, now)
		now = now.Add(time.Duration(rnd.IntN(50)) * time.Millisecond) // uneven request spacing
	}
	for i := range log {
		j := i
		for j < len(log) && log[j].Sub(log[i]) < 10*time.Second {
			j++
		}
		if j-i > 100 {
			t.Fatalf("%d requests within 10s starting at %v", j-i, log[i].Sub(start))
		}
	}
	// Close to the allowed rate: 1000 requests at 100 per 10s need at least 90s.
	if got := log[len(log)-1].Sub(start); got > 95*time.Second || got < 90*time.Second {
		t.Errorf("1000 requests took %v of simulated time; the allowed rate makes it 90s", got)
	}
}

func TestLimiterDailyQuota(t *testing.T) {
	now := time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC)
	l := newLimiter(0, 0, 3)
	l.seedDaily(now, 2)
	if l.wait(now) != 0 {
		t.Fatal("quota not yet spent")
	}
	l.take(now)
	if d := l.wait(now); d != time.Hour {
		t.Errorf("after the daily quota wait %v, want until midnight UTC (1h)", d)
	}
	if d := l.wait(now.Add(time.Hour)); d != 0 {
		t.Errorf("a new day: wait %v", d)
	}
}

func TestRetryPolicy(t *testing.T) {
	p := RetryPolicy{Jitter: -1}.withDefaults()
	p.Jitter = 0
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := first
	var waits []time.Duration
	for attempts := 1; ; attempts++ {
		at, give := p.next(attempts, first, now, 0, nil)
		if give {
			if attempts != 8 {
				t.Errorf("gave up after %d attempts, want 8", attempts)
			}
			break
		}
		waits = append(waits, at.Sub(now))
		now = at
	}
	for i, w := range DefaultSchedule {
		if waits[i] != w {
			t.Errorf("wait %d = %v, want %v", i, waits[i], w)
		}
	}
	// Retry-After is honoured, up to the cap.
	if at, _ := p.next(1, first, first, 30*time.Second, nil); at.Sub(first) != 30*time.Second {
		t.Errorf("hint 30s: waited %v", at.Sub(first))
	}
	if at, _ := p.next(1, first, first, 48*time.Hour, nil); at.Sub(first) != time.Hour {
		t.Errorf("hint capped at 1h: waited %v", at.Sub(first))
	}
	// MaxAge ends retries early.
	short := RetryPolicy{Schedule: []time.Duration{time.Hour}, MaxAttempts: 100, MaxAge: 90 * time.Minute}.withDefaults()
	short.Jitter = 0
	if _, give := short.next(1, first, first.Add(time.Hour), 0, nil); !give {
		t.Error("a retry past max_age was scheduled")
	}
	// Jitter stays within ±20%.
	j := RetryPolicy{}.withDefaults()
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 100; i++ {
		at, _ := j.next(2, first, first, 0, rnd)
		if w := at.Sub(first); w < 4*time.Minute || w > 6*time.Minute {
			t.Fatalf("jittered wait %v outside 5m ± 20%%", w)
		}
	}
}
