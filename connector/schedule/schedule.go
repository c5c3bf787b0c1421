// Package schedule turns a sink's trigger ("realtime", or a cron spec) into something a
// delivery loop can wait on. Cron specs follow robfig/cron/v3: five fields, an optional
// leading seconds field, descriptors (@hourly, @every 1m) and a CRON_TZ=Zone prefix.
package schedule

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Trigger says when a sink looks for new rows.
type Trigger struct {
	// Realtime loops wake as soon as new events commit.
	Realtime bool
	// Spec is the trigger as written.
	Spec     string
	schedule cron.Schedule
}

// parser accepts 5 or 6 fields (seconds optional) and descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads a trigger. "" and "realtime" are realtime.
func Parse(spec string) (t Trigger, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "realtime" {
		return Trigger{Realtime: true, Spec: "realtime"}, nil
	}
	// robfig/cron panics on some inputs (a spec that is only a zone prefix, "CRON_TZ=UTC").
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("schedule: %q is not a cron spec (%v)", spec, r)
		}
	}()
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		// robfig/cron silently rounds anything under a second up to one.
		if dur, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && dur < time.Second {
			return Trigger{}, fmt.Errorf("schedule: %q: @every needs at least 1s (use realtime for immediate delivery)", spec)
		}
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return Trigger{}, fmt.Errorf("schedule: %q: %w (use realtime, 5 or 6 cron fields, @hourly, or @every 5m)", spec, err)
	}
	return Trigger{Spec: spec, schedule: s}, nil
}

// Next returns the first activation after t (the zero time for realtime triggers).
func (t Trigger) Next(after time.Time) time.Time {
	if t.Realtime {
		return time.Time{}
	}
	return t.schedule.Next(after)
}

// Ticks sends each activation time on the returned channel until ctx ends. now and after
// are the clock (time.Now and time.After in production; tests pass their own). Ticks that
// the receiver is too busy to take are dropped, not queued: one pending tick is enough to
// make a loop drain everything new.
func (t Trigger) Ticks(ctx context.Context, now func() time.Time, after func(time.Duration) <-chan time.Time) <-chan time.Time {
	ch := make(chan time.Time, 1)
	if t.Realtime {
		close(ch)
		return ch
	}
	go func() {
		for {
			next := t.schedule.Next(now())
			select {
			case <-ctx.Done():
				return
			case <-after(next.Sub(now())):
			}
			select {
			case ch <- next:
			default:
			}
		}
	}()
	return ch
}
