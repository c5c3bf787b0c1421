package receiver

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbridge/hookbridge/schemas"
)

type metrics struct {
	received     *prometheus.CounterVec
	accepted     *prometheus.CounterVec
	duplicate    *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	unauthorized *prometheus.CounterVec
	unavailable  *prometheus.CounterVec
	failed       *prometheus.CounterVec
	seconds      *prometheus.HistogramVec

	mu        sync.Mutex
	perSource map[string]*sourceMetrics
}

// sourceMetrics holds one source's series, resolved once so the hot path does no label
// hashing.
type sourceMetrics struct {
	parent       *metrics
	source       string
	received     prometheus.Counter
	duplicate    prometheus.Counter
	unauthorized prometheus.Counter
	unavailable  prometheus.Counter
	failed       prometheus.Counter
	seconds      prometheus.Observer
	byType       map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		received:     counter("hookbridge_webhooks_received_total", "Webhook requests received, per source.", "source"),
		accepted:     counter("hookbridge_webhooks_accepted_total", "Events stored, per source and event type (unknown types counted as unknown).", "source", "event_type"),
		duplicate:    counter("hookbridge_webhooks_duplicate_total", "Events whose eventId was already stored (answered 200, nothing written).", "source"),
		rejected:     counter("hookbridge_webhooks_rejected_total", "Bodies refused with a 4xx and kept in the rejected table, per reason.", "source", "reason"),
		unauthorized: counter("hookbridge_webhooks_unauthorized_total", "Requests refused with 401; nothing stored.", "source"),
		unavailable:  counter("hookbridge_webhooks_unavailable_total", "Requests answered 503 (write queue full or database unavailable).", "source"),
		failed:       counter("hookbridge_webhooks_failed_total", "Requests answered 500 because the store failed.", "source"),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookbridge_webhooks_request_seconds", Help: "Time from request to answer, per source.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"source"}),
		perSource: map[string]*sourceMetrics{},
	}
	if reg != nil {
		reg.MustRegister(m.received, m.accepted, m.duplicate, m.rejected, m.unauthorized, m.unavailable, m.failed, m.seconds)
	}
	return m
}

func (m *metrics) forSource(source string) *sourceMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sm, ok := m.perSource[source]; ok {
		return sm
	}
	sm := &sourceMetrics{
		parent: m, source: source,
		received: m.received.WithLabelValues(source), duplicate: m.duplicate.WithLabelValues(source),
		unauthorized: m.unauthorized.WithLabelValues(source), unavailable: m.unavailable.WithLabelValues(source),
		failed: m.failed.WithLabelValues(source), seconds: m.seconds.WithLabelValues(source),
		byType: map[string]prometheus.Counter{},
	}
	for _, t := range schemas.KnownTypes {
		sm.byType[string(t)] = m.accepted.WithLabelValues(source, string(t))
	}
	sm.byType["unknown"] = m.accepted.WithLabelValues(source, "unknown")
	m.perSource[source] = sm
	return sm
}

func (sm *sourceMetrics) accepted(eventType string) prometheus.Counter {
	if c, ok := sm.byType[eventType]; ok {
		return c
	}
	return sm.byType["unknown"]
}

func (sm *sourceMetrics) rejected(reason string) prometheus.Counter {
	return sm.parent.rejected.WithLabelValues(sm.source, reason)
}
