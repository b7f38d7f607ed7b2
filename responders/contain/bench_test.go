package contain_test

import (
	"context"
	"testing"

	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/responders/contain"
)

// BenchmarkPauseUnpause: one pause and one unpause of a one-process v1
// freezer cgroup through the cgroup alone, the runtime-agnostic path.
func BenchmarkPauseUnpause(b *testing.B) {
	fz := cgroupctltest.Freezer(b)
	cg := cgroupctltest.Create(b, fz, "/riposte-bench-"+cgroupctltest.RandomID(b)[:12], false)
	cgroupctltest.Sleep(b, cg)
	c, err := contain.New(contain.Guard{Label: "riposte.protect=true"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tg := contain.Target{ID: "bench", Cgroup: cg}
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Pause(ctx, tg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Unpause(ctx, tg); err != nil {
			b.Fatal(err)
		}
	}
}
