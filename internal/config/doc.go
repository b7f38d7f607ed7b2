// Package config reads riposte.yaml: strict YAML (an unknown key is an error
// with file:line), flags override it, and secrets come from environment
// variables or files, never inline.
//
// The sections of the integrations (detector, docker, capture, notifiers)
// are kept as YAML nodes here and decoded, just as strictly, by the package
// that owns them, so that each integration's Config lives with its code.
// A Config is a plain value.
package config
