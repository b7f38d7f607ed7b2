// Package email is riposte's email integration: email.send over SMTP with
// wneessen/go-mail, STARTTLS mandatory (default), opportunistic or none, or
// implicit TLS (SMTPS); AUTH PLAIN or LOGIN with the password from an
// environment variable or a file; a plain-text and an HTML body rendered
// from templates (text/template and html/template, built in or from files).
//
// The Message-ID derives from the request key, so a mail a retry sends again
// is recognisably the same. SMTP 4xx answers and network failures are
// retryable; 5xx answers, TLS failures, a refused login and a server without
// STARTTLS under the mandatory policy are permanent. The password never
// appears in an error or a log line.
//
// An *Email is safe for concurrent use: every Run opens and closes its own
// SMTP session. Nothing to close.
package email
