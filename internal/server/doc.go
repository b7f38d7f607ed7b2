// Package server is riposte's HTTP front: the authenticated alert intake
// (POST /v1/alerts and POST / for Falco's http_output and Falcosidekick's
// webhook output), health and readiness, Prometheus metrics, the routes it
// authenticates by scope for the layers above (Deps.Scoped: POST /v1/act,
// GET /v1/journal/head), and the mount points for integrations that
// authenticate their own requests (Slack).
//
// Who may do what: every bearer token is a named Credential with a Scope —
// intake posts alerts and nothing else, operator acts and reads, read-only
// reads (/metrics once such a credential exists). Require puts the
// Identity in the request's context; handlers journal Identity.Actor(),
// never a name from the request. On a unix listener the kernel's peer
// credentials (SO_PEERCRED) are the identity: root, the server's own user
// and Config.SocketUsers are operators there, anyone else is refused.
//
// An intake request is answered 202 only after its alerts are durable in
// the inbox. Bodies held at once are bounded (Config.MaxInFlight: beyond
// it 503 with Retry-After, before the body is read), and the answer's
// deadline is counted from the end of the body, with the store given part
// of it, so a stored alert is always answered.
//
// A *Server is safe for concurrent use; its Keyring may be Set (rotated)
// while it serves. Serve may run on several listeners at once and returns
// when its context ends, after in-flight requests drained (or the drain
// timeout).
package server
