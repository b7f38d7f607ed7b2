package alert

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
