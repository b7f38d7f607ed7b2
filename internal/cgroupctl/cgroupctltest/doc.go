// Package cgroupctltest creates real cgroups for integration tests and puts
// test processes in them. Everything it creates is removed by t.Cleanup,
// also when the test fails: processes are killed and reaped, then the
// directories it made are removed, deepest first (parents that existed
// before, or that another test still uses, are left alone).
//
// Its functions call testutil.Integration (root) first; they are safe for
// concurrent use by parallel tests.
package cgroupctltest
