// Package storetest is the conformance suite of store.Backend: one set of
// tests that every backend (the SQLite store, internal/store/postgres)
// passes, written against the contract in internal/store's API and doc.go
// rather than against one implementation.
//
// A backend's own test calls Run with a Harness that makes empty stores
// and reopens them. Backends shared by several processes (Harness.Shared)
// also run the tests of two handles on one database at once; backends that
// one process owns at a time run the restart tests instead (claims of a
// process that is gone come back at once).
//
// Run starts subtests with t.Run and closes every store it opened; it
// keeps no state between calls and may run for several backends in one
// test binary.
package storetest
