// Command containment measures, side by side in one run, how long riposte
// takes from the exec of a shell in a container to that container paused
// (detector, engine, store, Docker) and how long a bare Docker pause API
// call takes to the same observable: the daemon's pause event. A benchmark
// tool for scripts/bench-containment.sh, not part of riposte.
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

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

func main() {
	n := flag.Int("n", 50, "runs of each")
	image := flag.String("image", "riposte-test:1", "image of the containers")
	data := flag.String("data", "", "riposte's data directory (for the kernel's exec times of the alerts)")
	flag.Parse()
	if err := run(*n, *image, *data); err != nil {
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

func run(n int, image, data string) error {
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
	start := func(name string) (string, error) {
		_ = cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"sleep", "3600"}}, nil, nil, nil, name)
		if err != nil {
			return "", err
		}
		return c.ID, cli.ContainerStart(ctx, c.ID, container.StartOptions{})
	}
	remove := func(id string) {
		_ = cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true})
	}
	var viaAPI, bare []time.Duration
	pausedAt := map[string]time.Time{} // short id -> pause event
	misses := 0
	for i := 0; i < n; i++ {
		// riposte: the exec of a shell, to the pause event.
		id, err := start(fmt.Sprintf("bench-contain-%d", i))
		if err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond) // let the container settle (its own start is not the measured shell)
		ch := p.expect(id)
		ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"sh", "-c", "sleep 5"}})
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
			return err
		}
		select {
		case t1 := <-ch:
			viaAPI = append(viaAPI, t1.Sub(t0))
			pausedAt[id[:12]] = t1
		case <-time.After(5 * time.Second):
			misses++
		}
		remove(id)

		// bare: the API call, to the pause event.
		id, err = start(fmt.Sprintf("bench-bare-%d", i))
		if err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		ch = p.expect(id)
		t0 = time.Now()
		if err := cli.ContainerPause(ctx, id); err != nil {
			return err
		}
		select {
		case t1 := <-ch:
			bare = append(bare, t1.Sub(t0))
		case <-time.After(5 * time.Second):
			return fmt.Errorf("no pause event for the bare call")
		}
		remove(id)
	}
	viaKernel, err := fromKernelExec(data, pausedAt)
	if err != nil {
		return err
	}
	k50, k99, kmax := pct(viaKernel)
	a50, a99, amax := pct(viaAPI)
	b50, b99, bmax := pct(bare)
	fmt.Printf("containment, %d runs each, interleaved; T1 = the daemon's pause event:\n", n)
	fmt.Printf("  riposte: shell exec'd (kernel time in the alert) -> paused  p50 %s  p99 %s  max %s  (%d runs)\n", k50, k99, kmax, len(viaKernel))
	fmt.Printf("  bare ContainerPause API call -> paused                      p50 %s  p99 %s  max %s\n", b50, b99, bmax)
	fmt.Printf("  (riposte from the docker exec API call, runc's exec included: p50 %s  p99 %s  max %s; %d runs without a pause in 5 s)\n", a50, a99, amax, misses)
	if b99 > 0 && k99 > 0 {
		ratio := float64(k99) / float64(b99)
		fmt.Printf("  p99 ratio %.2fx (target <= 1.5x: %s); riposte p99 < 50 ms: %s\n", ratio, yes(ratio <= 1.5), yes(k99 < 50*time.Millisecond))
	}
	return nil
}

// fromKernelExec pairs each paused container with the kernel's time of the
// shell exec that caused it (evt.time of its first shell alert, read from
// the inbox) and returns exec -> pause event.
func fromKernelExec(data string, pausedAt map[string]time.Time) ([]time.Duration, error) {
	if data == "" {
		return nil, nil
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "riposte.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT raw FROM inbox`)
	if err != nil {
		return nil, err
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
	var out []time.Duration
	for id, paused := range pausedAt {
		if ns, ok := first[id]; ok {
			out = append(out, paused.Sub(time.Unix(0, ns)))
		}
	}
	return out, rows.Err()
}

func yes(b bool) string {
	if b {
		return "met"
	}
	return "not met"
}

func pct(d []time.Duration) (p50, p99, max time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(x time.Duration) time.Duration { return x.Round(100 * time.Microsecond) }
	return r(s[len(s)/2]), r(s[(len(s)*99+99)/100-1]), r(s[len(s)-1])
}
