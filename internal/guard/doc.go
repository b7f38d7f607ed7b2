// Package guard holds the protected-target checks that every responder
// shares, whatever it acts on (a Docker container, a pod, a namespace): a
// protect label given as "key=value" or "key" matches a target's labels the
// same way everywhere, so that `riposte.protect=true` means one thing.
//
// Values are immutable after parsing and safe for concurrent use.
package guard
