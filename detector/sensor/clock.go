package sensor

import (
	"time"

	"golang.org/x/sys/unix"
)

// BootOffset is what to add to a CLOCK_BOOTTIME timestamp (the sensor's
// event time) to get Unix time. It drifts when the wall clock is stepped,
// so callers refresh it now and then.
func BootOffset() time.Duration {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	after := time.Now()
	wall := before.Add(after.Sub(before) / 2)
	return time.Duration(wall.UnixNano() - ts.Nano())
}
