package agent

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the agent's counters and gauges.
type Metrics struct {
	SpoolDepth     prometheus.Gauge
	Spooled        prometheus.Counter
	Dropped        *prometheus.CounterVec
	SpoolRejected  *prometheus.CounterVec
	Forwarded      prometheus.Counter
	ForwardErrors  *prometheus.CounterVec
	ForwardSeconds prometheus.Histogram
	Actions        *prometheus.CounterVec
}

// NewMetrics builds the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SpoolDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riposte_agent_spool_alerts", Help: "Alerts spooled on disk, not yet acknowledged by a replica.",
		}),
		Spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riposte_agent_alerts_spooled_total", Help: "Alerts written to the spool.",
		}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_agent_alerts_dropped_total", Help: "Alerts the agent could not keep, by reason (queue_full, spool_full, spool_error).",
		}, []string{"reason"}),
		SpoolRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_agent_alerts_set_aside_total", Help: "Spooled alerts set aside in the spool's bad/ directory, by reason (refused by the intake, corrupt).",
		}, []string{"reason"}),
		Forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riposte_agent_alerts_forwarded_total", Help: "Alerts a replica acknowledged.",
		}),
		ForwardErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_agent_forward_errors_total", Help: "Failed forwarding tries, by cause (unavailable or the status).",
		}, []string{"cause"}),
		ForwardSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riposte_agent_forward_seconds", Help: "Time of one successful POST of alerts to a replica.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_agent_actions_total", Help: "Node actions taken from the replicas, by action and status.",
		}, []string{"action", "status"}),
	}
	if reg != nil {
		reg.MustRegister(m.SpoolDepth, m.Spooled, m.Dropped, m.SpoolRejected, m.Forwarded, m.ForwardErrors, m.ForwardSeconds, m.Actions)
	}
	return m
}
