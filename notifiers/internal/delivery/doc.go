// Package delivery holds what riposte's HTTP notifiers share about the
// outcome of one delivery attempt: classifying an HTTP status or a transport
// error as retryable or permanent, carrying a server's Retry-After to the
// outbox, and describing transport errors without the request URL (a Slack
// or webhook URL is a credential).
//
// Everything here is stateless and safe for concurrent use.
package delivery
