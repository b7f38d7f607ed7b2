// Package server is riposte's HTTP front: the authenticated alert intake
// (POST /v1/alerts and POST / for Falco's http_output and Falcosidekick's
// webhook output), health and readiness, Prometheus metrics, and the mount
// points for integrations that authenticate their own requests (Slack).
//
// An intake request is answered 202 only after its alerts are durable in
// the inbox. A *Server is safe for concurrent use; Serve returns when its
// context ends, after in-flight requests drained (or the drain timeout).
package server
