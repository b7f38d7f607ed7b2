// Command actbench measures, side by side in one run, a bare Docker
// ContainerPause API call and `riposte act container.pause` end to end
// (process start, config, store open, guardrails, pause, journal write),
// median of N each, unpausing between samples. A benchmark tool for
// scripts/bench-act.sh, not part of riposte.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

func main() {
	bin := flag.String("riposte", "bin/riposte", "riposte binary")
	data := flag.String("data", "", "data directory for riposte act")
	image := flag.String("image", "riposte-test:1", "image of the container to pause")
	n := flag.Int("n", 20, "samples of each")
	flag.Parse()
	if err := run(*bin, *data, *image, *n); err != nil {
		fmt.Fprintln(os.Stderr, "actbench:", err)
		os.Exit(1)
	}
}

func run(bin, data, image string, n int) error {
	ctx := context.Background()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	name := fmt.Sprintf("actbench-%d", os.Getpid())
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"sleep", "3600"}}, nil, nil, nil, name)
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return err
	}
	var bare, act []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := cli.ContainerPause(ctx, c.ID); err != nil {
			return fmt.Errorf("bare pause: %w", err)
		}
		bare = append(bare, time.Since(t0))
		if err := cli.ContainerUnpause(ctx, c.ID); err != nil {
			return err
		}
		t0 = time.Now()
		out, err := exec.Command(bin, "act", "container.pause", "--container", name, "--data", data).CombinedOutput()
		if err != nil {
			return fmt.Errorf("riposte act: %v: %s", err, out)
		}
		act = append(act, time.Since(t0))
		if err := cli.ContainerUnpause(ctx, c.ID); err != nil {
			return err
		}
	}
	fmt.Printf("pause, median of %d (interleaved): bare ContainerPause API call %s; riposte act container.pause end to end %s (min %s, max %s)\n",
		n, median(bare), median(act), minOf(act), maxOf(act))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(10 * time.Microsecond)
}

func minOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m.Round(10 * time.Microsecond)
}

func maxOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m.Round(10 * time.Microsecond)
}
