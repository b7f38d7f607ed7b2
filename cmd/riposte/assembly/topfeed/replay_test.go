package topfeed

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

const sampleCapture = "../../../../responders/capture/capfile/testdata/docker-exec.jsonl.gz"

func TestReplay(t *testing.T) {
	r, f, err := capfile.Open(sampleCapture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := (&Replay{Reader: r, Name: sampleCapture}).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Containers) != 1 || u.Containers[0].State != "captured" || u.Stats == nil || u.Stats.Events == 0 ||
		u.Stats.Source != "capture docker-exec.jsonl.gz" {
		t.Fatalf("containers %+v stats %+v", u.Containers, u.Stats)
	}
	var spies []string
	for _, s := range u.Spies {
		spies = append(spies, s.Cmdline)
	}
	if strings.Join(spies, ";") != "cat /etc/hostname;ls [no exec]" {
		t.Errorf("spies %q, want the exec'd cat and ls, which busybox runs in the forked shell", spies)
	}
	conn := false
	for _, c := range u.Conns {
		if c.Direction == "out" && c.Proto == "tcp" && c.Server == "172.17.0.1:38735" && c.Comm == "nc" {
			conn = true
		}
	}
	if !conn {
		t.Errorf("conns %+v lack nc's connection to 172.17.0.1:38735", u.Conns)
	}
	seeded := false
	for _, p := range u.Procs {
		if p.Cmdline == "sleep 3600" && p.Exited == nil {
			seeded = true
		}
	}
	if !seeded {
		t.Errorf("the process running at the capture's start is missing: %+v", u.Procs)
	}

	// The console shows it, with the time cursor.
	m := console.New(console.Options{View: console.SpyUsers, Replay: true})
	m.Apply(u)
	if s := m.View(); !strings.Contains(s, "cat /etc/hostname") || !strings.Contains(s, "at 18:57:41") {
		t.Errorf("replay screen:\n%s", s)
	}
}

// TestReplayTruncated: a capture cut short (a crash while recording) shows
// what it holds and says what is wrong.
func TestReplayTruncated(t *testing.T) {
	f, err := os.Open(sampleCapture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(all, []byte("\n"))
	var cut bytes.Buffer
	zw := gzip.NewWriter(&cut)
	if _, err := zw.Write(bytes.Join(lines[:len(lines)/2], nil)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := capfile.NewReader(&cut)
	if err != nil {
		t.Fatal(err)
	}
	var got []console.Update
	if err := (&Replay{Reader: r, Name: "cut.jsonl"}).Run(context.Background(), func(u console.Update) { got = append(got, u) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0].Err, "read capture cut.jsonl: ") || !got[1].ContainersSet {
		t.Errorf("updates %+v", got)
	}
}

// TestReplayFileOpsAndFailedConnects: a capture's failed connects and file
// operations reach the views as live ones do.
func TestReplayFileOpsAndFailedConnects(t *testing.T) {
	var buf bytes.Buffer
	w, err := capfile.NewWriter(&buf, capfile.Header{CaptureID: "c1", Started: t0, Container: capfile.Container{ID: cid, Name: "web"}},
		capfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events := []event.Event{
		ev(event.Connect, 300, 1, "nc", func(e *event.Event) {
			e.Family, e.SockType, e.LocalAddr, e.LocalPort, e.RemoteAddr, e.RemotePort, e.Ret = "inet", "stream", "172.17.0.2", 40000, "10.0.0.1", 81, -111
		}),
		ev(event.Rename, 301, 1, "mv", func(e *event.Event) { e.Path, e.Target = "/root/.ash_history", "/tmp/h" }),
		ev(event.Chmod, 302, 1, "chmod", func(e *event.Event) { e.Path, e.Mode = "/tmp/x", 0o4755 }),
	}
	for i := range events {
		if err := w.Event(&events[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(capfile.Trailer{}); err != nil {
		t.Fatal(err)
	}
	r, err := capfile.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	u, err := (&Replay{Reader: r, Name: "ops.jsonl.gz"}).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Conns) != 1 || u.Conns[0].Result != "ECONNREFUSED" || u.Conns[0].Server != "10.0.0.1:81" {
		t.Errorf("conns %+v, want the refused connect to 10.0.0.1:81", u.Conns)
	}
	if len(u.Files) != 2 || u.Files[0].Op != "rename" || u.Files[0].Target != "/tmp/h" || u.Files[1].Detail != "mode 04755" {
		t.Errorf("files %+v, want the rename and the chmod", u.Files)
	}
	m := console.New(console.Options{View: console.Files, Replay: true})
	m.Apply(u)
	if s := m.View(); !strings.Contains(s, "/root/.ash_history -> /tmp/h") || !strings.Contains(s, "/tmp/x  mode 04755") {
		t.Errorf("replay files screen:\n%s", s)
	}
}
