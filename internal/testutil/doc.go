// Package testutil holds helpers for riposte's tests: the integration gate
// (skip locally without root, Docker or eBPF; fail when
// RIPOSTE_REQUIRE_INTEGRATION=1 as in CI) and a busybox test image built with
// `docker import` since no registry is reachable, the same gate for
// programs and paths (Tools, Paths), and Eventually/Never to wait on a
// condition with a deadline instead of sleeping.
//
// Only tests import it.
package testutil
