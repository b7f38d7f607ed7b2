package resources

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/riposte-sec/riposte/detector/event"
)

// maxSnapProcs bounds the processes read per container and snapshot.
const maxSnapProcs = 512

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture riposte runs on).
const userHZ = 100

// procUse is one process's counters at a snapshot.
type procUse struct {
	comm  string
	start uint64 // starttime, to tell a reused pid from the same process
	ticks uint64 // utime + stime
	rss   int64  // resident set, bytes
}

// procSnap is the processes of a cgroup at one time.
type procSnap struct {
	t     time.Time
	procs map[uint32]procUse
}

// procSnap reads the processes of the cgroup directory dir (its
// cgroup.procs) from /proc. Processes that vanish meanwhile are skipped; an
// unreadable cgroup gives an empty, non-nil snapshot.
func (m *Monitor) procSnap(dir string) procSnap {
	snap := procSnap{t: m.now(), procs: map[uint32]procUse{}}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return snap
	}
	for _, f := range bytes.Fields(b) {
		if len(snap.procs) >= maxSnapProcs {
			break
		}
		pid, err := strconv.ParseUint(string(f), 10, 32)
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join(m.procRoot, strconv.FormatUint(pid, 10), "stat"))
		if err != nil {
			continue
		}
		if u, err := parseStat(st); err == nil {
			snap.procs[uint32(pid)] = u
		}
	}
	return snap
}

// parseStat reads comm, utime, stime, starttime and rss from the content of
// /proc/PID/stat.
func parseStat(b []byte) (procUse, error) {
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return procUse{}, fmt.Errorf("parse stat: no (comm)")
	}
	// Fields after comm start at field 3 (state): utime is 14, stime 15,
	// starttime 22, rss 24.
	rest := bytes.Fields(b[closing+1:])
	if len(rest) < 22 {
		return procUse{}, fmt.Errorf("parse stat: %d fields after comm, want 22", len(rest))
	}
	num := func(field int) (uint64, error) {
		v, err := strconv.ParseUint(string(rest[field-3]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse stat field %d: %w", field, err)
		}
		return v, nil
	}
	var vals [4]uint64
	for i, field := range []int{14, 15, 22, 24} {
		v, err := num(field)
		if err != nil {
			return procUse{}, err
		}
		vals[i] = v
	}
	if vals[3] > 1<<40 {
		return procUse{}, fmt.Errorf("parse stat: rss %d pages is not plausible", vals[3])
	}
	return procUse{comm: string(b[open+1 : closing]), ticks: vals[0] + vals[1], start: vals[2], rss: int64(vals[3]) * int64(os.Getpagesize())}, nil
}

// topCPU ranks the processes of after by the CPU they used since before,
// in percent of one core over the time between the snapshots (a process
// started since counts whole). At most n, busiest first.
func topCPU(before, after procSnap, n int) []event.ProcUsage {
	secs := after.t.Sub(before.t).Seconds()
	var out []event.ProcUsage
	for pid, a := range after.procs {
		used := a.ticks
		if b, ok := before.procs[pid]; ok && b.start == a.start && b.ticks <= a.ticks {
			used -= b.ticks
		}
		u := event.ProcUsage{PID: pid, Comm: a.comm, RSSBytes: a.rss}
		if secs > 0 {
			u.CPUPercent = float64(used) / userHZ / secs * 100
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CPUPercent != out[j].CPUPercent {
			return out[i].CPUPercent > out[j].CPUPercent
		}
		return out[i].PID < out[j].PID
	})
	return out[:min(n, len(out))]
}

// topRSS ranks the processes of after by how much their resident set grew
// since before (a process started since counts whole). At most n, largest
// growth first.
func topRSS(before, after procSnap, n int) []event.ProcUsage {
	var out []event.ProcUsage
	for pid, a := range after.procs {
		g := a.rss
		if b, ok := before.procs[pid]; ok && b.start == a.start {
			g -= b.rss
		}
		out = append(out, event.ProcUsage{PID: pid, Comm: a.comm, RSSBytes: a.rss, RSSGrowthBytes: g})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].RSSGrowthBytes != out[j].RSSGrowthBytes {
			return out[i].RSSGrowthBytes > out[j].RSSGrowthBytes
		}
		return out[i].PID < out[j].PID
	})
	return out[:min(n, len(out))]
}
