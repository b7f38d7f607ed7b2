//go:build !linux

package cgroupctl

import "time"

// nap sleeps for d (cgroups exist on Linux only; this keeps the package
// building elsewhere).
func nap(d time.Duration) { time.Sleep(d) }
