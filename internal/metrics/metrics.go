// Package metrics defines riposte's Prometheus metrics in one place. Labels
// are bounded: reasons, playbook names and action names come from the
// configuration and the code, never from alert text.
//
// A *Metrics is safe for concurrent use. New with a nil registerer returns
// metrics that work but are exported nowhere (tests, `playbook test`).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's and the engine's instruments.
type Metrics struct {
	AlertsReceived   *prometheus.CounterVec   // by source (webhook, detector, slack)
	AlertsRejected   *prometheus.CounterVec   // by reason
	AlertsDuplicate  prometheus.Counter       //
	PlaybookMatches  *prometheus.CounterVec   // by playbook
	Actions          *prometheus.CounterVec   // by action and status
	QueueDepth       *prometheus.GaugeVec     // by queue (inbox, outbox, approvals)
	AcceptSeconds    prometheus.Histogram     // HTTP intake, body read to durable
	ProcessSeconds   prometheus.Histogram     // alert accepted to its plans done
	ActionSeconds    *prometheus.HistogramVec // by action
	NotifyAttempts   *prometheus.CounterVec   // outbox deliveries by kind and outcome
	ContainmentDelay prometheus.Histogram     // alert time to first containment action done
	AuthRefused      *prometheus.CounterVec   // scoped endpoints: by scope needed and status (401, 403)
	IntakeInFlight   prometheus.Gauge         // intake body bytes held now (the budget's use)
}

// Reject reasons (label values of riposte_alerts_rejected_total).
const (
	RejectUnauthorized = "unauthorized"
	RejectTooLarge     = "too_large"
	RejectContentType  = "content_type"
	RejectMalformed    = "malformed"
	RejectMethod       = "method"
	RejectUnavailable  = "unavailable"
	RejectConflict     = "conflict" // uuid reused with other content
	RejectBusy         = "busy"     // the intake memory budget was spent (503)
)

// New creates the metrics and registers them with reg (nil: not exported).
func New(reg prometheus.Registerer) *Metrics {
	lat := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		AlertsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_alerts_received_total", Help: "Alerts accepted into the durable inbox, by source.",
		}, []string{"source"}),
		AlertsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_alerts_rejected_total", Help: "Intake requests rejected, by reason.",
		}, []string{"reason"}),
		AlertsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riposte_alerts_duplicate_total", Help: "Alerts whose id was already in the inbox (journaled, not re-run).",
		}),
		PlaybookMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_playbook_matches_total", Help: "Alerts matched, by playbook.",
		}, []string{"playbook"}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_actions_total", Help: "Actions by name and outcome (succeeded, failed, queued, skipped_dry_run, blocked_protected, held_for_approval, skipped_if).",
		}, []string{"action", "status"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riposte_queue_depth", Help: "Items waiting, by queue (inbox, outbox, approvals).",
		}, []string{"queue"}),
		AcceptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riposte_accept_seconds", Help: "Webhook intake latency: request read to alerts durable.", Buckets: lat,
		}),
		ProcessSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riposte_process_seconds", Help: "Engine latency per alert: accepted to every plan done or handed off.", Buckets: lat,
		}),
		ActionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "riposte_action_seconds", Help: "Action run time, by action.", Buckets: lat,
		}, []string{"action"}),
		NotifyAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_notify_attempts_total", Help: "Outbox delivery attempts, by kind and outcome (delivered, retry, dead).",
		}, []string{"kind", "outcome"}),
		ContainmentDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riposte_containment_seconds", Help: "From the alert's event time to its first containment action done.", Buckets: lat,
		}),
		AuthRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riposte_auth_refused_total", Help: "Requests to scoped endpoints refused, by scope needed and status (401 no or bad credential, 403 wrong scope or socket peer).",
		}, []string{"scope", "status"}),
		IntakeInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riposte_intake_inflight_bytes", Help: "Intake body bytes held now (read, decoded or being stored); bounded by auth.max_in_flight.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.AlertsReceived, m.AlertsRejected, m.AlertsDuplicate, m.PlaybookMatches, m.Actions,
			m.QueueDepth, m.AcceptSeconds, m.ProcessSeconds, m.ActionSeconds, m.NotifyAttempts, m.ContainmentDelay, m.AuthRefused, m.IntakeInFlight)
	}
	return m
}
