package containerd_test

import (
	"testing"

	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/responders/containerd/containerdtest"
)

// BenchmarkPauseUnpause: one containerd.pause and one containerd.unpause
// of a running container through Run (resolve by id in the namespace,
// guard, containerd's task API, the cgroup checked), against the real
// daemon.
func BenchmarkPauseUnpause(b *testing.B) {
	e := setup(b)
	id := cgroupctltest.RandomID(b)
	containerdtest.Run(b, e.cli, e.ctx, e.img, id, nil)
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.run(b, "containerd.pause", id, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := e.run(b, "containerd.unpause", id, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup: what a detector cache miss on a containerd-only
// container costs (load the container, its task and status).
func BenchmarkLookup(b *testing.B) {
	e := setup(b)
	id := cgroupctltest.RandomID(b)
	containerdtest.Run(b, e.cli, e.ctx, e.img, id, nil)
	b.ResetTimer()
	for b.Loop() {
		if _, ok, err := e.r.Lookup(e.ctx, id); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
