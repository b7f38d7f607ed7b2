// Package storetest is the conformance suite of store.Backend: one set of
// tests that every backend (the SQLite store, internal/store/postgres)
// passes, written against the contract in internal/store's API and doc.go
// rather than against one implementation.
//
// A backend's own test calls Run with a Harness that makes empty stores
// and opens them. Backends shared by several processes (Harness.Shared)
// also run the tests of two handles on one database at once: claims and
// leases of one hold against the other until they run out, appends of
// both form one chain, no alert is claimed twice.
//
// Run starts subtests with t.Run and closes every store it opened; it
// keeps no state between calls and may run for several backends in one
// test binary.
package storetest
