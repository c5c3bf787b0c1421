package schedule

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 7, 30, 0, time.UTC)
	tests := []struct {
		spec string
		next time.Time
	}{
		{"*/5 * * * *", time.Date(2026, 11, 22, 10, 10, 0, 0, time.UTC)},
		{"0 * * * *", time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)},
		{"30 */5 * * * *", time.Date(2026, 11, 22, 10, 10, 30, 0, time.UTC)}, // optional seconds field
		{"@every 1m", base.Add(time.Minute)},
		{"@hourly", time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Australia/Melbourne 0 9 * * *", time.Date(2026, 11, 22, 22, 0, 0, 0, time.UTC)}, // 09:00 AEDT = 22:00 UTC
	}
	for _, tt := range tests {
		tr, err := Parse(tt.spec)
		if err != nil {
			t.Errorf("%s: %v", tt.spec, err)
			continue
		}
		if got := tr.Next(base); !got.Equal(tt.next) {
			t.Errorf("%s: next after %v = %v, want %v", tt.spec, base, got, tt.next)
		}
	}
	for _, spec := range []string{"", "realtime", " realtime "} {
		if tr, err := Parse(spec); err != nil || !tr.Realtime {
			t.Errorf("%q: %+v %v", spec, tr, err)
		}
	}
	for _, bad := range []string{"CRON_TZ=UTC", "CRON_TZ=Mars/Base 0 * * * *", "61 * * * *", "every minute", "@every 100ms", "* * *"} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "schedule:") {
			t.Errorf("%q accepted (err %v)", bad, err)
		}
	}
}

func TestTicksFollowTheSchedule(t *testing.T) {
	tr, err := Parse("@every 1h")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fire := make(chan time.Time)
	var asked []time.Duration
	clock := func() time.Time { return now }
	after := func(d time.Duration) <-chan time.Time {
		asked = append(asked, d)
		return fire
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ticks := tr.Ticks(ctx, clock, after)
	fire <- now
	got := <-ticks
	if !got.Equal(now.Add(time.Hour)) || asked[0] != time.Hour {
		t.Errorf("tick %v after waiting %v", got, asked)
	}
}
