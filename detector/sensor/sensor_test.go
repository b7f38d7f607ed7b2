package sensor_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/sensor"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// collect reads decoded records until stop returns true or the deadline.
func collect(t *testing.T, s *sensor.Sensor, d time.Duration, stop func(*sensor.Record) bool) []sensor.Record {
	t.Helper()
	var out []sensor.Record
	off := sensor.BootOffset()
	deadline := time.Now().Add(d)
	var raw ringbuf.Record
	for time.Now().Before(deadline) {
		s.SetDeadline(deadline)
		if err := s.Read(&raw); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			t.Fatalf("read: %v", err)
		}
		var rec sensor.Record
		if err := sensor.Decode(raw.RawSample, off, &rec); err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, rec)
		if stop(&rec) {
			break
		}
	}
	return out
}

func openSensor(t *testing.T) *sensor.Sensor {
	t.Helper()
	testutil.Integration(t, testutil.Root, testutil.BPF)
	mode, err := cgroup.DetectMode("/")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sensor.Open(sensor.Options{Cgroup: mode, IgnorePID: uint32(os.Getpid()), RingBufferBytes: 16 << 20})
	if err != nil {
		t.Fatalf("open sensor: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSensorSeesExecAndOpen runs a real command and finds its exec (with
// argv and parent) and its open of a file, with flags and fd.
func TestSensorSeesExecAndOpen(t *testing.T) {
	s := openSensor(t)
	dir := t.TempDir()
	target := dir + "/marker-file"
	cmd := exec.Command("/bin/sh", "-c", "echo hi > "+target+"; cat "+target)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	var sawExec, sawWrite, sawExit bool
	recs := collect(t, s, 5*time.Second, func(r *sensor.Record) bool {
		e := &r.Event
		switch {
		case e.Type == event.Exec && e.PID == pid:
			sawExec = true
			if e.Exe != "/bin/sh" || len(e.Args) != 3 || e.Args[2] != "echo hi > "+target+"; cat "+target {
				t.Errorf("exec: exe=%q args=%q", e.Exe, e.Args)
			}
			if e.PPID != uint32(os.Getpid()) {
				t.Errorf("exec: ppid %d, want %d", e.PPID, os.Getpid())
			}
		case e.Type == event.Open && e.PID == pid && e.Path == target:
			sawWrite = true
			if e.Flags&1 == 0 || e.Flags&0o100 == 0 || e.Ret < 0 {
				t.Errorf("open for write: flags %#o ret %d", e.Flags, e.Ret)
			}
		case e.Type == event.Exit && e.PID == pid:
			sawExit = true
		}
		return sawExec && sawWrite && sawExit
	})
	if !sawExec || !sawWrite || !sawExit {
		t.Fatalf("exec=%v open=%v exit=%v among %d records", sawExec, sawWrite, sawExit, len(recs))
	}
	drops, err := s.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if len(drops) != len(sensor.KernelTypes()) {
		t.Errorf("drops has %d types, want %d", len(drops), len(sensor.KernelTypes()))
	}
}

func TestCheckSaysWhatIsMissing(t *testing.T) {
	err := sensor.Check()
	if os.Geteuid() == 0 {
		if _, statErr := os.Stat(sensor.BTFPath); statErr == nil && err != nil {
			t.Fatalf("root with BTF: Check() = %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "needs root") {
		t.Fatalf("non-root: Check() = %v, want an error saying it needs root", err)
	}
}

// TestSensorSeesFileTreeAndNamespaceEvents runs real commands that change
// the file tree, leave the mount namespace and fail to connect, and finds
// each as its event with its arguments.
func TestSensorSeesFileTreeAndNamespaceEvents(t *testing.T) {
	s := openSensor(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now: the connect below is refused
	script := fmt.Sprintf(`cd %[1]s && echo data > f && chmod 4755 f && ln -s /etc/shadow sym && ln f hard &&
mv hard moved && truncate -s 1 moved && rm sym && unshare -m true && nsenter -t $$ -n true; exec 3<>/dev/tcp/127.0.0.1/%[2]d; true`, dir, port)
	cmd := exec.Command("/bin/bash", "-c", script)
	if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "refused") {
		t.Fatalf("%v: %s", err, out)
	}
	type want struct {
		typ   string
		match func(e *event.Event) bool
	}
	wants := []want{
		{event.Chmod, func(e *event.Event) bool { return (e.Path == dir+"/f" || e.Path == "f") && e.Mode == 0o4755 }},
		{event.Symlink, func(e *event.Event) bool { return e.Target == "/etc/shadow" && strings.HasSuffix(e.Path, "sym") }},
		{event.Link, func(e *event.Event) bool {
			return strings.HasSuffix(e.Target, "f") && strings.HasSuffix(e.Path, "hard")
		}},
		{event.Rename, func(e *event.Event) bool {
			return strings.HasSuffix(e.Path, "hard") && strings.HasSuffix(e.Target, "moved")
		}},
		{event.Truncate, func(e *event.Event) bool { return strings.HasSuffix(e.Path, "moved") || e.FD > 0 }},
		{event.Unlink, func(e *event.Event) bool { return strings.HasSuffix(e.Path, "sym") }},
		{event.Unshare, func(e *event.Event) bool { return e.Flags&0x20000 != 0 && e.Ret == 0 }}, // CLONE_NEWNS
		{event.Setns, func(e *event.Event) bool {
			return strings.HasPrefix(e.Path, "net:[") && e.Flags == 0x40000000 && e.FD > 0
		}},
		{event.Connect, func(e *event.Event) bool { return e.RemotePort == uint16(port) && e.Ret == -111 }}, // ECONNREFUSED
		{event.Chdir, func(e *event.Event) bool { return e.Path == dir && e.FD == 0 }},
	}
	seen := map[string]bool{}
	ours := map[uint32]bool{uint32(cmd.Process.Pid): true}
	// Generous: the ring buffer carries the whole host's events, and a busy
	// host delays the reader; the loop ends as soon as all are seen.
	recs := collect(t, s, 20*time.Second, func(r *sensor.Record) bool {
		e := &r.Event
		if e.Type == event.Fork && ours[e.PPID] {
			ours[e.PID] = true
		}
		if !ours[e.PID] {
			return false
		}
		for _, w := range wants {
			if e.Type == w.typ && w.match(e) {
				seen[w.typ] = true
			}
		}
		return len(seen) == len(wants)
	})
	if drops, err := s.Drops(); err == nil {
		var n uint64
		for _, d := range drops {
			n += d
		}
		if n > 0 {
			t.Logf("the kernel dropped %d events (ring buffer full)", n)
		}
	}
	for _, w := range wants {
		if !seen[w.typ] {
			var same []string
			for _, r := range recs {
				if r.Event.Type == w.typ && ours[r.Event.PID] {
					same = append(same, fmt.Sprintf("%+v", r.Event))
				}
			}
			t.Errorf("no matching %s event; %s events of the script: %v", w.typ, w.typ, same)
		}
	}
}
