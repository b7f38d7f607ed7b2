package email

import "github.com/riposte-sec/riposte/internal/actions"

// Specs describes the actions this notifier implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "email.send", Notification: true, Help: "Send a plain-text and HTML mail about the alert over SMTP (STARTTLS policy from config).",
			Params: []actions.Param{
				{Name: "to", Type: actions.StringList, Default: "from config", Help: "recipients"},
				{Name: "subject", Type: actions.String, Default: "[riposte] <priority> <rule>", Help: "subject (template)"},
				actions.ThrottleParam,
			},
			Privileges: []string{"an SMTP server and, if it requires it, credentials"}},
	}
}
