package detector

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/alert"
)

// mainPid resolves every container to one main process.
type mainPid int

func (m mainPid) Resolve(context.Context, string) (containers.Info, error) {
	return containers.Info{Known: true, Running: true, Pid: int(m)}, nil
}

// TestUserNameOfExitedProcess: the event's process is gone by the time its
// event is read (a short exec on a loaded host); the passwd file is read
// through the container's main process instead, and a failed read keeps
// what an earlier one knew.
func TestUserNameOfExitedProcess(t *testing.T) {
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	want, ok := parsePasswd(passwd)[65534]
	if !ok {
		t.Fatal("/etc/passwd names no uid 65534")
	}
	const id = "3f9a1c2b7d4e3f9a1c2b7d4e3f9a1c2b7d4e3f9a1c2b7d4e3f9a1c2b7d4e3f9a"
	d, err := New(Config{Hostname: "node-1"}, Deps{Resolvers: []containers.Resolver{mainPid(os.Getpid())}})
	if err != nil {
		t.Fatal(err)
	}
	d.cache.Get(context.Background(), id)
	p := newPipeline(d, func(alert.Alert) {})
	gone := uint32(1 << 30) // above pid_max: no such process
	ev := &Event{Container: event.Container{ID: id}}
	ev.PID, ev.EUID = gone, 65534
	if got := p.userName(ev); got != want {
		t.Fatalf("user of an exited process = %q, want %q (read through the main process)", got, want)
	}

	// The container's main process gone too: what was read stays.
	p.d.cache = containers.New(nil, nil)
	db := p.users[id]
	db.fetched = time.Now().Add(-time.Minute)
	p.users[id] = db
	ev.EUID = 4242 // unknown: forces a read, which fails
	if got := p.userName(ev); got != "" {
		t.Fatalf("user of unknown uid = %q", got)
	}
	ev.EUID = 65534
	if got := p.userName(ev); got != want {
		t.Fatalf("after a failed read, user = %q, want %q kept", got, want)
	}
}
