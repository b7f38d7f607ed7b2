// Package silence mutes the actions of matching alerts for a time, the way
// Alertmanager's silences mute notifications: a matcher (rule, priority,
// tags, container, image, pod and namespace globs, or an expr-lang
// condition read exactly like a playbook's `when`), a start and an end, a
// creator and a comment, and a scope: notify (notification actions are
// muted, containment still runs) or all (no action at all; such a silence
// waits for a second person's approval).
//
// The records live in the store (store.Silences), so they survive restarts
// and every replica sees them. This package compiles and checks them
// (Compile), decodes the API's create request (DecodeRequest), creates,
// approves and ends them with their journal entries (Add, Approve, End),
// and answers "which silence mutes this alert" from a Set, or from a Cache
// that reloads the store's silences every few seconds and journals their
// natural end (Cache.Run).
//
// Matchers and Sets are immutable once built and safe for concurrent use;
// a Cache is safe for concurrent use. Nothing here owns the store: the
// caller closes it.
package silence
