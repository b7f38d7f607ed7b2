package testutil

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// RequireEnv is the variable CI sets so that integration tests fail instead
// of skipping when what they need is missing.
const RequireEnv = "RIPOSTE_REQUIRE_INTEGRATION"

// Need is one thing an integration test needs.
type Need int

// Needs.
const (
	Root   Need = iota // euid 0
	Docker             // a reachable Docker daemon
	BPF                // root and kernel BTF (/sys/kernel/btf/vmlinux)
)

// Required reports whether CI asked for integration tests to run.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Integration skips t (locally) or fails it (RIPOSTE_REQUIRE_INTEGRATION=1)
// when one of needs is missing.
func Integration(t testing.TB, needs ...Need) {
	t.Helper()
	for _, n := range needs {
		if reason := missing(n); reason != "" {
			skipOrFail(t, reason)
		}
	}
}

func missing(n Need) string {
	switch n {
	case Root:
		if os.Geteuid() != 0 {
			return "needs root"
		}
	case Docker:
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return "needs a Docker daemon: " + err.Error()
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cli.Ping(ctx); err != nil {
			return "needs a running Docker daemon: " + err.Error()
		}
	case BPF:
		if os.Geteuid() != 0 {
			return "eBPF needs root"
		}
		if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
			return "eBPF needs kernel BTF at /sys/kernel/btf/vmlinux"
		}
	}
	return ""
}

// Tools skips t (locally) or fails it (RIPOSTE_REQUIRE_INTEGRATION=1) when
// one of the named programs is not on PATH; scripts/install-deps.sh installs
// every program a test asks for here.
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			skipOrFail(t, name+" is not installed (scripts/install-deps.sh installs it)")
		}
	}
}

// Paths skips t (locally) or fails it (RIPOSTE_REQUIRE_INTEGRATION=1) when
// one of the given files or directories does not exist.
func Paths(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			skipOrFail(t, "needs "+p+": "+err.Error())
		}
	}
}

// SkipOrFail skips t with reason locally and fails it when CI requires
// integration tests, for needs that are discovered while the test runs (a
// mount that the kernel refuses, say).
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	skipOrFail(t, reason)
}

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("integration test cannot run: %s (%s=1 forbids skipping)", reason, RequireEnv)
	}
	t.Skipf("skipping integration test: %s (set %s=1 to make this a failure)", reason, RequireEnv)
}
