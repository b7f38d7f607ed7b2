package detector_test

import (
	"context"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// fpWorkload is the main process of the false-positive budget's container:
// an ordinary busy service built from busybox alone. A web server answers
// requests on loopback, the service logs every request and rotates its log
// (rename, gzip), and works through temporary files (write, rename, chmod,
// symlink to the newest, copy into a cache, truncate, delete).
const fpWorkload = `mkdir -p /www /var/log/app /tmp/work /var/cache/app
echo hello > /www/index.html
httpd -p 8080 -h /www
i=0
while :; do
	i=$((i+1))
	wget -q -O /dev/null http://127.0.0.1:8080/index.html
	echo "request $i $(date +%s)" >> /var/log/app/access.log
	echo "data $i" > /tmp/work/f$i.tmp && mv /tmp/work/f$i.tmp /tmp/work/f$i
	chmod 640 /tmp/work/f$i
	ln -sf /tmp/work/f$i /tmp/work/latest
	cp /tmp/work/f$i /var/cache/app/c$((i % 10))
	truncate -s 0 /var/cache/app/c$((i % 10))
	if [ $((i % 20)) -eq 0 ]; then
		mv /var/log/app/access.log /var/log/app/access.log.1
		gzip -f /var/log/app/access.log.1
		rm -f /tmp/work/f*
		ls /var/log/app > /dev/null
	fi
	sleep 0.1
done`

// fpDuration is how long the false-positive budget runs: 20s in the test
// suite, RIPOSTE_FP_DURATION (e.g. 10m, from scripts/bench-fp.sh) otherwise.
func fpDuration(t *testing.T) time.Duration {
	s := os.Getenv("RIPOSTE_FP_DURATION")
	if s == "" {
		return 20 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("RIPOSTE_FP_DURATION=%q: want a positive duration such as 10m", s)
	}
	return d
}

// TestFalsePositiveBudget runs an ordinary busy container under the
// default rules (resource rules included) with the host doing what
// operators do to it — a shell-form health check every second (docker's
// HEALTHCHECK CMD-SHELL), docker logs, inspect, stats and top — and allows
// no alert for it. The events it
// saw are checked so that a workload that did nothing cannot pass.
func TestFalsePositiveBudget(t *testing.T) {
	cli := testutil.DockerClient(t)
	t.Parallel()
	d, got := startDetector(t, detector.Config{}, cli)
	dur := fpDuration(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := testutil.UniqueName("det-fp-budget")
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image:        testutil.TestImage,
		Cmd:          []string{"sh", "-c", fpWorkload},
		ExposedPorts: nat.PortSet{"8080/tcp": {}},
		Healthcheck: &container.HealthConfig{
			// The shell form, as most images write HEALTHCHECK: /bin/sh -c
			// every interval, started from outside like docker exec.
			Test:     []string{"CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/index.html || exit 1"},
			Interval: time.Second, Timeout: 2 * time.Second,
		},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	})
	events, unsubscribe := d.Subscribe(created.ID, 1<<16)
	var (
		mu     sync.Mutex
		byType = map[string]int{}
		total  int
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range events {
			mu.Lock()
			byType[ev.Type]++
			total++
			mu.Unlock()
		}
	}()
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}

	// The host side: what an operator and a monitoring agent do.
	// Paced like a monitoring agent: a round of calls every half second.
	end := time.Now().Add(dur)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var hostOps int
	for ; time.Now().Before(end); <-tick.C {
		opCtx, opCancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := cli.ContainerInspect(opCtx, created.ID); err != nil {
			t.Errorf("docker inspect: %v", err)
		}
		if rc, err := cli.ContainerLogs(opCtx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"}); err == nil {
			_, _ = io.Copy(io.Discard, rc)
			rc.Close()
		} else {
			t.Errorf("docker logs: %v", err)
		}
		if st, err := cli.ContainerStatsOneShot(opCtx, created.ID); err == nil {
			_, _ = io.Copy(io.Discard, st.Body)
			st.Body.Close()
		} else {
			t.Errorf("docker stats: %v", err)
		}
		if _, err := cli.ContainerTop(opCtx, created.ID, nil); err != nil {
			t.Errorf("docker top: %v", err)
		}
		opCancel()
		hostOps++
	}
	info, err := cli.ContainerInspect(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !info.State.Running {
		t.Fatalf("the workload stopped (exit code %d): the budget measured nothing", info.State.ExitCode)
	}
	unsubscribe()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	types := make([]string, 0, len(byType))
	for typ, n := range byType {
		types = append(types, typ+"="+strconv.Itoa(n))
	}
	sort.Strings(types)
	var alerted []string
	for _, a := range got.snapshot() {
		if a.Field("container.id") == created.ID[:12] {
			alerted = append(alerted, strings.TrimSpace(a.Output))
		}
	}
	health := "none"
	if info.State.Health != nil {
		health = info.State.Health.Status
	}
	t.Logf("false-positive budget: %s of workload, %d events from the container (%s), %d rounds of docker inspect/logs/stats/top, health %s, %d alerts",
		dur, total, strings.Join(types, " "), hostOps, health, len(alerted))
	for _, typ := range []string{event.Exec, event.Open, event.Connect, event.Accept, event.Listen, event.Rename,
		event.Unlink, event.Chmod, event.Symlink, event.Truncate} {
		if byType[typ] == 0 {
			t.Errorf("no %s event from the workload: it did not run as meant", typ)
		}
	}
	if len(alerted) > 0 {
		t.Errorf("%d alerts for a benign workload:\n%s", len(alerted), strings.Join(alerted, "\n"))
	}
}
