package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/delivery"
)

func cmdReplay(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "replay", "replay --sink S (--event ID | --since T [--until T] | --dead-letters) [--no-wait]")
	af := addAdminFlags(fs)
	sink := fs.String("sink", "", "sink to re-send to (required)")
	event := fs.String("event", "", "re-send one event")
	since := fs.String("since", "", "re-send events received from this RFC 3339 time (or a duration ago, e.g. 24h)")
	until := fs.String("until", "", "… up to this time (default now)")
	dead := fs.Bool("dead-letters", false, "re-send the sink's unresolved dead letters")
	noWait := fs.Bool("no-wait", false, "return once the replay is queued instead of following its progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req := admin.ReplayRequest{Sink: *sink, EventID: *event, DeadLetters: *dead, Wait: !*noWait}
	var err error
	if req.Since, err = parseWhen(*since); err != nil {
		return usageError{"--since: " + err.Error()}
	}
	if req.Until, err = parseWhen(*until); err != nil {
		return usageError{"--until: " + err.Error()}
	}
	sel := delivery.Selection{EventID: req.EventID, Since: req.Since, Until: req.Until, DeadLetters: req.DeadLetters}
	if err := sel.Validate(); err != nil || *sink == "" {
		if err != nil && !req.Until.IsZero() && !req.Since.IsZero() {
			// A duration is a time ago: --since 1h --until 2h ends before it starts.
			return usageError{fmt.Sprintf("--until %s is not after --since %s: %v (a duration is that long ago, so --since 2h --until 1h is the hour before the last)", *until, *since, err)}
		}
		return usageError{"usage: hookbridge replay --sink S (--event ID | --since T [--until T] | --dead-letters)"}
	}
	c := af.client(e)
	if *noWait {
		var p delivery.ReplayStatus
		if err := c.do(ctx, "POST", "/admin/v1/replays", req, &p); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "replay %s queued: %d rows to %s (%s)\n", p.ID, p.Total, p.Sink, p.Description)
		return nil
	}
	var last delivery.ReplayStatus
	var bar *progressBar
	err = c.stream(ctx, "POST", "/admin/v1/replays", req, func(line []byte) error {
		var msg struct {
			delivery.ReplayStatus
			Error string `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return fmt.Errorf("replay progress: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("replay: %s", msg.Error)
		}
		if bar == nil {
			bar = newProgressBar(e.stderr, fmt.Sprintf("replay %s to %s", msg.ID, msg.Sink))
		}
		last = msg.ReplayStatus
		bar.update(last.Done, last.Total)
		return nil
	})
	if err != nil {
		return err
	}
	if last.ID == "" {
		return errors.New("replay: the server sent no progress")
	}
	if last.Done < last.Total {
		return fmt.Errorf("replay %s: the server stopped reporting progress after %d of %d rows (it goes on: see 'hookbridge deliveries --sink %s')", last.ID, last.Done, last.Total, *sink)
	}
	fmt.Fprintf(e.stdout, "replay %s to %s (%s): %s: %d delivered, %d failed again (dead-lettered)\n", last.ID, last.Sink, last.Description, rowsNoun(last.Total), last.Delivered, last.Failed)
	if last.Failed > 0 {
		return fmt.Errorf("replay %s: %d of %s failed again and were dead-lettered (see 'hookbridge dead-letters --sink %s' and 'hookbridge deliveries --sink %s')", last.ID, last.Failed, rowsNoun(last.Total), last.Sink, last.Sink)
	}
	return nil
}

// rowsNoun is "1 row" or "N rows".
func rowsNoun(n int) string {
	if n == 1 {
		return "1 row"
	}
	return strconv.Itoa(n) + " rows"
}

// parseWhen reads an RFC 3339 time or a duration ago ("" is the zero time).
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: use an RFC 3339 time (2026-11-22T09:00:00Z) or a duration ago (2h)", s)
}
