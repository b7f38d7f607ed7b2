// Package registry is the one explicit list of riposte's integrations: every
// responder and notifier, and the actions they implement. Nothing registers
// itself; adding an integration means adding it here (CONTRIBUTING.md lists
// the other files it touches).
//
// Everything here is computed from fixed lists and is safe for concurrent
// use; there is nothing to close. registry_test.go checks the lists: the
// catalog builds, names are unique, every action and parameter describes
// itself, and IsNotification agrees with the notifiers' actions.
package integrations
