// Package pgtest starts a throwaway PostgreSQL server for tests: initdb
// and postgres from Debian's postgresql package (/usr/lib/postgresql/15/bin,
// or RIPOSTE_PG_BIN), run as the postgres user when the test runs as root,
// in a temporary directory, listening only on a unix socket there. It takes
// about two seconds to start; a test binary starts one Server and gives
// each test its own database (Server.Database).
//
// Shared.Get starts the server on first use, gated by internal/testutil:
// without the binaries the test skips locally and fails in CI
// (RIPOSTE_REQUIRE_INTEGRATION=1; scripts/install-deps.sh installs the
// package). The postgres process gets SIGKILL if the test binary dies, so
// no server outlives its tests; Stop shuts it down and removes the
// directory. Restart stops it (like a crash, or a fast shutdown) and starts
// it again on the same data, for tests of riposte riding out an outage.
// With Options.TCP it also listens on 127.0.0.1 (TCPAddr, URLAt), and a
// Proxy in front of that port partitions a client from the server: Cut
// resets every connection or blackholes them (nothing forwarded, nothing
// lost) until Heal. Options.Settings passes more server settings (a
// synchronous standby that never comes, for one).
//
// A Server is safe for concurrent use. Only tests import this package.
package pgtest
