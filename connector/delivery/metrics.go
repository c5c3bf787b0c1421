package delivery

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	delivered, retried, dead, throttled, split *prometheus.CounterVec
	batchSeconds                               *prometheus.HistogramVec
	lag, pending, state                        *prometheus.GaugeVec
}

// sinkMetrics are one sink's series.
type sinkMetrics struct {
	delivered, retried, dead, throttled, split prometheus.Counter
	batchSeconds                               prometheus.Observer
	lag, pending, state                        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	cv := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"sink"})
	}
	gv := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"sink"})
	}
	m := &metrics{
		delivered: cv("hookbridge_sink_delivered_total", "Rows a sink took (coalesced rows not counted)."),
		retried:   cv("hookbridge_sink_retried_total", "Row failures scheduled for another attempt."),
		dead:      cv("hookbridge_sink_dead_lettered_total", "Rows dead-lettered after a permanent failure or a spent retry policy."),
		throttled: cv("hookbridge_sink_throttled_total", "429 answers from a sink's destination."),
		split:     cv("hookbridge_sink_batch_splits_total", "Batches the destination rejected as a whole and that were split to find the bad rows."),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookbridge_sink_batch_seconds", Help: "Time of one request to a sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"sink"}),
		lag:     gv("hookbridge_sink_lag_seconds", "Age of the oldest event a sink has not finished with."),
		pending: gv("hookbridge_sink_pending_rows", "Rows waiting for a retry, or behind one with the same destination key."),
		state:   gv("hookbridge_sink_state", "0 running, 1 backing off after a sink-wide error, 2 paused."),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.retried, m.dead, m.throttled, m.split, m.batchSeconds, m.lag, m.pending, m.state)
	}
	return m
}

func (m *metrics) forSink(name string) *sinkMetrics {
	return &sinkMetrics{
		delivered: m.delivered.WithLabelValues(name), retried: m.retried.WithLabelValues(name),
		dead: m.dead.WithLabelValues(name), throttled: m.throttled.WithLabelValues(name), split: m.split.WithLabelValues(name),
		batchSeconds: m.batchSeconds.WithLabelValues(name),
		lag:          m.lag.WithLabelValues(name), pending: m.pending.WithLabelValues(name), state: m.state.WithLabelValues(name),
	}
}
