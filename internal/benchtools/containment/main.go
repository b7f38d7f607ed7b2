// Command containment measures, interleaved in one run, how long riposte
// takes from the exec of a shell in a container to that container frozen
// (detector, intake, store, engine, responder), by the Docker path (to the
// daemon's pause event) and by the freezer path (to when the kernel reported
// the cgroup frozen: frozen_at_ns in the journal), beside a bare Docker
// pause API call to the daemon's pause event. Two riposte serve instances
// run side by side, one per path, each protecting the other's containers
// by name. Runs of samples, per run p50/p99 and the ratio; min/median/max
// over the runs. A benchmark tool for scripts/bench-containment.sh, not
// part of riposte.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	_ "modernc.org/sqlite" // read the inbox for the kernel's exec times

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

func main() {
	runs := flag.Int("runs", 5, "runs")
	n := flag.Int("n", 50, "samples of each path per run")
	image := flag.String("image", "riposte-test:1", "image of the containers")
	dockerData := flag.String("docker-data", "", "data directory of the riposte with pause: docker")
	freezerData := flag.String("freezer-data", "", "data directory of the riposte with pause: freezer")
	flag.Parse()
	if *runs < 1 || *n < 1 || *dockerData == "" || *freezerData == "" {
		fmt.Fprintln(os.Stderr, "containment: want -runs and -n >= 1, -docker-data and -freezer-data")
		os.Exit(2)
	}
	if err := run(*runs, *n, *image, *dockerData, *freezerData); err != nil {
		fmt.Fprintln(os.Stderr, "containment:", err)
		os.Exit(1)
	}
}

// pauses delivers, for each container, the daemon's time of its pause
// event (TimeNano).
type pauses struct {
	mu      sync.Mutex
	waiting map[string]chan time.Time
}

func (p *pauses) expect(id string) chan time.Time {
	ch := make(chan time.Time, 1)
	p.mu.Lock()
	p.waiting[id] = ch
	p.mu.Unlock()
	return ch
}

func (p *pauses) watch(ctx context.Context, cli *client.Client) error {
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "pause"))})
	go func() {
		for {
			select {
			case m := <-msgs:
				at := time.Unix(0, m.TimeNano)
				p.mu.Lock()
				if ch, ok := p.waiting[m.Actor.ID]; ok {
					ch <- at
					delete(p.waiting, m.Actor.ID)
				}
				p.mu.Unlock()
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// sample is one container of one path in one run.
type sample struct {
	run  int
	id   string    // full container id
	at   time.Time // docker path: the pause event; bare: call start
	took time.Duration
}

func run(runs, n int, image, dockerData, freezerData string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx); err != nil {
		return err
	}
	p := &pauses{waiting: map[string]chan time.Time{}}
	if err := p.watch(ctx, cli); err != nil {
		return err
	}
	tag := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	start := func(name string) (string, error) {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"sleep", "3600"}}, nil, nil, nil, name)
		if err != nil {
			return "", err
		}
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return "", err
		}
		time.Sleep(50 * time.Millisecond) // let it settle: its own start is not the measured shell
		return c.ID, nil
	}
	remove := func(id string) {
		// A container frozen by the freezer path without the daemon knowing
		// (riposte froze it again after the unpause below: a later alert)
		// cannot die frozen, so thaw its cgroup before each attempt.
		for attempt := 0; attempt < 5; attempt++ {
			_ = cli.ContainerUnpause(context.Background(), id)
			_ = os.WriteFile("/sys/fs/cgroup/freezer/docker/"+id+"/freezer.state", []byte("THAWED"), 0)
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := cli.ContainerRemove(rctx, id, container.RemoveOptions{Force: true})
			cancel()
			if err == nil || errdefs.IsNotFound(err) {
				return
			}
		}
		fmt.Fprintf(os.Stderr, "containment: could not remove container %s\n", id[:12])
	}
	// exec starts a shell in the container and waits for the daemon's
	// pause event (riposte's docker path, or the freezer path once it has
	// told the daemon).
	exec := func(id string) (time.Time, bool, error) {
		ch := p.expect(id)
		ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"sh", "-c", "sleep 5"}})
		if err != nil {
			return time.Time{}, false, err
		}
		if err := cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
			return time.Time{}, false, err
		}
		select {
		case t1 := <-ch:
			return t1, true, nil
		case <-time.After(5 * time.Second):
			return time.Time{}, false, nil
		}
	}
	var bare, viaDocker, viaFreezer []sample
	misses := map[string]int{}
	for r := 0; r < runs; r++ {
		for i := 0; i < n; i++ {
			paths := []func() error{
				func() error { // riposte, Docker path: the exec of a shell to the pause event
					id, err := start(fmt.Sprintf("bench-dkr-%s-%d-%d", tag, r, i))
					if err != nil {
						return err
					}
					defer remove(id)
					at, ok, err := exec(id)
					if ok {
						viaDocker = append(viaDocker, sample{run: r, id: id, at: at})
					} else if err == nil {
						misses["docker"]++
					}
					return err
				},
				func() error { // riposte, freezer path: the exec to frozen (journal), told the daemon after
					id, err := start(fmt.Sprintf("bench-frz-%s-%d-%d", tag, r, i))
					if err != nil {
						return err
					}
					defer remove(id)
					_, ok, err := exec(id)
					viaFreezer = append(viaFreezer, sample{run: r, id: id})
					if !ok && err == nil {
						misses["freezer (daemon not told within 5 s)"]++
					}
					return err
				},
				func() error { // bare: the API call to the pause event
					id, err := start(fmt.Sprintf("bench-bare-%s-%d-%d", tag, r, i))
					if err != nil {
						return err
					}
					defer remove(id)
					ch := p.expect(id)
					t0 := time.Now()
					if err := cli.ContainerPause(ctx, id); err != nil {
						return err
					}
					select {
					case t1 := <-ch:
						bare = append(bare, sample{run: r, id: id, took: t1.Sub(t0)})
					case <-time.After(5 * time.Second):
						return fmt.Errorf("no pause event for the bare call")
					}
					return nil
				},
			}
			// The order turns each sample, so that no path always follows
			// the same one on a busy daemon.
			for k := range paths {
				if err := paths[(k+i)%len(paths)](); err != nil {
					return err
				}
			}
		}
	}
	execDocker, err := kernelExecs(dockerData)
	if err != nil {
		return err
	}
	execFreezer, err := kernelExecs(freezerData)
	if err != nil {
		return err
	}
	frozen, err := frozenAt(freezerData)
	if err != nil {
		return err
	}
	for k := range viaDocker {
		s := &viaDocker[k]
		if ns, ok := execDocker[s.id[:12]]; ok {
			s.took = s.at.Sub(time.Unix(0, ns))
		}
	}
	for k := range viaFreezer {
		s := &viaFreezer[k]
		f, ok1 := frozen[s.id]
		ns, ok2 := execFreezer[s.id[:12]]
		if ok1 && ok2 {
			s.took = time.Unix(0, f).Sub(time.Unix(0, ns))
		}
	}
	fmt.Printf("containment end to end, %d runs of %d, interleaved (p50 / p99, ms); riposte from the shell's exec (kernel time in the alert):\n", runs, n)
	fmt.Printf("  %-4s %-19s %-19s %-19s %s\n", "run", "bare pause", "Docker path", "freezer path", "Docker p99 / bare p99")
	var ratios, fp99s []float64
	for r := 0; r < runs; r++ {
		b, d, f := durations(bare, r), durations(viaDocker, r), durations(viaFreezer, r)
		b50, b99 := pct(b)
		d50, d99 := pct(d)
		f50, f99 := pct(f)
		ratio := 0.0
		if b99 > 0 {
			ratio = float64(d99) / float64(b99)
		}
		ratios, fp99s = append(ratios, ratio), append(fp99s, msf(f99))
		fmt.Printf("  %-4d %7.2f / %7.2f   %7.2f / %7.2f   %7.3f / %7.3f   %.2fx   (samples %d/%d/%d)\n", r+1,
			msf(b50), msf(b99), msf(d50), msf(d99), msf(f50), msf(f99), ratio, len(b), len(d), len(f))
	}
	sort.Float64s(ratios)
	sort.Float64s(fp99s)
	fmt.Printf("  Docker path p99 / bare p99 over the runs: min %.2fx  median %.2fx  max %.2fx\n", ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1])
	fmt.Printf("  freezer path exec -> frozen p99 over the runs: min %.2f ms  median %.2f ms  max %.2f ms\n", fp99s[0], fp99s[len(fp99s)/2], fp99s[len(fp99s)-1])
	fmt.Printf("  Docker path p99 <= 1.5x bare in every run: %s; freezer path exec -> frozen p99 < 2 ms in every run: %s\n",
		yes(ratios[len(ratios)-1] <= 1.5), yes(fp99s[len(fp99s)-1] < 2))
	if len(misses) > 0 {
		fmt.Printf("  misses: %v\n", misses)
	}
	for _, inst := range []struct {
		name, data string
		execs      map[string]int64
		end        map[string]int64 // full id -> contained, Unix ns
	}{
		{"Docker path", dockerData, execDocker, pauseEvents(viaDocker)},
		{"freezer path", freezerData, execFreezer, frozen},
	} {
		if err := stages(inst.name, inst.data, inst.execs, inst.end); err != nil {
			return err
		}
	}
	return nil
}

func pauseEvents(s []sample) map[string]int64 {
	out := map[string]int64{}
	for _, x := range s {
		out[x.id] = x.at.UnixNano()
	}
	return out
}

// stages prints where the time of one path goes, from its journal: the
// shell's exec (kernel) -> the alert stored (alert.received) -> the action
// claimed (action.started) -> the container contained (end).
func stages(name, data string, execs, end map[string]int64) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "riposte.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT j.type, j.time, i.raw FROM journal j JOIN inbox i ON i.id = j.alert_id
		WHERE j.type = 'alert.received' OR (j.type = 'action.started' AND j.action = 'container.pause')`)
	if err != nil {
		return fmt.Errorf("read the journal of %s: %w", data, err)
	}
	defer rows.Close()
	recv, started := map[string]int64{}, map[string]int64{} // short id -> first time
	for rows.Next() {
		var typ, at, raw string
		if err := rows.Scan(&typ, &at, &raw); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			continue
		}
		var a struct {
			Fields map[string]any `json:"output_fields"`
		}
		if json.Unmarshal([]byte(raw), &a) != nil {
			continue
		}
		id, _ := a.Fields["container.id"].(string)
		m := recv
		if typ == "action.started" {
			m = started
		}
		if v, ok := m[id]; id != "" && (!ok || t.UnixNano() < v) {
			m[id] = t.UnixNano()
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var toStored, toClaimed, toContained []time.Duration
	for full, e := range end {
		id := full[:12]
		x, r, c := execs[id], recv[id], started[id]
		if x == 0 || r == 0 || c == 0 {
			continue
		}
		toStored = append(toStored, time.Duration(r-x))
		toClaimed = append(toClaimed, time.Duration(c-r))
		toContained = append(toContained, time.Duration(e-c))
	}
	p := func(d []time.Duration) string {
		p50, p99 := pct(d)
		return fmt.Sprintf("%6.2f / %6.2f", msf(p50), msf(p99))
	}
	fmt.Printf("  %s, where the time goes (journal times, p50 / p99 ms, %d containers): exec -> alert stored %s; -> action claimed %s; -> contained %s\n",
		name, len(toStored), p(toStored), p(toClaimed), p(toContained))
	return nil
}

// durations returns the measured samples of run r (those whose exec time
// was found).
func durations(s []sample, r int) []time.Duration {
	var out []time.Duration
	for _, x := range s {
		if x.run == r && x.took > 0 {
			out = append(out, x.took)
		}
	}
	return out
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// frozenAt reads, from the journal in data, when the freezer path reported
// each container frozen (frozen_at_ns of its container.pause), by full id.
func frozenAt(data string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "riposte.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT detail FROM journal WHERE type = 'action.succeeded' AND action = 'container.pause'`)
	if err != nil {
		return nil, fmt.Errorf("read the journal of %s: %w", data, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var d struct {
			ID       string `json:"container_id"`
			FrozenAt int64  `json:"frozen_at_ns"`
		}
		if json.Unmarshal([]byte(raw), &d) == nil && d.ID != "" && d.FrozenAt > 0 {
			out[d.ID] = d.FrozenAt
		}
	}
	return out, rows.Err()
}

// kernelExecs reads, from the inbox in data, the kernel's time of the
// first shell exec alert of each container (evt.time), by short id.
func kernelExecs(data string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "riposte.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT raw FROM inbox`)
	if err != nil {
		return nil, fmt.Errorf("read the inbox of %s: %w", data, err)
	}
	defer rows.Close()
	first := map[string]int64{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var a struct {
			Rule   string         `json:"rule"`
			Fields map[string]any `json:"output_fields"`
		}
		if json.Unmarshal([]byte(raw), &a) != nil || (a.Rule != "Shell spawned in container" && a.Rule != "Terminal shell in container") {
			continue
		}
		id, _ := a.Fields["container.id"].(string)
		ns, _ := a.Fields["evt.time"].(float64)
		if t, ok := first[id]; id != "" && ns > 0 && (!ok || int64(ns) < t) {
			first[id] = int64(ns)
		}
	}
	return first, rows.Err()
}

func yes(b bool) string {
	if b {
		return "met"
	}
	return "not met"
}

func pct(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[(len(s)*99+99)/100-1]
}
