// Package logonly delivers notifications to riposte's own log instead of a
// service: the fallback for notifiers that have no credentials configured
// (notifiers.fallback: log), so that `make run` and demos show what would
// have been sent. Nothing leaves the machine.
//
// A *Logger is safe for concurrent use and holds nothing to close.
package logonly
