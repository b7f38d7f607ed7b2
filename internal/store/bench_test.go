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

// BenchmarkAccept measures durable accepts of unique alerts, one alert per
// call, from 64 concurrent callers: "group" is the store as shipped (group
// commit), "single" gives every alert its own transaction and its own fsync
// (MaxBatch 1, no shared sync), in the same run; "group-256" has 256
// callers. Reported: alerts/s, p50 and p99 latency of one Accept call.
//
//	go test -run '^$' -bench Accept -benchtime 3s ./internal/store
func BenchmarkAccept(b *testing.B) {
	for _, bc := range []struct {
		name    string
		opts    Options
		callers int
		perCall int
	}{
		{"group", Options{}, 64, 1},
		{"single", Options{MaxBatch: 1, syncEachCommit: true}, 64, 1},
		{"group-256", Options{}, 256, 1},
		{"group-batch100", Options{}, 8, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openTest(b, bc.opts)
			benchAccept(b, s, bc.callers, bc.perCall)
		})
	}
}

var benchRun atomic.Int64

// benchAccept: b.N alerts, perCall per Accept; latency is per call.
func benchAccept(b *testing.B, s *Store, callers, perCall int) {
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
			for j := range a {
				a[j] = testAlert("")
			}
			for {
				i := next.Add(int64(perCall))
				if i > int64(b.N)+int64(perCall)-1 {
					return
				}
				for j := range a {
					a[j].ID = fmt.Sprintf("bench-%d-%d-%d", run, i, j)
				}
				t0 := time.Now()
				if _, err := s.Accept(ctx, a); err != nil {
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
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all)*perCall)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkApplyDryRun measures the engine's side of dry-run alerts with
// three actions each: playbook.matched, three runs skipped with
// action.planned + action.skipped_dry_run each (seven entries), alert
// finished; "1" is one Apply per alert from 64 workers, "16" puts 16
// alerts in one Apply (4 workers). Alerts are accepted before the timer
// starts.
func BenchmarkApplyDryRun(b *testing.B) {
	for _, bc := range []struct {
		name     string
		perApply int
		workers  int
	}{{"1", 1, 64}, {"16", 16, 4}} {
		b.Run(bc.name, func(b *testing.B) { benchApply(b, bc.perApply, bc.workers) })
	}
}

func benchApply(b *testing.B, perApply, workers int) {
	s := openTest(b, Options{})
	ctx := context.Background()
	run := benchRun.Add(1)
	ids := make([]string, b.N)
	for i := 0; i < b.N; i += 1000 {
		var as []alert.Alert
		for j := i; j < min(i+1000, b.N); j++ {
			ids[j] = fmt.Sprintf("apply-%d-%d", run, j)
			as = append(as, testAlert(ids[j]))
		}
		if _, err := s.Accept(ctx, as); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < workers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(int64(perApply)) - int64(perApply)
				if i >= int64(b.N) {
					return
				}
				var batch Batch
				for _, id := range ids[i:min(i+int64(perApply), int64(b.N))] {
					batch.Entries = append(batch.Entries, Entry{Type: PlaybookMatched, AlertID: id, Playbook: "contain", Actor: "playbook:contain"})
					batch.Finish = append(batch.Finish, id)
					for j, action := range []string{"slack.notify", "container.snapshot", "container.pause"} {
						batch.Actions = append(batch.Actions, ActionUpdate{
							Key: ActionKey{AlertID: id, Playbook: "contain", Index: j}, Action: action, State: ActionStateSkipped,
							Entries: []Entry{
								{Type: ActionPlanned, AlertID: id, Playbook: "contain", Action: action, Actor: "playbook:contain"},
								{Type: ActionSkippedDryRun, AlertID: id, Playbook: "contain", Action: action, Actor: "playbook:contain"},
							},
						})
					}
				}
				if _, err := s.Apply(ctx, batch); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "alerts/s")
}
