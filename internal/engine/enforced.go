package engine

import (
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// enforcedEntry is the journal entry of an alert whose exec the detector's
// kernel hook decided about (a rule marked `enforce:`): the signal was
// sent before the engine saw the alert, so it is journaled after the fact,
// with the alert's processing.
func enforcedEntry(a *alert.Alert) (store.Entry, bool) {
	if !a.KernelEnforced() {
		return store.Entry{}, false
	}
	detail := map[string]any{
		"rule":      a.Rule,
		"outcome":   a.Field(alert.FieldEnforceOutcome),
		"signal":    a.Field(alert.FieldEnforceSignal),
		"pid":       a.Field(alert.FieldEnforcePID),
		"exe":       a.Field("proc.exepath"),
		"container": a.Field("container.id"),
	}
	if r := a.Field(alert.FieldEnforceReason); r != "" {
		detail["reason"] = r
	}
	return store.Entry{Type: store.ActionEnforced, AlertID: a.ID, Action: "kernel.signal", Actor: "detector", Detail: detail}, true
}
