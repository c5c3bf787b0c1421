package connector

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/connector/schedule"
	"github.com/hookbridge/hookbridge/internal/suggest"
	"github.com/hookbridge/hookbridge/schemas"
)

// OpenedSink is a connected sink and what its plugin says about itself.
type OpenedSink struct {
	Sink delivery.Sink
	// Closer stops the plugin.
	Closer io.Closer
	// KeyColumn is the destination key the plugin upserts by (e.g. email_key); "" leaves the
	// default (subscription_id).
	KeyColumn string
	// MaxBatchRows is the most rows the destination takes per request (0: no limit).
	MaxBatchRows int
	// Columns are columns the plugin needs besides the mapped ones.
	Columns []string
}

// SinkOpener connects the plugin of one configured sink and configures it with its settings
// and mapping. It is how the connector reaches the plugin host.
type SinkOpener func(ctx context.Context, sc SinkConfig) (*OpenedSink, error)

var eventTypeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// checkEventType says what is wrong with an event type a sink names (problem), or what looks
// like a mistake (warning). A sink matches stored event types exactly, and the decoder stores
// a documented type in its documented spelling whatever the sender's letter case, so the same
// name in other letter case would match nothing: a problem. A name a few letters from a
// documented one is most likely a typo, but may be an undocumented type the sender will send
// under exactly that name (such events are stored under their sent name): a warning.
func checkEventType(t string) (problem, warning string) {
	if !eventTypeRE.MatchString(t) {
		return fmt.Sprintf("%q is not an event type name (e.g. Subscribe, Unsubscribe, Test)", t), ""
	}
	known := make([]string, len(schemas.KnownTypes))
	for i, k := range schemas.KnownTypes {
		known[i] = string(k)
		if t == known[i] {
			return "", ""
		}
		if strings.EqualFold(t, known[i]) {
			return fmt.Sprintf("%q is written %s", t, known[i]), ""
		}
	}
	if near := suggest.Nearest(t, known); near != "" {
		return "", fmt.Sprintf("%q is not a documented event type (did you mean %s?); the sink gets such events only if the sender sends this exact type", t, near)
	}
	return "", ""
}

// validateSink checks one sink's delivery options (plugin settings are checked by the plugin).
func (c *Config) validateSink(v *ValidationError, i int) {
	s := c.Sinks[i]
	p := fmt.Sprintf("sinks[%d]", i)
	if _, err := schedule.Parse(s.Trigger); err != nil {
		c.problem(v, p+".trigger", "%v", err)
	}
	for j, t := range s.Events {
		problem, warning := checkEventType(t)
		if problem != "" {
			c.problem(v, fmt.Sprintf("%s.events[%d]", p, j), "%s", problem)
		}
		if warning != "" {
			c.warn(fmt.Sprintf("%s.events[%d]", p, j), "%s", warning)
		}
	}
	switch s.Start {
	case "", "latest", "earliest":
	default:
		if _, err := time.Parse(time.RFC3339, s.Start); err != nil {
			c.problem(v, p+".start", "%q: use latest, earliest or an RFC 3339 time", s.Start)
		}
	}
	if s.Batch.MaxRows < 0 {
		c.problem(v, p+".batch.max_rows", "must be positive")
	}
	rl := s.RateLimit
	if (rl.Requests > 0) != (rl.Per > 0) {
		c.problem(v, p+".rate_limit", "set both requests and per (e.g. requests: 100, per: 10s)")
	}
	if rl.Requests < 0 || rl.Daily < 0 {
		c.problem(v, p+".rate_limit", "limits must be positive")
	}
	for j, d := range s.Retry.Schedule {
		if d <= 0 {
			c.problem(v, fmt.Sprintf("%s.retry.schedule[%d]", p, j), "waits must be positive")
		}
	}
	if s.Retry.MaxAttempts < 0 || s.Retry.MaxAge < 0 {
		c.problem(v, p+".retry", "max_attempts and max_age must be positive")
	}
	if s.Timeout < 0 || time.Duration(s.Timeout) > time.Hour {
		c.problem(v, p+".timeout", "must be at most 1h (unset: 2m)")
	}
}

// sinkOptions turns a configured sink and its opened plugin into the engine's options.
func sinkOptions(sc SinkConfig, o *OpenedSink) (delivery.SinkOptions, error) {
	tr, err := schedule.Parse(sc.Trigger)
	if err != nil {
		return delivery.SinkOptions{}, err
	}
	var cols []string
	if len(sc.Mapping) > 0 {
		m, err := schemas.NewMapping(sc.Mapping)
		if err != nil {
			return delivery.SinkOptions{}, err
		}
		cols = m.Columns()
	} else {
		// Without a mapping the sink gets every stored column but the raw body, and the
		// subscription state.
		for _, c := range schemas.Columns() {
			if c.Name != "raw" {
				cols = append(cols, c.Name)
			}
		}
	}
	for _, c := range append(o.Columns, o.KeyColumn) {
		if c != "" && !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	batch := sc.Batch.MaxRows
	if o.MaxBatchRows > 0 && (batch == 0 || batch > o.MaxBatchRows) {
		batch = o.MaxBatchRows
	}
	var sched []time.Duration
	for _, d := range sc.Retry.Schedule {
		sched = append(sched, time.Duration(d))
	}
	return delivery.SinkOptions{
		Name:      sc.Name,
		Plugin:    sc.Plugin,
		Sink:      o.Sink,
		Events:    sc.Events,
		Columns:   cols,
		KeyColumn: o.KeyColumn,
		Coalesce:  o.KeyColumn != "",
		Trigger:   tr,
		Start:     sc.Start,
		BatchRows: batch,
		Requests:  sc.RateLimit.Requests,
		Per:       time.Duration(sc.RateLimit.Per),
		Daily:     sc.RateLimit.Daily,
		Retry:     delivery.RetryPolicy{Schedule: sched, MaxAttempts: sc.Retry.MaxAttempts, MaxAge: time.Duration(sc.Retry.MaxAge)},
		Timeout:   time.Duration(sc.Timeout),
	}, nil
}
