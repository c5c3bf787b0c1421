package admin

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTypeCountsAreKeptTenSeconds: the overview's breakdown is counted once per
// typeCountsMaxAge, again once older, and a failed count is not kept.
func TestTypeCountsAreKeptTenSeconds(t *testing.T) {
	var tc typeCounts
	calls := 0
	var fail error
	compute := func(context.Context) ([]typeCount, error) {
		calls++
		return []typeCount{{"Subscribe", int64(calls)}}, fail
	}
	get := func() ([]typeCount, error) {
		counts, _, err := tc.get(context.Background(), compute)
		return counts, err
	}
	if c, err := get(); err != nil || c[0].Count != 1 {
		t.Fatalf("first: %v %v", c, err)
	}
	if c, _ := get(); c[0].Count != 1 || calls != 1 {
		t.Errorf("within the max age: %v after %d counts, want the kept one", c, calls)
	}
	tc.mu.Lock()
	tc.at = time.Now().Add(-typeCountsMaxAge - time.Second)
	tc.mu.Unlock()
	fail = errors.New("store busy")
	if _, err := get(); err == nil {
		t.Error("a failed count was not reported")
	}
	fail = nil
	if c, _ := get(); c[0].Count != 3 {
		t.Errorf("after a failure: %v, want a fresh count", c)
	}
}
