package slack

import "github.com/riposte-sec/riposte/internal/actions"

// Specs describes the actions this notifier implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "slack.notify", Notification: true, Help: "Post the alert to a Slack channel with response buttons (Pause, Quarantine, Kill, Snapshot, Release, Acknowledge); later steps update the same message and reply in its thread.",
			Params: []actions.Param{
				{Name: "channel", Type: actions.String, Default: "from config", Help: "channel name or id"},
				{Name: "text", Type: actions.String, Help: "headline (template); default: rule and container"},
				actions.ThrottleParam,
			},
			Privileges: []string{"Slack bot token with chat:write (or an incoming webhook URL, without buttons)"}},
	}
}
