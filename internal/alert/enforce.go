package alert

import "strings"

// Output fields of an alert whose rule the detector enforces in the kernel
// (a rule marked `enforce:`): what the kernel did about the exec.
const (
	// FieldEnforceOutcome: signalled, dry_run, budget_exhausted, failed
	// (the kernel decided), or protected, not_armed (it did not).
	FieldEnforceOutcome = "riposte.enforce.outcome"
	FieldEnforceSignal  = "riposte.enforce.signal" // SIGKILL or SIGSTOP
	FieldEnforcePID     = "riposte.enforce.pid"    // the process the kernel decided about
	FieldEnforceReason  = "riposte.enforce.reason" // why nothing was sent
)

// EnforcePrefix starts every enforcement field. Only riposte's own
// detector (in serve, or a node agent's) may set them: the engine journals
// action.enforced from them.
const EnforcePrefix = "riposte.enforce."

// EnforcementField returns the first field of a that starts with
// EnforcePrefix, if any, so that intake can refuse it from a sender that
// is not a detector of riposte's.
func (a *Alert) EnforcementField() (string, bool) {
	for k := range a.OutputFields {
		if strings.HasPrefix(k, EnforcePrefix) {
			return k, true
		}
	}
	return "", false
}

// KernelEnforced reports whether the kernel decided about the alert's exec
// (signalled it, would have in dry run, or held back by its budget or an
// error), as opposed to not looking at it at all.
func (a *Alert) KernelEnforced() bool {
	switch a.Field(FieldEnforceOutcome) {
	case "signalled", "dry_run", "budget_exhausted", "failed":
		return true
	}
	return false
}
