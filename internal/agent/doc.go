// Package agent is the node side of riposte's cluster mode: what `riposte
// agent` runs on every node beside the replicas (riposte serve on a shared
// PostgreSQL).
//
//	detector ─emit─> queue ─> Spool (one fsynced file per alert) ─> Forwarder ─POST /v1/alerts─> replicas
//
// Emit never blocks the detector: a full queue counts the alert dropped
// (riposte_agent_alerts_dropped_total, logged once a second). An alert is
// removed from the spool only after a replica answered 2xx, so an outage of
// every replica, or a restart of the agent, loses nothing the spool took;
// the intake collapses an alert sent twice (after a lost answer) by its
// id. The spool is bounded: beyond Config.SpoolMax alerts are counted and
// logged as dropped, never silently lost.
//
// Replicas tries the replica URLs in turn, starting with the one that
// answered last; no answer or a 5xx moves to the next, and when none
// answers the caller backs off (honouring Retry-After).
//
// The package imports no integration: the runners of the node's actions
// are handed in (Deps.Runners) by the composition root.
//
// An *Agent is safe for concurrent use; Run is called once and returns
// when its context ends, after spooling what was emitted. The caller closes
// what it handed in (the HTTP client, the runners).
package agent
