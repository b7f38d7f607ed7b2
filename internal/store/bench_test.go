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
	benchLoad(b, callers, perCall, func() func(ctx context.Context, ids []string) error {
		a := make([]alert.Alert, perCall)
		for j := range a {
			a[j] = testAlert("")
		}
		return func(ctx context.Context, ids []string) error {
			for j := range a {
				a[j].ID = ids[j]
			}
			_, err := s.Accept(ctx, a)
			return err
		}
	})
}

// benchLoad has callers each call what newCaller gives it with perCall
// fresh alert ids at a time until b.N ids were used, and reports alerts/s
// and the latency of a call. The ids spread like Falco's random UUIDs: an
// index on the id takes them all over its pages.
func benchLoad(b *testing.B, callers, perCall int, newCaller func() func(ctx context.Context, ids []string) error) {
	ctx := context.Background()
	run := benchRun.Add(1)
	var next atomic.Int64
	lat := make([][]time.Duration, callers)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		call := newCaller()
		go func() {
			defer wg.Done()
			ids := make([]string, perCall)
			for {
				i := next.Add(int64(perCall))
				if i > int64(b.N)+int64(perCall)-1 {
					return
				}
				for j := range ids {
					ids[j] = fmt.Sprintf("bench-%d-%016x", run, uint64(i+int64(j))*0x9E3779B97F4A7C15)
				}
				t0 := time.Now()
				if err := call(ctx, ids); err != nil {
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

// BenchmarkAcceptCost reports what one accepted alert costs the process,
// for 64 callers with one alert per Accept (the HTTP intake's shape) and
// 16 callers with 20 alerts per Accept (NDJSON batches): CPU time of the
// whole process (user + system) per alert, heap allocations per alert,
// fsyncs of the write-ahead log by the syncer per alert ("+ckpt" adds the
// background checkpointer's two per round; the writer's own checkpoints in
// the baseline are not counted here: strace them), and bytes the process
// passed to write(2) per alert (WAL frames and checkpoint copies), as pages
// of the store's page size. Variants, in the same run: "round1", the
// writer's connection checkpoints itself (wal_autocheckpoint 512) and the
// journal's alert index holds every entry; "bg-ckpt", the background
// checkpointer with that index; "now", the store as shipped (the index
// leaves alert.received out).
// Run it with enough alerts that the inbox's indexes outgrow a page and
// checkpoints happen:
//
//	go test -run '^$' -bench AcceptCost -benchtime 40000x -count 5 ./internal/store
func BenchmarkAcceptCost(b *testing.B) {
	for _, bc := range []struct {
		name             string
		callers, perCall int
	}{{"c64x1", 64, 1}, {"c16x20", 16, 20}} {
		for _, v := range []struct {
			name string
			opts Options
		}{
			{"round1", Options{checkpointInWriter: true, indexReceived: true}},
			{"bg-ckpt", Options{indexReceived: true}},
			{"now", Options{}},
		} {
			b.Run(bc.name+"/"+v.name, func(b *testing.B) {
				s := openTest(b, v.opts)
				benchCost(b, s, bc.callers, bc.perCall)
			})
		}
	}
}

func benchCost(b *testing.B, s *Store, callers, perCall int) {
	measureCost(b, s, func() { benchAccept(b, s, callers, perCall) })
}

// measureCost runs load and reports what it cost per alert (b.N alerts):
// CPU of the whole process, heap allocations, WAL fsyncs (the
// checkpointer's two per round included) and pages handed to write(2).
func measureCost(b *testing.B, s *Store, load func()) {
	var pageSize int64
	if err := s.rdb.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		b.Fatal(err)
	}
	c0, err := readCost()
	if err != nil {
		b.Skipf("no cost counters on this system: %v", err)
	}
	f0 := s.w.syncs.Load()
	var k0 int64
	if s.ckpt != nil {
		k0 = s.ckpt.rounds.Load()
	}
	load()
	c1, err := readCost()
	if err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	fsyncs := s.w.syncs.Load() - f0
	if s.ckpt != nil {
		fsyncs += 2 * (s.ckpt.rounds.Load() - k0)
	}
	b.ReportMetric(float64(c1.cpu-c0.cpu)/n, "cpu-ns/alert")
	b.ReportMetric(float64(c1.mallocs-c0.mallocs)/n, "allocs/alert")
	b.ReportMetric(float64(fsyncs)/n, "fsyncs/alert")
	b.ReportMetric(float64(c1.written-c0.written)/n/float64(pageSize), "pages/alert")
}

// BenchmarkApplyNotify measures recording one queued notification of a
// burst about one incident (an Apply with the action's transition, its
// action.queued entry and its outbox message), from 16 concurrent workers:
// "off" enqueues every message, "throttled" folds them (store.Fold, one
// key, 1m). Reported: notifications/s and the messages left to send per
// 1,000 notifications.
//
//	go test -run '^$' -bench ApplyNotify -benchtime 5000x ./internal/store
func BenchmarkApplyNotify(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every time.Duration
	}{{"off", 0}, {"throttled", time.Minute}} {
		b.Run(bc.name, func(b *testing.B) {
			s := openTest(b, Options{})
			ctx := context.Background()
			run := benchRun.Add(1)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						key := ActionKey{AlertID: fmt.Sprintf("notify-%d-%d", run, i), Playbook: "page"}
						msg := Message{Key: "notify/" + key.String(), Kind: "slack.notify", Incident: "inc-burst", Payload: []byte(`{"action":"slack.notify"}`)}
						if bc.every > 0 {
							msg.Fold = &Fold{Key: "slack.notify/inc-burst", Every: bc.every,
								Held: Entry{Type: NotificationThrottled, AlertID: key.AlertID, Action: "slack.notify"}}
						}
						u := ActionUpdate{Key: key, Action: "slack.notify", Incident: "inc-burst", State: ActionStateSucceeded,
							Enqueue: []Message{msg}, Entries: []Entry{{Type: ActionQueued, AlertID: key.AlertID, Action: "slack.notify"}}}
						if _, err := s.Apply(ctx, Batch{Actions: []ActionUpdate{u}}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "notifications/s")
			var due int
			if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE state = 'pending'`).Scan(&due); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(due)*1000/float64(b.N), "messages/1000")
		})
	}
}
