package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// settledPlan is the detail of a dry-run playbook.matched entry of the
// example playbooks' shape: four actions, each with its parameters and
// decision.
func settledPlan(order int) map[string]any {
	return map[string]any{
		"incident": TheIncident, "order": order, "actions": 4, "dry_run": true, "retry": false,
		PlanDetail: []PlanStep{
			{Index: 0, Action: "slack.notify", With: map[string]any{"channel": "#security-oncall", "text": "Terminal shell in container: bash in api-7d9f"}, Decision: "skipped_dry_run"},
			{Index: 1, Action: "container.snapshot", With: map[string]any{"export": false, "logs": 200}, Decision: "skipped_dry_run"},
			{Index: 2, Action: "container.pause", Decision: "skipped_dry_run"},
			{Index: 3, Action: "journal.note", With: map[string]any{"text": "Warning Terminal shell in container on node-1"}, Decision: "skipped_dry_run"},
		},
	}
}

// BenchmarkAcceptSettled measures the accept of alerts processed before
// they are stored (AcceptSettled): each alert settled with two dry-run
// plans, the shape of `serve --dry-run` with the example playbooks, over
// 64 containers. Reported per alert: CPU of the whole process, heap
// allocations, WAL fsyncs and 4 KiB pages handed to write(2); alerts/s and
// latency. Run it with enough alerts that the indexes outgrow a page:
//
//	go test -run '^$' -bench AcceptSettled -benchtime 40000x -count 5 ./internal/store
func BenchmarkAcceptSettled(b *testing.B) {
	for _, bc := range []struct {
		name             string
		callers, perCall int
	}{{"c16x1", 16, 1}, {"c64x1", 64, 1}, {"c64x20", 64, 20}} {
		for _, v := range []struct {
			name string
			opts Options
		}{
			{"indexed", Options{indexSettled: true}},
			{"now", Options{}},
		} {
			b.Run(bc.name+"/"+v.name, func(b *testing.B) {
				s := openTest(b, v.opts)
				benchSettled(b, s, bc.callers, bc.perCall)
			})
		}
	}
}

func benchSettled(b *testing.B, s *Store, callers, perCall int) {
	var pageSize int64
	if err := s.rdb.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		b.Fatal(err)
	}
	c0, err := readCost()
	if err != nil {
		b.Skipf("no cost counters on this system: %v", err)
	}
	f0 := s.w.syncs.Load()
	ctx := context.Background()
	run := benchRun.Add(1)
	var next atomic.Int64
	lat := make([][]time.Duration, callers)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := make([]alert.Alert, perCall)
			for {
				i := next.Add(int64(perCall))
				if i > int64(b.N)+int64(perCall)-1 {
					return
				}
				settled := make([]*Settled, perCall)
				for j := range a {
					k := uint64(i + int64(j))
					a[j] = testAlert(fmt.Sprintf("bench-%d-%016x", run, k*0x9E3779B97F4A7C15))
					a[j].OutputFields["container.id"] = fmt.Sprintf("%012d", k%64)
					settled[j] = &Settled{Entries: []Entry{
						{Type: PlaybookMatched, AlertID: a[j].ID, Playbook: "oncall-shell-in-container", Actor: "playbook:oncall-shell-in-container", Detail: settledPlan(30)},
						{Type: PlaybookMatched, AlertID: a[j].ID, Playbook: "journal-everything-else", Actor: "playbook:journal-everything-else", Detail: settledPlan(99)},
					}}
				}
				t0 := time.Now()
				if _, _, _, err := s.AcceptSettled(ctx, a, settled, 0); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	c1, err := readCost()
	if err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	n := float64(b.N)
	b.ReportMetric(float64(len(all)*perCall)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(c1.cpu-c0.cpu)/n, "cpu-ns/alert")
	b.ReportMetric(float64(c1.mallocs-c0.mallocs)/n, "allocs/alert")
	b.ReportMetric(float64(s.w.syncs.Load()-f0)/n, "fsyncs/alert")
	b.ReportMetric(float64(c1.written-c0.written)/n/float64(pageSize), "pages/alert")
}
