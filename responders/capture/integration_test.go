package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
	"github.com/riposte-sec/riposte/responders/capture/capview"
	"github.com/riposte-sec/riposte/responders/docker"
)

// startDetector runs a detector until the test ends.
func startDetector(t *testing.T, cli *client.Client) *detector.Detector {
	t.Helper()
	d, err := detector.New(detector.Config{DisableResources: true}, detector.Deps{Docker: cli})
	if err != nil {
		t.Fatalf("new detector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(alert.Alert) {}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("detector: %v", err)
		}
	})
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("detector: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("detector not ready after 30s")
	}
	return d
}

// newCapture builds the responder the way `riposte serve` wires it: the
// detector's subscriptions, the Docker client, the docker responder as the
// protected-container guard.
func newCapture(t *testing.T, d *detector.Detector, cli *client.Client) (*capture.Capture, string) {
	t.Helper()
	guard, err := docker.New(docker.Config{DataDir: t.TempDir()}, docker.Deps{Docker: cli})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	c, err := capture.New(capture.Config{EvidenceDir: dir}, capture.Deps{Events: d, Docker: cli, Guard: guard, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// dockerExec runs cmd in the container like `docker exec [-t]` and waits
// for it to end; it returns the output.
func dockerExec(t *testing.T, cli *client.Client, id string, tty bool, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: tty})
	if err != nil {
		t.Fatalf("exec create: %v", err)
	}
	resp, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{Tty: tty})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	defer resp.Close()
	out, _ := io.ReadAll(resp.Reader)
	return string(out)
}

func requireTshark(t *testing.T) {
	t.Helper()
	testutil.Tools(t, "tshark")
}

func tshark(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func render(t *testing.T, path string, view capview.View, filter string) string {
	t.Helper()
	r, f, err := capfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts := capview.Options{View: view}
	if filter != "" {
		if opts.Filter, err = rules.CompileFilter(filter); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if _, err := capview.Render(&out, r, opts); err != nil {
		t.Fatalf("render %s: %v\n%s", view, err, out.String())
	}
	return out.String()
}

func mustContain(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, out)
		}
	}
}

// TestCaptureContainer is issue 7's acceptance test: a capture of a real
// container, while it runs commands from an interactive shell and opens a
// TCP connection across the docker bridge to a listener this test runs on
// the bridge gateway; the syscall file reads back with the commands and
// the connection, and tshark reads the pcapng and sees that connection.
func TestCaptureContainer(t *testing.T) {
	cli := testutil.DockerClient(t)
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	requireTshark(t)
	d := startDetector(t, cli)
	c, evidence := newCapture(t, d, cli)
	name := testutil.UniqueName("cap-e2e")
	id := testutil.RunContainer(t, cli, name, map[string]string{"app": "cap-e2e"})
	ctx := context.Background()
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ep := info.NetworkSettings.Networks["bridge"]
	if ep == nil || ep.Gateway == "" || ep.IPAddress == "" {
		t.Fatalf("container is not on the default bridge: %+v", info.NetworkSettings.Networks)
	}
	gateway, containerIP := ep.Gateway, ep.IPAddress

	// The listener the container connects to: on the bridge gateway, so
	// the traffic never leaves this machine.
	ln, err := net.Listen("tcp", net.JoinHostPort(gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		fmt.Fprintf(conn, "pong\n")
		got <- line
	}()

	res, err := c.Run(ctx, actions.Request{Action: capture.ActionStart, Container: name, Incident: "inc-e2e", Actor: "test",
		Params: actions.Params{"duration": "60s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Note)
	dir := res.Detail["dir"].(string)
	if !strings.HasPrefix(dir, filepath.Join(evidence, "inc-e2e", id[:12], "capture-")) {
		t.Errorf("capture directory %s", dir)
	}
	if ifs, _ := res.Detail["interfaces"].([]string); !strings.Contains(strings.Join(ifs, ","), "eth0") {
		t.Errorf("interfaces %v", res.Detail["interfaces"])
	}

	// An interactive session, and a connection to the listener.
	dockerExec(t, cli, id, true, "sh", "-c", "cat /etc/hostname; ls /tmp; id")
	out := dockerExec(t, cli, id, false, "sh", "-c", fmt.Sprintf("echo ping | nc %s %d", gateway, port))
	select {
	case line := <-got:
		if line != "ping\n" {
			t.Fatalf("listener read %q", line)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no connection reached the listener; nc said %q", out)
	}
	if !strings.Contains(out, "pong") {
		t.Errorf("nc output %q", out)
	}
	// A refused connection (a port nothing listens on any more) and changes
	// to the file tree: a symlink and a set-user-ID bit.
	closed, err := net.Listen("tcp", net.JoinHostPort(gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	dockerExec(t, cli, id, false, "sh", "-c", fmt.Sprintf("nc -w 2 %s %d </dev/null; ln -s /etc/shadow /tmp/s; cp /bin/busybox /tmp/b; chmod 4755 /tmp/b; true", gateway, closedPort))
	// A second capture.start while this one runs starts nothing.
	again, err := c.Run(ctx, actions.Request{Action: capture.ActionStart, Container: id, Incident: "inc-e2e"})
	if err != nil || !strings.HasPrefix(again.Note, "capture already running, ends at ") {
		t.Errorf("second start: %+v %v", again, err)
	}

	final, err := c.Stop(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(final.Note)
	if final.Detail["reason"] != capfile.ReasonStopped || final.Detail["truncated"] != false {
		t.Errorf("final = %+v", final)
	}
	sysPath, pcapPath := filepath.Join(dir, capture.SyscallsFile), filepath.Join(dir, capture.NetworkFile)
	if len(final.Evidence) != 3 || final.Evidence[0].Path != sysPath || final.Evidence[1].Path != pcapPath || final.SHA256 == "" {
		t.Fatalf("evidence = %+v", final.Evidence)
	}

	// capture read: the commands, the connection, the files.
	events := render(t, sysPath, capview.Events, "")
	mustContain(t, "events", events, "# riposte capture", "of container "+name+" ("+id[:12]+"), image riposte-test:1",
		"# process", `cmdline="sleep 3600"`, `cmdline="cat /etc/hostname"`, "# ended")
	procs := render(t, sysPath, capview.Procs, "")
	// Debian's busybox runs some applets in the forked shell without exec
	// (ls), and the last command in the shell itself (id).
	mustContain(t, "procs", procs, "at start", "sleep 3600", "cat /etc/hostname", "ls [no exec]", fmt.Sprintf("nc %s %d", gateway, port))
	conns := render(t, sysPath, capview.Connections, "")
	mustContain(t, "connections", conns, fmt.Sprintf("-> %s:%d", gateway, port), "out tcp", "nc(", fmt.Sprintf(`"nc %s %d"`, gateway, port))
	spy := render(t, sysPath, capview.SpyUsers, "")
	mustContain(t, "spy-users", spy, "cat /etc/hostname", "ls [no exec]", "id [no exec]", "pts/")
	if strings.Contains(spy, "nc ") {
		t.Errorf("spy-users shows the non-interactive nc:\n%s", spy)
	}
	files := render(t, sysPath, capview.Files, `fd.name == "/etc/hostname"`)
	mustContain(t, "files", files, "/etc/hostname", "O_RDONLY", "cat(")
	connect := render(t, sysPath, capview.Events, fmt.Sprintf(`evt.type == "connect" && fd.sport == %d`, port))
	if n := strings.Count(connect, " connect "); n != 1 {
		t.Errorf("filter on the connection: %d connect events:\n%s", n, connect)
	}

	refused := render(t, sysPath, capview.Events, `evt.type == "connect" && evt.failed`)
	mustContain(t, "refused connect", refused, fmt.Sprintf("->%s:%d", gateway, closedPort), "res=-111(ECONNREFUSED)")
	tree := render(t, sysPath, capview.Events, `evt.type in ["symlink", "chmod"]`)
	mustContain(t, "file tree", tree, "symlink", "target=/etc/shadow linkpath=/tmp/s", "chmod", "name=/tmp/b mode=04755")

	// tshark sees the connection: the SYN from the container to the
	// listener's port, on eth0, and the payload.
	syn := tshark(t, "-r", pcapPath, "-Y", fmt.Sprintf("tcp.port==%d && tcp.flags.syn==1 && tcp.flags.ack==0", port),
		"-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "frame.interface_name")
	if want := fmt.Sprintf("%s\t%s\t%d\teth0", containerIP, gateway, port); strings.TrimSpace(syn) != want {
		t.Errorf("tshark SYN: %q, want %q", syn, want)
	}
	payload := tshark(t, "-r", pcapPath, "-Y", fmt.Sprintf("tcp.dstport==%d && tcp.len > 0", port), "-T", "fields", "-e", "tcp.payload")
	if !strings.Contains(strings.ReplaceAll(payload, ":", ""), "70696e670a") { // "ping\n"
		t.Errorf("tshark payload to the listener: %q", payload)
	}
	desc := tshark(t, "-r", pcapPath, "-c", "1", "-T", "fields", "-e", "frame.interface_description")
	mustContain(t, "interface description", desc, "container "+name+" ("+id[:12]+")", "image riposte-test:1")
	t.Logf("files: %s", describe(final.Evidence))
}

func describe(ev []actions.Evidence) string {
	var parts []string
	for _, e := range ev {
		parts = append(parts, filepath.Base(e.Path)+"="+strconv.FormatInt(e.Size, 10))
	}
	return strings.Join(parts, " ")
}

// TestCaptureGuardAndExit: a protected container is refused by the docker
// responder's rules; a capture ends by itself when its container stops.
func TestCaptureGuardAndExit(t *testing.T) {
	cli := testutil.DockerClient(t)
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	d := startDetector(t, cli)
	c, evidence := newCapture(t, d, cli)
	ctx := context.Background()

	name := testutil.UniqueName("cap-protected")
	testutil.RunContainer(t, cli, name, map[string]string{"riposte.protect": "true"})
	_, err := c.Run(ctx, actions.Request{Action: capture.ActionStart, Container: name, Incident: "inc-g"})
	if !errors.Is(err, actions.ErrProtected) {
		t.Fatalf("protected container: err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(evidence, "inc-g")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused capture created %s", filepath.Join(evidence, "inc-g"))
	}

	id := testutil.RunContainer(t, cli, testutil.UniqueName("cap-exit"), nil, "sh", "-c", "sleep 1; cat /etc/passwd >/dev/null; sleep 1")
	start := time.Now()
	res, err := c.Run(ctx, actions.Request{Action: capture.ActionStart, Container: id, Incident: "inc-g",
		Params: actions.Params{"duration": "60s", "wait": true}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Detail["reason"] != capfile.ReasonContainerExited || time.Since(start) > 20*time.Second {
		t.Fatalf("capture of an exiting container: %+v after %s", res, time.Since(start))
	}
	events := render(t, res.Evidence[0].Path, capview.Events, "")
	mustContain(t, "events", events, "name=/etc/passwd", " exit code=0")
}

// TestCaptureMaxBytes: a busy container (commands and connections in a
// loop) fills a 64KiB cap: the capture stops itself, both files together
// stay within the cap, the syscall trailer and the pcap's statistics say
// it was truncated, and tshark still reads the pcap.
func TestCaptureMaxBytes(t *testing.T) {
	cli := testutil.DockerClient(t)
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	requireTshark(t)
	d := startDetector(t, cli)
	c, _ := newCapture(t, d, cli)
	ctx := context.Background()
	id := testutil.RunContainer(t, cli, testutil.UniqueName("cap-max"), nil)
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	gw := info.NetworkSettings.Networks["bridge"].Gateway
	ln, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				bufio.NewReader(conn).ReadString('\n')
				conn.Write([]byte(strings.Repeat("y", 2047) + "\n"))
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	go func() {
		for loopCtx.Err() == nil {
			dockerExecCtx(loopCtx, cli, id, "sh", "-c", fmt.Sprintf("for i in 1 2 3 4 5 6 7 8 9 10; do cat /etc/passwd >/dev/null; echo x | nc %s %d >/dev/null; done", gw, port))
		}
	}()
	res, err := c.Run(ctx, actions.Request{Action: capture.ActionStart, Container: id, Incident: "inc-max",
		Params: actions.Params{"duration": "60s", "max_bytes": "64KiB", "wait": true}})
	if err != nil {
		t.Fatal(err)
	}
	stopLoop()
	t.Log(res.Note)
	if res.Detail["reason"] != capfile.ReasonMaxBytes || res.Detail["truncated"] != true {
		t.Fatalf("result = %+v", res.Detail)
	}
	var total int64
	for _, ev := range res.Evidence[:2] {
		total += ev.Size
	}
	if total > 64<<10 || total < 48<<10 {
		t.Errorf("files take %d bytes for a 64KiB cap", total)
	}
	r, f, err := capfile.Open(res.Evidence[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		if _, err := r.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	if tr := r.Trailer(); !tr.Truncated || tr.Reason != capfile.ReasonMaxBytes {
		t.Errorf("syscall trailer = %+v", tr)
	}
	pcapPath := res.Evidence[1].Path
	if n := strings.Count(tshark(t, "-r", pcapPath, "-T", "fields", "-e", "frame.number"), "\n"); n == 0 {
		t.Error("tshark reads no packet from the truncated pcap")
	}
	data, err := os.ReadFile(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	var comments []string
	pr, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.NgReaderOptions{StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) {
		comments = append(comments, s.Comment)
	}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := pr.ReadPacketData(); err != nil {
			break
		}
	}
	if len(comments) == 0 || !strings.Contains(strings.Join(comments, "\n"), "reason=max_bytes, truncated at max_bytes=65536") {
		t.Errorf("pcap statistics comments: %q", comments)
	}
}

func dockerExecCtx(ctx context.Context, cli *client.Client, id string, cmd ...string) {
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return
	}
	resp, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return
	}
	defer resp.Close()
	io.Copy(io.Discard, resp.Reader)
}
