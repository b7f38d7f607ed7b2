package topfeed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// Replay feeds the console from a capture file (riposte's capture.start
// evidence, syscalls.jsonl.gz), like csysdig -r: the capture's container,
// the processes it held at start, and every event, sent at once; the
// console's time cursor walks through them.
type Replay struct {
	Reader *capfile.Reader
	Name   string // the file, for the status line
}

// Run reads the whole file, sends it, and returns.
func (r *Replay) Run(ctx context.Context, send func(console.Update)) error {
	u, err := r.Read(ctx)
	if err != nil {
		send(console.Update{Err: err.Error()})
	}
	send(u)
	return nil
}

// Read turns the capture into one Update. A file cut short (no trailer)
// still gives what it holds, with the error.
func (r *Replay) Read(ctx context.Context) (console.Update, error) {
	h := r.Reader.Header()
	c := h.Container
	cont := console.Container{ID: c.ID, Name: c.Name, Image: c.Image, State: "captured"}
	u := console.Update{ContainersSet: true, Containers: []console.Container{cont}}
	t := NewTracker(nil)
	var events uint64
	var readErr error
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return u, ctx.Err()
		}
		rec, err := r.Reader.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read capture %s: %w", r.Name, err)
			break
		}
		switch {
		case rec.Process != nil:
			t.Seed(c.ID, c.Name, rec.Process, h, &u)
		case rec.Event != nil:
			events++
			rec.Event.Container.ID, rec.Event.Container.Name = c.ID, c.Name
			t.Add(rec.Event, &u)
		}
	}
	s := console.Stats{Events: events, Source: "capture " + filepath.Base(r.Name)}
	if tr := r.Reader.Trailer(); tr != nil {
		s.Drops = tr.Lost.Total()
	}
	u.Stats = &s
	return u, readErr
}

// Seed adds a process found running (in a capture's state header, or in
// /proc when top starts).
func (t *Tracker) Seed(containerID, name string, p *capfile.Process, h capfile.Header, u *console.Update) {
	started := p.Started
	if started.IsZero() {
		started = h.Started
	}
	ev := event.Event{PID: p.PID, PPID: p.PPID, Comm: p.Comm, Args: p.Args, User: p.User, EUID: p.EUID,
		Container: event.Container{ID: containerID, Name: name}}
	if _, ok := t.procs[key(&ev)]; ok {
		return // seen start since: the events know better
	}
	user := p.User
	if user == "" {
		user = strconv.FormatUint(uint64(p.EUID), 10)
	}
	tp := &tracked{row: console.Proc{ContainerID: containerID, Container: name, PID: p.PID, PPID: p.PPID, User: user,
		Cmdline: cmdline(&ev), Started: started}, comm: p.Comm, tty: p.TTY}
	t.put(key(&ev), tp)
	u.Procs = append(u.Procs, tp.row)
}
