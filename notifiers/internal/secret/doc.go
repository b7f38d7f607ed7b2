// Package secret loads the credentials of riposte's notifiers (bot tokens,
// signing secrets, routing keys, webhook URLs, SMTP passwords) from an
// environment variable or a file, never from inline configuration, and
// scrubs them from error text as a second line of defence.
//
// A Source is a plain value. A Redactor is immutable once built and safe for
// concurrent use. Nothing here keeps files open.
package secret
