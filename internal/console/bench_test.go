package console

import (
	"strconv"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// full is a console at its limits: every list full, 50 containers.
func full(b *testing.B) *Model {
	b.Helper()
	m := New(Options{View: Connections})
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	var u Update
	u.ContainersSet = true
	for i := range 50 {
		u.Containers = append(u.Containers, Container{ID: strconv.Itoa(1000000000000 + i), Name: "c" + strconv.Itoa(i), State: "running"})
	}
	for i := range maxEvents {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		id := u.Containers[i%50].ID
		u.Conns = append(u.Conns, Conn{Time: at, ContainerID: id, Direction: "out", Proto: "tcp", Client: "10.0.0.1:1", Server: "10.0.0.2:80", Comm: "wget"})
		u.Spies = append(u.Spies, Spy{Time: at, ContainerID: id, Shell: "sh", Cmdline: "cat /etc/passwd"})
		u.Files = append(u.Files, File{Time: at, ContainerID: id, Op: "read", Comm: "cat", Path: "/etc/passwd"})
		u.Procs = append(u.Procs, Proc{ContainerID: id, PID: uint32(i + 2), PPID: uint32(i/50 + 1), Cmdline: "sh -c x", Started: at})
	}
	m.Apply(u)
	return m
}

// BenchmarkRender is what one screen costs with every list full: bubbletea
// draws after every message. After a source update (4 a second) the rows
// are built again; after a key that changes nothing they are reused.
func BenchmarkRender(b *testing.B) {
	for _, v := range []View{Containers, Procs, Connections, Files} {
		b.Run(v.String()+"/after-update", func(b *testing.B) {
			m := full(b)
			m.view = v
			for b.Loop() {
				m.dataGen++ // what Apply does
				_ = m.View()
			}
		})
		b.Run(v.String()+"/after-key", func(b *testing.B) {
			m := full(b)
			m.view = v
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}

// BenchmarkApply is the cost of one source update of 500 events on a full
// console.
func BenchmarkApply(b *testing.B) {
	m := full(b)
	var u Update
	for i := range 500 {
		u.Conns = append(u.Conns, Conn{Time: t0.Add(time.Hour + time.Duration(i)), ContainerID: "1000000000000", Direction: "out"})
	}
	b.ResetTimer()
	for b.Loop() {
		m.Apply(u)
	}
}
