package detector

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riposte-sec/riposte/detector/enforce"
	"github.com/riposte-sec/riposte/detector/sensor"
)

// Stats are the detector's counters since New.
type Stats struct {
	Events         uint64            // records decoded
	QueueDrops     uint64            // records the reader could not queue
	KernelDrops    map[string]uint64 // per event type, events the kernel could not put in the ring buffer
	KernelFiltered uint64            // events the kernel dropped on purpose, summed over KernelFilteredByType
	// KernelFilteredByType counts, per event type, the events the kernel
	// dropped on purpose: types no rule (and no capture) needs, failures
	// no rule looks at, read-only library opens (Config.ReportLibraryReads,
	// as open), non-blocking accepts that found no connection (as accept).
	KernelFilteredByType map[string]uint64
	SubscriberDrops      uint64 // events a slow subscriber missed
	DecodeErrors         uint64
	RuleErrors           uint64
	Alerts               uint64
	AlertsByRule         map[string]uint64 // alerts per rule that fired; rules that never fired are absent
	Enforce              enforce.Stats     // the kernel's enforcement counters while it runs
}

// TotalDrops is every event lost, in the kernel or in the queue.
func (s Stats) TotalDrops() uint64 {
	n := s.QueueDrops
	for _, v := range s.KernelDrops {
		n += v
	}
	return n
}

type metrics struct {
	events          *prometheus.CounterVec
	queueDrops      prometheus.Counter
	subscriberDrops prometheus.Counter
	decodeErrors    prometheus.Counter
	ruleErrors      *prometheus.CounterVec
	alerts          *prometheus.CounterVec

	nEvents, nQueueDrops, nSubDrops, nDecodeErrors, nRuleErrors, nAlerts atomic.Uint64

	byRuleMu sync.Mutex
	byRule   map[string]uint64 // alerts per rule, for Stats

	sensor atomic.Pointer[sensor.Sensor]
	// enforcer is set while Run runs with enforcement.
	enforcer atomic.Pointer[enforce.Enforcer]
}

// alerted counts one alert of rule.
func (m *metrics) alerted(rule string) {
	m.nAlerts.Add(1)
	m.alerts.WithLabelValues(rule).Inc()
	m.byRuleMu.Lock()
	if m.byRule == nil {
		m.byRule = make(map[string]uint64)
	}
	m.byRule[rule]++
	m.byRuleMu.Unlock()
}

// alertsByRule returns a copy of the per-rule alert counts.
func (m *metrics) alertsByRule() map[string]uint64 {
	m.byRuleMu.Lock()
	defer m.byRuleMu.Unlock()
	return maps.Clone(m.byRule)
}

func newMetrics(reg prometheus.Registerer, queueLen func() float64) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_detector_events_total", Help: "Events decoded from the eBPF sensor, by type.",
		}, []string{"type"}),
		queueDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riposte_detector_queue_dropped_total", Help: "Events dropped because the detector's queue was full.",
		}),
		subscriberDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riposte_detector_subscriber_dropped_total", Help: "Events not delivered to a slow subscriber.",
		}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riposte_detector_decode_errors_total", Help: "Ring-buffer records that could not be decoded.",
		}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_detector_rule_errors_total", Help: "Rule evaluations that failed at run time, by rule.",
		}, []string{"rule"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_detector_alerts_total", Help: "Alerts emitted, by rule.",
		}, []string{"rule"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.events, m.queueDrops, m.subscriberDrops, m.decodeErrors, m.ruleErrors, m.alerts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "riposte_detector_queue_length", Help: "Events waiting in the detector's queue.",
		}, queueLen),
		&kernelDrops{m: m},
		&enforceCounters{m: m},
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// kernelDrops exports the sensor's per-type drop counters (a BPF map) at
// scrape time.
type kernelDrops struct{ m *metrics }

var kernelDropsDesc = prometheus.NewDesc("riposte_detector_kernel_dropped_total",
	"Events the kernel dropped because the ring buffer was full, by type.", []string{"type"}, nil)

func (k *kernelDrops) Describe(ch chan<- *prometheus.Desc) { ch <- kernelDropsDesc }

func (k *kernelDrops) Collect(ch chan<- prometheus.Metric) {
	s := k.m.sensor.Load()
	if s == nil {
		return
	}
	drops, err := s.Drops()
	if err != nil {
		return
	}
	for t, n := range drops {
		ch <- prometheus.MustNewConstMetric(kernelDropsDesc, prometheus.CounterValue, float64(n), t)
	}
}
