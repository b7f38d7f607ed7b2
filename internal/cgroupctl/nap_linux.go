package cgroupctl

import (
	"time"

	"golang.org/x/sys/unix"
)

// nap blocks the calling thread for d with the kernel's high-resolution
// timer (nanosleep), for waits shorter than the Go runtime's timers keep.
// An interrupted nap just ends early: poll checks again either way.
func nap(d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	_ = unix.Nanosleep(&ts, nil)
}
