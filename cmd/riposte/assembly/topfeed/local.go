package topfeed

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/internal/guard"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// Docker is what the feed asks the Docker daemon: the containers and
// their usage.
type Docker interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerStatsOneShot(ctx context.Context, containerID string) (container.StatsResponseReader, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
}

// Events is the detector as the feed uses it: events of every container,
// its counters, and Run for Local (which runs it).
type Events interface {
	Subscribe(containerID string, buf int) (<-chan detector.Event, func())
	Stats() detector.Stats
}

// Local feeds the console from a detector in this process.
type Local struct {
	Detector *detector.Detector
	Docker   Docker // nil: no containers view beyond what events show
	// Incidents lists open incidents (nil: none); called every Interval.
	Incidents func(ctx context.Context) ([]console.Incident, error)
	// QuarantineDir holds the docker responder's quarantine records
	// (<id>.json): a container with one is shown quarantined.
	QuarantineDir string
	Protect       guard.Label
	Tracker       *Tracker
	Interval      time.Duration // containers, incidents and counters; 0: 2s
	Log           *slog.Logger
}

// Run runs the detector and feeds the console until ctx ends.
func (l *Local) Run(ctx context.Context, send func(console.Update)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	alerts := make(chan alert.Alert, 1024)
	runErr := make(chan error, 1)
	go func() {
		runErr <- l.Detector.Run(ctx, func(a alert.Alert) {
			select {
			case alerts <- a:
			default: // the console is behind: the alert still counts in the detector's stats
			}
		})
	}()
	f := &feed{events: l.Detector, docker: l.Docker, incidents: l.Incidents, quarantineDir: l.QuarantineDir, protect: l.Protect,
		tracker: l.Tracker, interval: l.Interval, log: l.Log, source: "in-process detector", ready: l.Detector.Ready()}
	return f.run(ctx, alerts, runErr, send)
}

// feed is the loop Local and the server's stream share: events into rows,
// batched every 250ms, and a poll of containers, incidents and counters
// every interval.
type feed struct {
	events        Events
	docker        Docker
	incidents     func(ctx context.Context) ([]console.Incident, error)
	quarantineDir string
	protect       guard.Label
	tracker       *Tracker
	interval      time.Duration
	log           *slog.Logger
	source        string
	ready         <-chan struct{} // closed once the detector runs; nil: it does

	cpu       map[string]cpuSample
	known     []string        // full ids of the containers last listed
	seeded    map[string]bool // containers whose running processes were read (poller only)
	lastCount uint64
	lastAt    time.Time
}

type cpuSample struct{ total, system uint64 }

func (f *feed) run(ctx context.Context, alerts <-chan alert.Alert, runErr <-chan error, send func(console.Update)) error {
	if f.interval <= 0 {
		f.interval = 2 * time.Second
	}
	if f.tracker == nil {
		f.tracker = NewTracker(nil)
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.cpu = map[string]cpuSample{}
	var evs <-chan detector.Event
	if f.events != nil {
		ch, unsubscribe := f.events.Subscribe(detector.AllContainers, 16384)
		defer unsubscribe()
		evs = ch
	}

	f.seeded = map[string]bool{}
	polled := make(chan polledUpdate, 1)
	pollNow := make(chan struct{}, 1)
	pollNow <- struct{}{}
	go f.poller(ctx, pollNow, polled)

	flush := time.NewTicker(250 * time.Millisecond)
	defer flush.Stop()
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	var u console.Update
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			if err != nil {
				return err
			}
			runErr = nil
		case ev, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			f.tracker.Add(&ev, &u)
		case a := <-alerts:
			id := a.Field("container.id")
			u.Alerts = append(u.Alerts, alertRow(f.fullID(id), a.Rule, a.Priority.String(), a.Time))
		case pu := <-polled:
			p := pu.u
			for _, sd := range pu.seeds {
				for i := range sd.procs {
					f.tracker.Seed(sd.id, sd.name, &sd.procs[i], capfile.Header{Started: sd.at}, &u)
				}
			}
			u.Containers, u.ContainersSet = p.Containers, p.ContainersSet
			if p.ContainersSet {
				f.known = f.known[:0]
				for _, c := range p.Containers {
					f.known = append(f.known, c.ID)
				}
			}
			u.Incidents, u.IncidentsSet = p.Incidents, p.IncidentsSet
			if p.Err != "" {
				u.Err = p.Err
			}
		case <-tick.C:
			select {
			case pollNow <- struct{}{}:
			default:
			}
			if f.events != nil {
				s := f.stats()
				u.Stats = &s
			}
		case <-flush.C:
			if !empty(u) {
				send(u)
				u = console.Update{}
			}
		}
	}
}

// fullID maps the short id an alert carries to the container's full id
// (the console's key) when the tracker has seen the container.
func (f *feed) fullID(short string) string {
	if len(short) >= 64 || short == "" {
		return short
	}
	for _, id := range f.known {
		if strings.HasPrefix(id, short) {
			return id
		}
	}
	for k := range f.tracker.procs {
		if strings.HasPrefix(k, short) {
			return k[:strings.IndexByte(k, '/')]
		}
	}
	return short
}

func empty(u console.Update) bool {
	return !u.ContainersSet && !u.IncidentsSet && len(u.Procs) == 0 && len(u.Conns) == 0 && len(u.Spies) == 0 &&
		len(u.Files) == 0 && len(u.Alerts) == 0 && u.Stats == nil && u.Err == ""
}

func (f *feed) stats() console.Stats {
	s := f.events.Stats()
	now := time.Now()
	rate := 0.0
	if !f.lastAt.IsZero() {
		if d := now.Sub(f.lastAt).Seconds(); d > 0 && s.Events >= f.lastCount {
			rate = float64(s.Events-f.lastCount) / d
		}
	}
	f.lastCount, f.lastAt = s.Events, now
	src := f.source
	if f.ready != nil {
		select {
		case <-f.ready:
		default:
			src += " (starting)"
		}
	}
	return console.Stats{Events: s.Events, EventsPerSec: rate, Drops: s.TotalDrops() + s.SubscriberDrops, Source: src}
}

// polledUpdate is what the poller found: containers and incidents, and the
// processes of containers seen for the first time.
type polledUpdate struct {
	u     console.Update
	seeds []seed
}

type seed struct {
	id, name string
	at       time.Time
	procs    []capfile.Process
}

// poller lists containers and incidents when asked, off the event loop
// (Docker's stats take a while).
func (f *feed) poller(ctx context.Context, now <-chan struct{}, out chan<- polledUpdate) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-now:
		}
		var u console.Update
		var seeds []seed
		var errs []string
		if f.docker != nil {
			cs, err := f.containers(ctx)
			if err != nil {
				errs = append(errs, "docker: "+err.Error())
			} else {
				u.Containers, u.ContainersSet = cs, true
				seeds = f.seedNew(ctx, cs)
			}
		}
		if f.incidents != nil {
			in, err := f.incidents(ctx)
			if err != nil {
				errs = append(errs, "incidents: "+err.Error())
			} else {
				u.Incidents, u.IncidentsSet = in, true
			}
		}
		u.Err = strings.Join(errs, "; ")
		select {
		case out <- polledUpdate{u: u, seeds: seeds}:
		case <-ctx.Done():
			return
		}
	}
}

// seedNew reads the running processes of the containers not seen before.
func (f *feed) seedNew(ctx context.Context, cs []console.Container) []seed {
	var out []seed
	for _, c := range cs {
		if f.seeded[c.ID] || c.State != "running" {
			continue
		}
		f.seeded[c.ID] = true
		info, err := f.docker.ContainerInspect(ctx, c.ID)
		if err != nil || info.State == nil || info.State.Pid <= 0 {
			continue
		}
		out = append(out, seed{id: c.ID, name: c.Name, at: time.Now(), procs: capture.Processes("/proc", c.ID, info.State.Pid)})
	}
	return out
}

func (f *feed) containers(ctx context.Context) ([]console.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := f.docker.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]console.Container, 0, len(list))
	seen := map[string]bool{}
	for _, c := range list {
		seen[c.ID] = true
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		row := console.Container{ID: c.ID, Name: name, Image: c.Image, State: c.State, Protected: f.protect.Matches(c.Labels)}
		if f.quarantineDir != "" {
			if _, err := os.Stat(filepath.Join(f.quarantineDir, c.ID+".json")); err == nil {
				row.Quarantined = true
			}
		}
		if c.State == "running" {
			f.usage(ctx, &row)
		}
		out = append(out, row)
	}
	for id := range f.cpu {
		if !seen[id] {
			delete(f.cpu, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// usage fills CPU (from the difference with the previous sample) and
// memory (usage less the page cache, as docker stats shows it).
func (f *feed) usage(ctx context.Context, row *console.Container) {
	r, err := f.docker.ContainerStatsOneShot(ctx, row.ID)
	if err != nil {
		return
	}
	defer r.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		if !errors.Is(err, context.Canceled) {
			f.log.Debug("decode container stats", "container", row.Name, "err", err)
		}
		return
	}
	cur := cpuSample{total: s.CPUStats.CPUUsage.TotalUsage, system: s.CPUStats.SystemUsage}
	if prev, ok := f.cpu[row.ID]; ok && cur.system > prev.system && cur.total >= prev.total {
		cpus := float64(s.CPUStats.OnlineCPUs)
		if cpus == 0 {
			cpus = float64(max(1, len(s.CPUStats.CPUUsage.PercpuUsage)))
		}
		row.CPUPercent = float64(cur.total-prev.total) / float64(cur.system-prev.system) * cpus * 100
	}
	f.cpu[row.ID] = cur
	mem := s.MemoryStats.Usage
	if c, ok := s.MemoryStats.Stats["total_inactive_file"]; ok && c < mem {
		mem -= c
	} else if c, ok := s.MemoryStats.Stats["inactive_file"]; ok && c < mem {
		mem -= c
	}
	row.MemoryBytes = int64(mem)
}
