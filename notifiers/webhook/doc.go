// Package webhook is riposte's generic webhook integration: webhook.post
// sends the alert, the incident and the steps riposte took as JSON (Body) to
// a named endpoint from the config, optionally signed with HMAC-SHA256 in
// X-Riposte-Signature (format in SignatureHeader; Sign and Verify implement
// it) and with a bearer token.
//
// Every request carries Idempotency-Key (the action key), so a receiver can
// drop a delivery the outbox retried. 2xx is success; 408, 429 (Retry-After
// kept) and 5xx are retryable; other 4xx and redirects (never followed) are
// permanent. URLs, secrets and tokens never appear in errors or logs.
//
// A *Webhook is safe for concurrent use and holds nothing to close; the
// caller owns Deps.HTTPClient (a copy that does not follow redirects is
// used).
package webhook
