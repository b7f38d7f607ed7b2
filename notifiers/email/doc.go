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
// Mails about one incident form a thread: the first one's Message-ID is
// kept (Deps.Threads, the store's key/value table when served) and later
// ones reply to it (In-Reply-To, References, "Re:" subject). A throttled
// update (actions.Request.Fold) says how many alerts it stands for above
// the latest one. Two first mails of one incident sent at the same moment
// (throttling off) may both start a thread; later mails reply to the one
// recorded last.
//
// An *Email is safe for concurrent use: every Run opens and closes its own
// SMTP session. Nothing to close.
package email
