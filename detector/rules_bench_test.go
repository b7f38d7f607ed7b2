package detector_test

import (
	"testing"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/event"
)

// BenchmarkRulesMatch: the default rules over a mix of events, user space
// only.
func BenchmarkRulesMatch(b *testing.B) {
	rs, err := detector.LoadRules()
	if err != nil {
		b.Fatal(err)
	}
	c := event.Container{ID: "3f4e8c1a9b2d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f", Name: "web", Image: "app", Tag: "1"}
	evs := []event.Event{
		{Type: event.Open, Comm: "nginx", Path: "/var/www/index.html", Container: c},
		{Type: event.Exec, Comm: "cat", Exe: "/bin/cat", Args: []string{"cat", "x"}, PName: "sh", VPID: 5, Container: c},
		{Type: event.Connect, Comm: "curl", Family: "inet", SockType: "stream", RemoteAddr: "127.0.0.1", RemotePort: 80, Container: c},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := &evs[i%len(evs)]
		if _, _, err := rs.Match(ev); err != nil {
			b.Fatal(err)
		}
	}
}
