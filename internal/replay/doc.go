// Package replay answers "what would these playbooks have done with the
// alerts we had?": it runs the stored alerts of a window through a set of
// playbooks in dry run — nothing is executed and nothing is written — with
// the silences that were in force when each alert was received, and
// compares, per alert, the actions that would be taken with those the
// journal recorded (`riposte playbook replay`).
//
// An action counts as taken when it was planned and not skipped for a
// reason the playbooks decide: its `if` was false, it acts on a container
// and the alert is about the host, or a silence muted it. Dry-run skips,
// guardrail refusals, held approvals and run-time failures count as taken:
// replay compares what the playbooks decide, not how the actions fared.
// The journal is read through one function, Journaled.
//
// Run only reads its Source; it is safe to call concurrently with a
// running server. The caller owns and closes the store.
package replay
