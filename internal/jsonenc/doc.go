// Package jsonenc appends values to JSON exactly as encoding/json's Marshal
// encodes them, without its reflection, for the few types riposte writes
// per alert (strings, integers, booleans, maps with string keys, lists).
// What it does not know, or a string that Marshal would escape, it hands to
// encoding/json, so the bytes are always Marshal's: stored alerts and
// journal details are compared and hashed by their bytes.
//
// The functions have no state and are safe for concurrent use.
package jsonenc
