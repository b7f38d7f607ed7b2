package pagerduty

import "github.com/riposte-sec/riposte/internal/actions"

var routingKey = []string{"PagerDuty Events API v2 routing key"}

// Specs describes the actions this notifier implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "pagerduty.trigger", Notification: true, Help: "Open (or update) a PagerDuty incident; dedup_key is the riposte incident id.",
			Params: []actions.Param{
				{Name: "severity", Type: actions.String, Enum: Severities(), Default: "from priority", Help: "PagerDuty severity"},
				{Name: "summary", Type: actions.String, Default: "the alert output", Help: "summary (template), cut to 1024 characters"},
				actions.ThrottleParam,
			},
			Privileges: routingKey},
		{Name: "pagerduty.resolve", Notification: true, OnRelease: true, Help: "Resolve the PagerDuty incident of this riposte incident.",
			Privileges: routingKey},
	}
}
