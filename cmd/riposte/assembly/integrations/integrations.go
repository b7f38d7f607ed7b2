package integrations

import (
	"strings"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/email"
	"github.com/riposte-sec/riposte/notifiers/pagerduty"
	"github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/webhook"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/docker"
	"github.com/riposte-sec/riposte/responders/kubernetes"
)

// JournalNote is the built-in action that writes a note to the IR journal.
var JournalNote = actions.Spec{
	Name: "journal.note", Help: "Write a note into the IR journal.",
	Params: []actions.Param{{Name: "text", Type: actions.String, Required: true, Help: "note (template)"}},
}

// Specs lists every action riposte implements.
func Specs() []actions.Spec {
	var all []actions.Spec
	all = append(all, docker.Specs()...)
	all = append(all, capture.Specs()...)
	all = append(all, kubernetes.Specs()...)
	all = append(all, slack.Specs()...)
	all = append(all, pagerduty.Specs()...)
	all = append(all, email.Specs()...)
	all = append(all, webhook.Specs()...)
	all = append(all, JournalNote)
	return all
}

// Catalog returns the catalog of every action riposte implements.
func Catalog() *actions.Catalog {
	c, err := actions.NewCatalog(Specs()...)
	if err != nil {
		// The list above is fixed at compile time; a duplicate is a bug that
		// the registry test catches.
		panic(err)
	}
	return c
}

// IsNotification reports whether an action is a notification: delivered
// through the durable outbox, never inline with containment.
func IsNotification(action string) bool {
	for _, specs := range [][]actions.Spec{slack.Specs(), pagerduty.Specs(), email.Specs(), webhook.Specs()} {
		for _, s := range specs {
			if s.Name == action {
				return true
			}
		}
	}
	return false
}

// HowToConfigure says what enables an action that has no runner.
func HowToConfigure(action string) string {
	section, _, _ := strings.Cut(action, ".")
	switch section {
	case "slack", "pagerduty", "email", "webhook":
		return "add a notifiers." + section + " section to the config"
	case "pod":
		return "add a kubernetes section to the config"
	case "capture":
		return "enable the detector (detector.enabled: true); captures need its event stream"
	}
	return "add a " + section + " section to the config"
}
