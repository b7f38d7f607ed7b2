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
// Node actions (cluster mode): the agent long-polls the replicas for the
// container actions addressed to its node (POST /v1/agent/claim), runs each
// with the runner handed in, records the outcome on disk (actions/, one
// fsynced file per action key) and answers it (POST /v1/agent/result); the
// ledger forgets an outcome once a replica recorded it or the request was
// closed. At most once: a request claimed again (its lease ran out: the
// agent died, or stalled) is answered from the ledger when the outcome is
// there, else reported failed in doubt and not run. Heartbeats (a third of
// the replicas' lease) extend the leases of what runs. The end of a
// background capture is kept (captures/) and reported (POST
// /v1/agent/capture) the same way; a capture that was recording when the
// agent died is reported cut short at its next start.
//
// The package imports no integration: the runners of the node's actions
// are handed in (Deps.Runners) by the composition root.
//
// An *Agent is safe for concurrent use; Run is called once and returns
// when its context ends, after spooling what was emitted. The caller closes
// what it handed in (the HTTP client, the runners).
package agent
