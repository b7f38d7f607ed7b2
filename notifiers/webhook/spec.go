package webhook

import "github.com/riposte-sec/riposte/internal/actions"

// Specs describes the actions this notifier implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "webhook.post", Notification: true, Help: "POST the alert and the actions taken as JSON to a configured endpoint, optionally signed with HMAC-SHA256.",
			Params: []actions.Param{
				{Name: "endpoint", Type: actions.String, Default: "default", Help: "name of a webhook endpoint in the config"},
				actions.ThrottleParam,
			},
			Privileges: []string{"network access to the endpoint"}},
	}
}
