package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// testResponder returns a Responder on the real daemon with a fresh data
// directory; edit adjusts the config.
func testResponder(t testing.TB, cli *client.Client, edit func(*Config)) *Responder {
	t.Helper()
	cfg := Config{DataDir: t.TempDir()}
	if edit != nil {
		edit(&cfg)
	}
	r, err := New(cfg, Deps{Docker: cli, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func run(t testing.TB, r *Responder, action, ref string, params actions.Params) (actions.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return r.Run(ctx, actions.Request{Action: action, Container: ref, Params: params, Incident: "inc-" + t.Name(), Actor: "test:" + t.Name()})
}

func mustRun(t testing.TB, r *Responder, action, ref string, params actions.Params) actions.Result {
	t.Helper()
	res, err := run(t, r, action, ref, params)
	if err != nil {
		t.Fatalf("%s %s: %v", action, ref, err)
	}
	return res
}

func inspect(t testing.TB, cli *client.Client, id string) container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return info
}

// execIn runs cmd in the container and returns its exit code and output.
func execIn(t testing.TB, cli *client.Client, id string, cmd ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	att, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %q: attach: %v", cmd, err)
	}
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		t.Fatalf("exec %q: read: %v", cmd, err)
	}
	for {
		st, err := cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			t.Fatalf("exec %q: inspect: %v", cmd, err)
		}
		if !st.Running {
			return st.ExitCode, out.String()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExited waits until the container has exited and returns its state.
func waitExited(t testing.TB, cli *client.Client, id string, within time.Duration) container.InspectResponse {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		info := inspect(t, cli, id)
		if !info.State.Running {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still running after %s", shortID(id), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testNetwork creates a user-defined bridge network, removed when t ends.
// subnet "" lets Docker choose; otherwise it is a printf pattern with one %d
// for the third octet, tried until a free one is found.
func testNetwork(t testing.TB, cli *client.Client, name, subnet string) (id string, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := network.CreateOptions{Driver: "bridge", Labels: map[string]string{"riposte.test": "docker"}}
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if subnet != "" {
			third := 100 + int(randByte())%150
			prefix = fmt.Sprintf(subnet, third)
			opts.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: prefix + ".0/24"}}}
		}
		var created network.CreateResponse
		created, err = cli.NetworkCreate(ctx, name, opts)
		if err == nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := cli.NetworkRemove(ctx, created.ID); err != nil && !cerrdefs.IsNotFound(err) {
					t.Logf("remove network %s: %v", name, err)
				}
			})
			return created.ID, prefix
		}
		if subnet == "" || !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	t.Fatalf("create network %s: %v", name, err)
	return "", ""
}

func randByte() byte {
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	return b[0]
}

// container starts a test container with a unique dkr- name.
func startContainer(t testing.TB, cli *client.Client, base string, labels map[string]string, cmd ...string) (id, name string) {
	t.Helper()
	name = testutil.UniqueName("dkr-" + base)
	return testutil.RunContainer(t, cli, name, labels, cmd...), name
}

// startReady starts a container running script and returns once the
// script has touched /tmp/ready. Docker reports a container running as soon
// as runc starts it, before its command has run: a signal sent in between
// reaches runc's init (a Go program: SIGTERM makes it exit 2) or a shell
// that has not read its trap yet (as PID 1 it ignores SIGTERM and never
// exits). Those races made the stop and kill tests' exit codes flaky on a
// busy daemon; the signal tests wait for the command instead.
func startReady(t *testing.T, cli *client.Client, base, script string) string {
	t.Helper()
	id, _ := startContainer(t, cli, base, nil, "sh", "-c", script)
	waitReady(t, cli, id)
	return id
}

// startTrapping starts a container whose shell exits with code on SIGTERM,
// and returns once the trap is installed.
func startTrapping(t *testing.T, cli *client.Client, base string, code int) string {
	t.Helper()
	return startReady(t, cli, base, fmt.Sprintf(`trap "exit %d" TERM; touch /tmp/ready; while :; do sleep 1; done`, code))
}

// waitReady waits until the container's command has created /tmp/ready.
func waitReady(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() bool {
		code, _ := execIn(t, cli, id, "test", "-f", "/tmp/ready")
		return code == 0
	}, "container %s never got ready", shortID(id))
}
