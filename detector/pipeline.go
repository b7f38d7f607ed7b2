package detector

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/procs"
	"github.com/riposte-sec/riposte/detector/sensor"
	"github.com/riposte-sec/riposte/internal/alert"
)

// pipeline holds the state of one Run.
type pipeline struct {
	d     *Detector
	out   *emitter
	table *procs.Table // owned by the state goroutine

	cgroups  map[uint64]cgroup.Ref // cgroup kernfs id (the sensor's hierarchy) -> container; owned by the state goroutine
	cgroups2 map[uint64]cgroup.Ref // v2 cgroup id -> container; owned by the state goroutine
	mode     cgroup.Mode           // the hierarchy the sensor attributes by
	v2       *cgroup.Resolver      // v2 ids to paths; nil without a cgroup2 mount
	users    map[string]userDB     // container id ("host" for the host) -> passwd; owned by the state goroutine

	bootOffset time.Duration
	arm        *armer // nil without enforcement
}

type userDB struct {
	names   map[uint32]string
	fetched time.Time
	ok      bool
}

func newPipeline(d *Detector, emit func(alert.Alert)) *pipeline {
	return &pipeline{
		d: d, out: &emitter{emit: emit},
		table:      procs.New("/proc", 1<<16, 5*time.Second),
		cgroups:    map[uint64]cgroup.Ref{},
		cgroups2:   map[uint64]cgroup.Ref{},
		users:      map[string]userDB{},
		bootOffset: sensor.BootOffset(),
	}
}

// state decodes records in order, keeps the process table, attributes
// containers, feeds subscribers and hands events that rules care about to
// the workers.
func (p *pipeline) state(ctx context.Context, in <-chan []byte, out chan<- *Event) {
	m := p.d.metrics
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var rec sensor.Record
	for {
		var buf []byte
		var ok bool
		select {
		case buf, ok = <-in:
			if !ok {
				return
			}
		case now := <-tick.C:
			p.table.Sweep(now)
			p.bootOffset = sensor.BootOffset()
			continue
		}
		err := sensor.Decode(buf, p.bootOffset, &rec)
		p.d.bufs.put(buf)
		if err != nil {
			m.nDecodeErrors.Add(1)
			m.decodeErrors.Inc()
			continue
		}
		m.nEvents.Add(1)
		m.events.WithLabelValues(rec.Event.Type).Inc()
		ev := new(Event)
		*ev = rec.Event
		p.attribute(&rec, ev)
		p.process(ev)
		if p.d.subs.active() {
			if info, ok := p.d.cache.Peek(ev.Container.ID); ok {
				applyInfo(ev, info)
			}
			p.d.subs.dispatch(ev)
		}
		if p.d.rules.Wants(ev.Type) {
			select {
			case out <- ev:
			case <-ctx.Done():
				// Shutting down: finish what is queued without blocking.
			}
		}
	}
}

// attribute sets the event's container from the cgroup the kernel saw. In
// v2 mode the full path of the v2 cgroup names the container (and its pod);
// in v1 mode the pids cgroup does, and the v2 cgroup is asked when that is
// no container: on a hybrid host a kubelet may place pods in the unified
// hierarchy only.
func (p *pipeline) attribute(rec *sensor.Record, ev *Event) {
	var ref cgroup.Ref
	cg := rec.CgroupID // the cgroup that names the container
	if p.mode == cgroup.V2 {
		ref = p.byV2(rec.CgroupID)
	}
	if ref.ID == "" {
		ref = p.byName(rec, ev)
	}
	if ref.ID == "" && p.mode == cgroup.V1 {
		ref, cg = p.byV2(rec.Cgroup2ID), rec.Cgroup2ID
	}
	if ref.ID == "" {
		ev.Container.ID = event.HostID
		return
	}
	if p.arm != nil {
		p.arm.consider(cg, ref.ID)
	}
	ev.Container.ID = ref.ID
	ev.Container.Runtime = ref.Runtime
	ev.Container.PodUID = ref.PodUID
}

// byV2 resolves a v2 cgroup id to its path and parses it, remembering the
// answer (a miss walks the hierarchy once per unknown id).
func (p *pipeline) byV2(id uint64) cgroup.Ref {
	if p.v2 == nil || id == 0 {
		return cgroup.Ref{}
	}
	ref, ok := p.cgroups2[id]
	if !ok {
		if path, found := p.v2.Path(id); found {
			ref, _ = cgroup.ParsePath(path)
		}
		if len(p.cgroups2) > 1<<14 {
			clear(p.cgroups2)
		}
		p.cgroups2[id] = ref
	}
	return ref
}

// byName attributes by the cgroup name the sensor reported.
func (p *pipeline) byName(rec *sensor.Record, ev *Event) cgroup.Ref {
	ref, ok := p.cgroups[rec.CgroupID]
	if !ok {
		ref, ok = cgroup.ParseName(rec.CgroupName)
		if !ok && rec.CgroupName != "" && rec.CgroupName != "/" {
			// A sub-cgroup of a container (systemd or nested runtimes
			// inside it): the full path names the container.
			if r, found, err := cgroup.ForPID("/proc", ev.PID); err == nil && found {
				ref, ok = r, true
			}
		}
		if len(p.cgroups) > 1<<14 {
			clear(p.cgroups)
		}
		p.cgroups[rec.CgroupID] = ref
	}
	return ref
}

// relativePaths are the event types whose Path names a file relative to
// the working directory when FD is 0 (AT_FDCWD).
var relativePaths = map[string]bool{
	event.Open: true, event.Chmod: true, event.Symlink: true, event.Link: true, event.Unlink: true,
	event.Rename: true, event.Truncate: true, event.Umount: true, event.Chdir: true,
}

// process updates the process table and fills the process fields.
func (p *pipeline) process(ev *Event) {
	switch ev.Type {
	case event.Fork:
		pr := p.table.Fork(ev.PID, ev.PPID, ev.Comm, ev.TTY)
		ev.Exe, ev.Args = pr.Exe, pr.Args
	case event.Exec:
		if ev.Exe != "" && !strings.HasPrefix(ev.Exe, "/") {
			ev.Cwd = p.cwd(ev.PID)
		}
		p.table.Exec(ev.PID, ev.PPID, ev.Comm, ev.Exe, ev.Args, ev.TTY)
	case event.Exit:
		if pr := p.table.Get(ev.PID); pr != nil {
			ev.Exe, ev.Args = pr.Exe, pr.Args
		}
		p.table.Exit(ev.PID, ev.Time)
	default:
		if pr := p.table.Lookup(ev.PID); pr != nil {
			ev.Exe, ev.Args = pr.Exe, pr.Args
			if pr.Comm != ev.Comm {
				// The process renamed itself without exec (prctl
				// PR_SET_NAME; busybox runs applets that way): the argv it
				// inherited is not its own.
				ev.Args = nil
			}
		}
	}
	if relativePaths[ev.Type] && ev.FD == 0 {
		// A path relative to the working directory (AT_FDCWD) is made
		// absolute; a symlink's target stays as written (it is relative to
		// the link, and is what the link holds).
		rel := ev.Path != "" && !strings.HasPrefix(ev.Path, "/")
		relTarget := (ev.Type == event.Link || ev.Type == event.Rename) && ev.Target != "" && !strings.HasPrefix(ev.Target, "/")
		if rel || relTarget {
			if cwd := p.cwd(ev.PID); cwd != "" {
				ev.Cwd = cwd
				if rel {
					ev.Path = path.Join(cwd, ev.Path)
				}
				if relTarget {
					ev.Target = path.Join(cwd, ev.Target)
				}
			}
		}
	}
	if ev.Type == event.Chdir {
		dir := ev.Path
		if ev.FD != 0 {
			dir = "" // fchdir: only the directory's own name is known
		}
		p.table.Chdir(ev.PID, dir)
	}
	if parent := p.table.ParentOf(ev.PID, ev.PPID); parent != nil {
		ev.PName, ev.PExe, ev.PArgs = parent.Comm, parent.Exe, parent.Args
	}
	ev.Ancestors = p.table.Ancestors(ev.PID, 8)
	ev.User = p.userName(ev)
}

// cwd is the process's working directory as seen from inside its mount
// namespace at the event: the one the process table followed through
// fork, exec and chdir (in event order, so also for a process that is gone
// or has moved on since), else the one /proc has now; "" when neither
// knows.
func (p *pipeline) cwd(pid uint32) string {
	if pr := p.table.Get(pid); pr != nil && pr.Cwd != "" {
		return pr.Cwd
	}
	c, err := os.Readlink("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/cwd")
	if err != nil {
		return ""
	}
	return c
}

// userName resolves the effective uid with the passwd file of the event's
// container (the host's for host events).
func (p *pipeline) userName(ev *Event) string {
	db, ok := p.users[ev.Container.ID]
	_, known := db.names[ev.EUID]
	// Read again: never read; an earlier read failed; or a uid the file
	// did not name (a user added since), at most once a second.
	if !ok || (!db.ok && time.Since(db.fetched) > 5*time.Second) || (!known && ev.EUID != 0 && time.Since(db.fetched) > time.Second) {
		old := db
		files := []string{"/etc/passwd"}
		if !ev.Container.IsHost() {
			// The event's process may have exited by the time its event
			// is read (a loaded host, a short exec): the container's main
			// process, which lives as long as the container, is the
			// fallback.
			files = []string{fmt.Sprintf("/proc/%d/root/etc/passwd", ev.PID)}
			if info, ok := p.d.cache.Peek(ev.Container.ID); ok && info.Pid > 0 && uint32(info.Pid) != ev.PID {
				files = append(files, fmt.Sprintf("/proc/%d/root/etc/passwd", info.Pid))
			}
		}
		db = userDB{fetched: time.Now()}
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				db.names, db.ok = parsePasswd(b), true
				break
			}
		}
		if !db.ok && old.ok {
			db.names, db.ok = old.names, true // keep what an earlier read knew
		}
		if len(p.users) > 4096 {
			clear(p.users)
		}
		p.users[ev.Container.ID] = db
	}
	if n, ok := db.names[ev.EUID]; ok {
		return n
	}
	if ev.EUID == 0 {
		return "root"
	}
	return ""
}

func parsePasswd(b []byte) map[uint32]string {
	out := map[uint32]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 {
			continue
		}
		if uid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			if _, dup := out[uint32(uid)]; !dup {
				out[uint32(uid)] = f[0]
			}
		}
	}
	return out
}

// enrich adds the container's name, image, labels and ports (may call the
// Docker API on a cache miss).
func (p *pipeline) enrich(ctx context.Context, ev *Event) {
	if ev.Container.IsHost() {
		ev.Container.ID = event.HostID
		return
	}
	applyInfo(ev, p.d.cache.Get(ctx, ev.Container.ID))
}

// evaluate runs the rules and emits alerts.
func (p *pipeline) evaluate(ev *Event) {
	m := p.d.metrics
	matched, env, err := p.d.rules.Match(ev)
	if err != nil {
		m.nRuleErrors.Add(1)
		p.d.log.Debug("rule evaluation failed", "err", err)
		for _, r := range p.d.rules.Rules() {
			if strings.Contains(err.Error(), strconv.Quote(r.Name)) {
				m.ruleErrors.WithLabelValues(r.Name).Inc()
			}
		}
	}
	for _, r := range matched {
		a := p.d.rules.Alert(r, ev, env, p.d.hostname)
		if r.Enforce != nil && p.arm != nil && ev.Type == event.Exec {
			p.arm.annotate(&a, r, ev)
		}
		m.alerted(r.Name)
		p.out.send(a)
	}
}
