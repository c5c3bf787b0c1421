package admin

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestChartCacheServesKeptSetsAndRefreshesOldOnes(t *testing.T) {
	var cc chartCache
	var calls atomic.Int32
	var mu sync.Mutex
	age, fail := time.Duration(0), false
	release := make(chan struct{})
	compute := func(ctx context.Context, c chartChoice) (*chartSet, error) {
		n := calls.Add(1)
		if n == 3 {
			<-release // the background refresh waits until the test has looked at it
		}
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("store busy")
		}
		return &chartSet{listTotal: int64(n), at: time.Now().Add(-age)}, nil
	}
	var errs atomic.Int32
	onError := func(error) { errs.Add(1) }
	get := func(c chartChoice) *chartSet {
		t.Helper()
		set, err := cc.get(context.Background(), c, compute, onError)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	a := chartChoice{from: "2026-11-01"}
	if got := get(a).listTotal; got != 1 || calls.Load() != 1 {
		t.Fatalf("first request: set %d after %d computations", got, calls.Load())
	}
	if got := get(a).listTotal; got != 1 || calls.Load() != 1 {
		t.Fatalf("a fresh set was computed again: set %d after %d computations", got, calls.Load())
	}
	// Another choice is its own set.
	b := chartChoice{from: "2026-10-01"}
	mu.Lock()
	age = time.Minute // this one is born old
	mu.Unlock()
	if got := get(b).listTotal; got != 2 {
		t.Fatalf("second choice: set %d", got)
	}
	// An old set is served at once while one background refresh runs, however many ask.
	for range 5 {
		if got := get(b).listTotal; got != 2 {
			t.Fatalf("during the refresh: set %d", got)
		}
	}
	waitUntil(t, func() bool { return calls.Load() == 3 })
	mu.Lock()
	age = 0
	mu.Unlock()
	close(release)
	waitUntil(t, func() bool { return get(b).listTotal == 3 })
	if calls.Load() != 3 {
		t.Errorf("%d computations, want 3 (one refresh for five requests)", calls.Load())
	}
	// A failed refresh keeps the older set and reports the error.
	mu.Lock()
	age, fail = time.Minute, false
	mu.Unlock()
	c := chartChoice{from: "2026-09-01"}
	old := get(c).listTotal
	mu.Lock()
	fail = true
	mu.Unlock()
	get(c)
	waitUntil(t, func() bool { return errs.Load() == 1 })
	if got := get(c).listTotal; got != old {
		t.Errorf("after a failed refresh: set %d, want the older %d", got, old)
	}
	// Only chartsKept choices are kept: the least recently used goes.
	mu.Lock()
	age, fail = 0, false
	mu.Unlock()
	for i := range chartsKept {
		get(chartChoice{calendar: string(rune('a' + i))})
	}
	cc.mu.Lock()
	n, kept := len(cc.entries), cc.entries[a] != nil
	cc.mu.Unlock()
	if n != chartsKept || kept {
		t.Errorf("%d sets kept (want %d), the oldest still there: %v", n, chartsKept, kept)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}
