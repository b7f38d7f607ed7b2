package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// tmuxSession is a terminal the test types into and reads, on a tmux
// server of its own (its own socket: the test never touches another).
type tmuxSession struct {
	t      *testing.T
	socket string
}

func (s tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keys types into a window: each argument is a tmux key name (Enter,
// Escape) or literal text (-l would forbid key names, so text goes alone).
func (s tmuxSession) keys(window string, keys ...string) {
	s.t.Helper()
	for _, k := range keys {
		switch k {
		case "Enter", "Escape", "F8", "Up", "Down":
			s.tmux("send-keys", "-t", window, k)
		default:
			s.tmux("send-keys", "-t", window, "-l", k)
		}
	}
}

func (s tmuxSession) screen(window string) string {
	s.t.Helper()
	return s.tmux("capture-pane", "-p", "-t", window)
}

// waitScreen waits until the window's screen satisfies cond.
func (s tmuxSession) waitScreen(window string, timeout time.Duration, what string, cond func(string) bool) string {
	s.t.Helper()
	var last string
	deadline := time.Now().Add(timeout)
	for {
		last = s.screen(window)
		if cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not on screen after %s; the screen:\n%s", what, timeout, last)
		}
		// Poll the terminal: tmux has no way to wait on screen content.
		<-time.After(100 * time.Millisecond)
	}
}

func (s tmuxSession) waitText(window, text string, timeout time.Duration) string {
	s.t.Helper()
	return s.waitScreen(window, timeout, fmt.Sprintf("%q", text), func(sc string) bool { return strings.Contains(sc, text) })
}

// TestTopEndToEnd drives the real riposte binary in a terminal (tmux)
// against a real container: a command typed in an interactive shell shows
// in spy-users, the connection it opens in connections, and `a p y` on the
// container pauses it, the journal naming the terminal's user.
func TestTopEndToEnd(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	testutil.Tools(t, "tmux", "docker", "go")
	cli := testutil.DockerClient(t)
	testutil.EnsureTestImage(t, cli)

	began := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	dir := t.TempDir()
	bin := filepath.Join(dir, "riposte")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	step("built")

	name := testutil.UniqueName("top-e2e")
	id := testutil.RunContainer(t, cli, name, map[string]string{"app": "top-e2e"})
	info, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ep := info.NetworkSettings.Networks["bridge"]
	if ep == nil || ep.Gateway == "" {
		t.Fatalf("container is not on the default bridge: %+v", info.NetworkSettings.Networks)
	}
	// What the container connects to: a listener on the bridge gateway,
	// so the traffic never leaves this machine.
	ln, err := net.Listen("tcp", net.JoinHostPort(ep.Gateway, "0"))
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
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		got <- line
	}()

	s := tmuxSession{t: t, socket: testutil.UniqueName("riposte-top-e2e")}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	// The console, 200x40, in-process detector, its log in a file.
	s.tmux("new-session", "-d", "-s", "e2e", "-n", "top", "-x", "200", "-y", "40",
		fmt.Sprintf("%s top --data %s --log %s --view spy-users; echo top exited $?; sleep 600", bin, data, filepath.Join(dir, "top.log")))
	// The status line names the source, "(starting)" until the detector
	// is attached.
	s.waitScreen("top", 60*time.Second, "the detector attached", func(sc string) bool {
		return strings.HasSuffix(strings.TrimRight(sc, "\n "), "| in-process detector")
	})

	step("detector attached")
	// An interactive shell in the container, in a second window.
	s.tmux("new-window", "-d", "-t", "e2e", "-n", "shell", "docker exec -it "+name+" sh")
	s.waitScreen("shell", 30*time.Second, "the shell's prompt", func(sc string) bool {
		return strings.Contains(sc, "#") || strings.Contains(sc, "$")
	})
	s.keys("shell", "cat /etc/hostname", "Enter")
	s.waitText("shell", id[:12], 10*time.Second) // the container's hostname
	s.keys("shell", fmt.Sprintf("echo ping | nc %s %d", ep.Gateway, port), "Enter")
	select {
	case line := <-got:
		if line != "ping\n" {
			t.Fatalf("listener read %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no connection reached the listener; the shell:\n%s", s.screen("shell"))
	}

	// A connect refused (a port just closed on the gateway) and file
	// operations: rename, setuid chmod, symlink, delete.
	closed, err := net.Listen("tcp", net.JoinHostPort(ep.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	s.keys("shell", fmt.Sprintf("nc %s %d; echo nc-done", ep.Gateway, closedPort), "Enter")
	s.waitText("shell", "nc-done", 20*time.Second)
	s.keys("shell", "touch /tmp/a && mv /tmp/a /tmp/b && chmod 4755 /tmp/b && ln -s /etc/shadow /tmp/s && rm /tmp/b && echo ops-done", "Enter")
	s.waitText("shell", "ops-done", 10*time.Second)

	step("typed")
	// spy-users: the typed command, with the container and the terminal.
	sc := s.waitText("top", "cat /etc/hostname", 20*time.Second)
	if !lineHas(sc, "cat /etc/hostname", name[:min(len(name), 15)], "pts/", "sh") {
		t.Errorf("spy-users row lacks the container, tty or shell:\n%s", sc)
	}
	step("spy-users")
	// containers: ours alone with the filter; enter shows its processes
	// (the main process, running before top started, and the shell's) and
	// keeps the other views to it: other tests' containers run beside.
	s.keys("top", "1", "/", name, "Enter")
	s.waitScreen("top", 20*time.Second, "the container alone", func(sc string) bool {
		return strings.Contains(sc, "containers 1 |") && strings.Contains(sc, "> "+name[:min(len(name), 19)])
	})
	s.keys("top", "Enter")
	sc = s.waitText("top", "sleep 3600", 20*time.Second)
	if !strings.Contains(sc, "procs ") || !strings.Contains(sc, "container "+name+" (esc: all)") {
		t.Errorf("enter did not show the container's processes:\n%s", sc)
	}
	s.waitText("top", "cat /etc/hostname", 10*time.Second)
	step("procs")
	// connections: the new connection to the listener.
	s.keys("top", "3")
	server := fmt.Sprintf("-> %s:%d", ep.Gateway, port)
	sc = s.waitText("top", server, 20*time.Second)
	if !lineHas(sc, server, "out", "tcp", "nc(") {
		t.Errorf("connection row lacks direction, protocol or process:\n%s", sc)
	}

	refused := fmt.Sprintf("-> %s:%d", ep.Gateway, closedPort)
	sc = s.waitText("top", refused, 20*time.Second)
	if !lineHas(sc, refused, "out", "tcp", "ECONNREFUSED") {
		t.Errorf("the refused connect's row lacks ECONNREFUSED:\n%s", sc)
	}

	step("connections")
	// files: the rename (old -> new), the chmod's mode, the symlink's
	// target, the delete.
	s.keys("top", "5")
	sc = s.waitText("top", "/tmp/a -> /tmp/b", 20*time.Second)
	for _, want := range [][]string{{"rename", "/tmp/a -> /tmp/b"}, {"chmod", "/tmp/b  mode 04755"}, {"symlink", "/tmp/s -> /etc/shadow"},
		{"delete", "/tmp/b", "ok"}} {
		if !lineHas(sc, want...) {
			t.Errorf("files view lacks a row with %q:\n%s", want, sc)
		}
	}
	step("files")
	// Back to the container: a p y.
	s.keys("top", "1")
	s.waitText("top", "> "+name[:min(len(name), 19)], 5*time.Second)
	s.keys("top", "a")
	s.waitText("top", "p pause", 5*time.Second)
	s.keys("top", "p")
	s.waitText("top", "press y to confirm", 5*time.Second)
	s.keys("top", "y")
	sc = s.waitScreen("top", 60*time.Second, "the pause's outcome", func(sc string) bool {
		return strings.Contains(sc, "container.pause "+name+": ") && !strings.Contains(sc, "running...")
	})
	if !strings.Contains(sc, "(journaled)") {
		t.Fatalf("pause did not succeed:\n%s", sc)
	}
	st, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !st.State.Paused {
		t.Fatalf("container %s is not paused: %+v", name, st.State)
	}
	step("paused")
	s.waitText("top", "paused", 10*time.Second) // the containers view's state, at the next poll

	// Quit, then read the journal: the action, by the terminal's user.
	s.keys("top", "q")
	s.waitText("top", "top exited 0", 10*time.Second)
	out, err := exec.Command(bin, "journal", "show", "--data", data, "--output", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("journal show: %v\n%s", err, out)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct {
			Type   string `json:"type"`
			Action string `json:"action"`
			Actor  string `json:"actor"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		if e.Type == "action.succeeded" && e.Action == "container.pause" && e.Actor == "cli:"+u.Username {
			found = true
		}
	}
	if !found {
		t.Errorf("no action.succeeded container.pause by cli:%s in the journal:\n%s", u.Username, out)
	}
	if t.Failed() {
		if b, err := os.ReadFile(filepath.Join(dir, "top.log")); err == nil {
			t.Logf("top's log:\n%s", b)
		}
	}
}

// lineHas reports whether one line of the screen holds all of parts.
func lineHas(screen string, parts ...string) bool {
	for _, l := range strings.Split(screen, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
