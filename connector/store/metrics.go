package store

import "github.com/prometheus/client_golang/prometheus"

// metrics are the store's Prometheus series.
type metrics struct {
	commitSeconds     prometheus.Histogram
	commitSize        prometheus.Histogram
	checkpointSeconds prometheus.Histogram
	eventsStored      prometheus.Counter
	queueFull         prometheus.Counter
	unhealthy         prometheus.Gauge
	mergeSeconds      prometheus.Histogram
	mergeFailures     prometheus.Counter

	analyticsRefreshSeconds prometheus.Histogram
	analyticsApplySeconds   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookbridge_store_commit_seconds", Help: "Time to write and commit one group of requests.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		commitSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookbridge_store_commit_batch_size", Help: "Requests committed together in one transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		checkpointSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookbridge_store_checkpoint_seconds", Help: "Time the writer spent folding the WAL into the database file.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		eventsStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookbridge_store_events_stored_total", Help: "Events written to the events table.",
		}),
		queueFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookbridge_store_queue_full_total", Help: "Requests refused because the write queue was full.",
		}),
		unhealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookbridge_store_unhealthy", Help: "1 when the database cannot take writes.",
		}),
		mergeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookbridge_store_state_merge_seconds", Help: "Time to merge pending subscription changes into the subscriptions table.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
		mergeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookbridge_store_state_merge_failures_total", Help: "Failed merges of subscription changes (retried).",
		}),
		analyticsRefreshSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookbridge_store_analytics_refresh_seconds", Help: "Time to fold subscription changes into the kept mailing-list and tag-popularity tables, reading included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		analyticsApplySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookbridge_store_analytics_apply_seconds", Help: "The writer's share of a refresh of the kept analytics tables: replacing the rows.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.commitSeconds, m.commitSize, m.checkpointSeconds, m.eventsStored, m.queueFull, m.unhealthy, m.mergeSeconds, m.mergeFailures,
			m.analyticsRefreshSeconds, m.analyticsApplySeconds)
	}
	return m
}
