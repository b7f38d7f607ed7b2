// Package registry is the one explicit list of riposte's integrations: every
// responder and notifier, and the actions they implement. Nothing registers
// itself; adding an integration means adding it here.
package registry

import (
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/email"
	"github.com/riposte-sec/riposte/notifiers/pagerduty"
	"github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/webhook"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/docker"
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
