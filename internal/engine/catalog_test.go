package engine

import (
	"github.com/riposte-sec/riposte/internal/actions"
)

// testSpecs are the actions the engine's tests play with. They carry the
// behaviour flags the engine reads (the engine knows no action by name), so
// the tests do not depend on any integration.
var testSpecs = []actions.Spec{
	{Name: "container.pause", Destructive: true, Container: true, Idempotent: true},
	{Name: "container.stop", Destructive: true, Container: true},
	{Name: "container.kill", Destructive: true, Container: true,
		Params: []actions.Param{{Name: "signal", Type: actions.Signal}}},
	{Name: "container.snapshot", Container: true},
	{Name: "container.release", Container: true, Releases: true},
	{Name: "slack.notify", Notification: true,
		Params: []actions.Param{{Name: "channel", Type: actions.String}, {Name: "text", Type: actions.String}, actions.ThrottleParam}},
	{Name: "pagerduty.trigger", Notification: true,
		Params: []actions.Param{{Name: "severity", Type: actions.String, Enum: []string{"critical", "error", "warning", "info"}}}},
	{Name: "pagerduty.resolve", Notification: true, OnRelease: true},
	{Name: "journal.note", NoteParam: "text",
		Params: []actions.Param{{Name: "text", Type: actions.String, Required: true}}},
}

func testCatalog() *actions.Catalog {
	c, err := actions.NewCatalog(testSpecs...)
	if err != nil {
		panic(err)
	}
	return c
}
