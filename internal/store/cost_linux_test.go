package store

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// cost is the process's running totals that BenchmarkAcceptCost divides
// by the alerts accepted.
type cost struct {
	cpu     int64  // user + system CPU, ns
	mallocs uint64 // heap allocations
	written int64  // bytes passed to write(2) and friends (/proc/self/io wchar)
}

func readCost() (cost, error) {
	var c cost
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return c, fmt.Errorf("read rusage: %w", err)
	}
	c.cpu = ru.Utime.Nano() + ru.Stime.Nano()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	c.mallocs = ms.Mallocs
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return c, fmt.Errorf("read io counters: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			c.written, err = strconv.ParseInt(v, 10, 64)
			return c, err
		}
	}
	return c, fmt.Errorf("read io counters: no wchar in /proc/self/io")
}
