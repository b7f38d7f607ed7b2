package postgres

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/store/storetest"
)

// pgDurable is a server with fsync on, for benchmarks: an acknowledged
// alert there is on disk, as with SQLite.
var pgDurable = pgtest.Shared{Options: pgtest.Options{Durable: true}}

// BenchmarkDurableIntake measures durable accepts of unique alerts, one
// alert per call from 64 concurrent callers, on SQLite (one node, group
// commit) and on PostgreSQL with 1, 2 and 3 store handles on one database
// (as 1, 2 and 3 replicas would hold; the callers spread over them), all in
// the same run on the same disk. Reported: alerts/s and the p50 and p99
// latency of one Accept call (the intake's 202).
//
//	go test -run '^$' -bench DurableIntake -benchtime 3s ./internal/store/postgres
func BenchmarkDurableIntake(b *testing.B) {
	const callers = 64
	b.Run("sqlite", func(b *testing.B) {
		s, err := store.Open(store.PathIn(filepath.Join(b.TempDir(), "data")), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchIntake(b, []store.Backend{s}, callers)
	})
	for _, replicas := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("postgres-%d", replicas), func(b *testing.B) {
			url := pgDurable.Database(b)
			var hs []store.Backend
			for range replicas {
				s, err := Open(context.Background(), url, store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				hs = append(hs, s)
			}
			benchIntake(b, hs, callers)
		})
	}
}

var benchRun atomic.Int64

func benchIntake(b *testing.B, handles []store.Backend, callers int) {
	benchAccepts(b, handles, callers, func(s store.Backend, a []alert.Alert) error {
		_, err := s.Accept(context.Background(), a)
		return err
	})
}

// benchAccepts has callers goroutines accept b.N unique alerts, one per
// call, with accept, spread over handles; it reports alerts/s and the
// p50 and p99 of one call.
func benchAccepts(b *testing.B, handles []store.Backend, callers int, accept func(store.Backend, []alert.Alert) error) {
	run := benchRun.Add(1)
	var next atomic.Int64
	lat := make([][]time.Duration, callers)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		s := handles[c%len(handles)]
		wg.Go(func() {
			a := []alert.Alert{storetest.Alert("")}
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				a[0].ID = fmt.Sprintf("bench-%d-%016x", run, uint64(i)*0x9E3779B97F4A7C15)
				t0 := time.Now()
				if err := accept(s, a); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkAlertIndex compares the journal alert index of schemas 1 and 2
// (every entry, alert.received's random ids included) with schema 3's
// (without alert.received; the inbox row keeps its seq), on durable accepts of
// unique alerts from 64 callers into a journal that already holds 200,000
// entries, vacuumed, after a checkpoint, each run on a PostgreSQL of its
// own. Whichever variant runs first in a process measured faster here,
// so scripts/bench-cluster.sh runs each in a process of its own, in
// alternating order. Reported besides alerts/s and latency: WAL
// bytes written per accepted alert, and the alert index's growth in bytes
// per accepted alert.
//
//	go test -run '^$' -bench AlertIndex -benchtime 5000x ./internal/store/postgres
func BenchmarkAlertIndex(b *testing.B) {
	for _, tt := range []struct{ name, index string }{
		{"full-index", `CREATE INDEX journal_alert ON journal (alert_id)`},
		{"partial-index", `CREATE INDEX journal_alert ON journal (alert_id) WHERE type <> 'alert.received'`},
	} {
		b.Run(tt.name, func(b *testing.B) {
			// A server of its own: no other database's autovacuum or
			// dirty pages in the measurement.
			pgDurable.Get(b) // the gate: PostgreSQL's programs are installed
			srv, err := pgtest.Start(pgtest.Options{Durable: true})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Stop()
			ctx := context.Background()
			url, err := srv.Database(ctx)
			if err != nil {
				b.Fatal(err)
			}
			s, err := Open(ctx, url, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const prefill = 200_000
			for _, q := range []string{
				`DROP INDEX journal_alert`,
				tt.index,
				// Ids spread over the key range the benchmark's new ids
				// take, as random alert uuids are.
				fmt.Sprintf(`INSERT INTO journal (seq, time, type, alert_id, prev_hash, hash)
					SELECT g, '2026-01-01T00:00:00.000000000Z', CASE WHEN g %% 4 = 0 THEN 'note' ELSE 'alert.received' END,
					'bench-%d-' || left(md5(g::text), 16), '', '' FROM generate_series(1, %d) g`, benchRun.Load()+1, prefill),
				fmt.Sprintf(`UPDATE journal_head SET seq = %d`, prefill),
				`VACUUM (ANALYZE) journal`, // as autovacuum leaves a long-lived database
				`CHECKPOINT`,
			} {
				if _, err := s.pool.Exec(ctx, q); err != nil {
					b.Fatalf("%s: %v", q, err)
				}
			}
			var lsn0 string
			var idx0 int64
			if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, pg_relation_size('journal_alert')`).Scan(&lsn0, &idx0); err != nil {
				b.Fatal(err)
			}
			benchIntake(b, []store.Backend{s}, 64)
			var wal float64
			var idx1 int64
			if err := s.pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn), pg_relation_size('journal_alert')`, lsn0).Scan(&wal, &idx1); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(wal/float64(b.N), "WAL-B/alert")
			b.ReportMetric(float64(idx1-idx0)/float64(b.N), "index-B/alert")
		})
	}
}

// BenchmarkSettledIntake measures durable accepts of alerts settled at
// accept, as `riposte serve --dry-run` with the example playbooks makes
// them (each alert: two dry-run plans journaled with it, in its
// incident), one alert per call from 16 and 64 callers, on one PostgreSQL
// with fsync on, in the same run: AcceptSettled in the accept's own
// transaction (one-tx); the same with the settled entries in the
// journal's alert index as schema 4 had them (one-tx-indexed); and the
// stopgap one-tx replaced, AcceptClaimed and then an Apply that finishes
// the alerts with their entries (two-tx: two transactions on the chain
// per call). SQLite's AcceptSettled for reference. Reported besides
// alerts/s and latency for PostgreSQL: WAL bytes per accepted alert.
//
//	go test -run '^$' -bench SettledIntake -benchtime 5000x ./internal/store/postgres
func BenchmarkSettledIntake(b *testing.B) {
	oneTx := func(s store.Backend, a []alert.Alert) error {
		_, _, _, err := s.AcceptSettled(context.Background(), a, dryRunPlans(a), 0)
		return err
	}
	variants := []struct {
		name   string
		setup  string
		accept func(store.Backend, []alert.Alert) error
	}{
		{"two-tx", "", acceptSettledTwoTx},
		{"one-tx-indexed", `DROP INDEX journal_alert; CREATE INDEX journal_alert ON journal (alert_id) WHERE type <> 'alert.received'`, oneTx},
		{"one-tx", "", oneTx},
	}
	for _, callers := range []int{16, 64} {
		b.Run(fmt.Sprintf("sqlite/c%d", callers), func(b *testing.B) {
			s, err := store.Open(store.PathIn(filepath.Join(b.TempDir(), "data")), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAccepts(b, []store.Backend{s}, callers, oneTx)
		})
		for _, v := range variants {
			b.Run(fmt.Sprintf("postgres-%s/c%d", v.name, callers), func(b *testing.B) {
				ctx := context.Background()
				s, err := Open(ctx, pgDurable.Database(b), store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if v.setup != "" {
					if _, err := s.pool.Exec(ctx, v.setup); err != nil {
						b.Fatal(err)
					}
				}
				var lsn0 string
				if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn0); err != nil {
					b.Fatal(err)
				}
				benchAccepts(b, []store.Backend{s}, callers, v.accept)
				var wal float64
				if err := s.pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)`, lsn0).Scan(&wal); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(wal/float64(b.N), "WAL-B/alert")
			})
		}
	}
}

// dryRunPlans are the entries the engine settles alerts with in dry run
// when two of the example playbooks match them (staging-quarantine and
// oncall-shell-in-container), their incident left to the store.
func dryRunPlans(as []alert.Alert) []*store.Settled {
	out := make([]*store.Settled, len(as))
	for i := range as {
		a := &as[i]
		plan := func(name string, order int, steps ...store.PlanStep) store.Entry {
			return store.Entry{Type: store.PlaybookMatched, AlertID: a.ID, Playbook: name, Actor: "playbook:" + name,
				Detail: map[string]any{"incident": store.TheIncident, "order": order, "actions": len(steps),
					"dry_run": true, "retry": false, store.PlanDetail: steps}}
		}
		out[i] = &store.Settled{Entries: []store.Entry{
			plan("staging-quarantine", 10,
				store.PlanStep{Index: 0, Action: "container.snapshot", With: map[string]any{"logs": 500, "export": true}, Decision: "dry_run"},
				store.PlanStep{Index: 1, Action: "container.quarantine", Decision: "dry_run"},
				store.PlanStep{Index: 2, Action: "journal.note", Decision: "dry_run", With: map[string]any{
					"text": "staging guard: " + a.Rule + " in " + a.Field("container.name") + " (" + a.Field("container.id") + "), quarantined for inspection"}}),
			plan("oncall-shell-in-container", 30,
				store.PlanStep{Index: 0, Action: "slack.notify", Decision: "dry_run", With: map[string]any{
					"channel": "#security-oncall", "text": a.Rule + ": " + a.Field("proc.cmdline") + " in " + a.Field("container.name")}},
				store.PlanStep{Index: 1, Action: "container.snapshot", With: map[string]any{"logs": 200, "export": false}, Decision: "dry_run"},
				store.PlanStep{Index: 2, Action: "container.pause", Decision: "dry_run"}),
		}}
	}
	return out
}

// acceptSettledTwoTx is how the PostgreSQL store served AcceptSettled
// before it ran in the accept's transaction (commit abcd379), kept as the
// benchmark's baseline: AcceptClaimed, then one Apply that journals the
// settled entries and finishes the alerts.
func acceptSettledTwoTx(s store.Backend, as []alert.Alert) error {
	ctx := context.Background()
	prep := dryRunPlans(as)
	acc, claimed, err := s.AcceptClaimed(ctx, as, time.Minute)
	if err != nil {
		return err
	}
	var batch store.Batch
	k := 0
	for i := range as {
		if acc[i].Duplicate {
			continue
		}
		it := claimed[k]
		k++
		for _, e := range prep[i].Entries {
			// dryRunPlans puts the incident reference at the top of the
			// detail only.
			d := maps.Clone(e.Detail)
			d["incident"] = it.Incident
			e.Detail = d
			batch.Entries = append(batch.Entries, e)
		}
		batch.Finish = append(batch.Finish, it.Alert.ID)
	}
	_, err = s.Apply(ctx, batch)
	return err
}

// BenchmarkUrgentClaim measures the claim of an action as the engine makes
// it right before running it, one at a time (containment's path), with
// and without store.Urgent, on PostgreSQL with fsync on and, for
// reference, on SQLite: each iteration claims one run of each kind, in
// alternating order, so both share the run, the disk and whatever else
// the machine does. Reported: the p50 and p99 of one ClaimAction call of
// each kind.
//
//	go test -run '^$' -bench UrgentClaim -benchtime 2000x ./internal/store/postgres
func BenchmarkUrgentClaim(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		s, err := store.Open(store.PathIn(filepath.Join(b.TempDir(), "data")), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchClaims(b, s)
	})
	b.Run("postgres", func(b *testing.B) {
		s, err := Open(context.Background(), pgDurable.Database(b), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchClaims(b, s)
	})
}

func benchClaims(b *testing.B, s store.Backend) {
	ctx := context.Background()
	kinds := []struct {
		name string
		ctx  context.Context
		lat  []time.Duration
	}{{name: "ordinary", ctx: ctx}, {name: "urgent", ctx: store.Urgent(ctx)}}
	claim := func(k, i int) {
		id := fmt.Sprintf("claim-%d", i)
		c, err := s.ClaimAction(kinds[k].ctx, store.ClaimRequest{Key: store.ActionKey{AlertID: id, Playbook: "contain", Index: k},
			Action: "container.pause", Incident: "inc-1", Destructive: true},
			store.Entry{Type: store.ActionStarted, AlertID: id, Playbook: "contain", Action: "container.pause"})
		if err != nil || c.Outcome != store.ClaimRun {
			b.Fatalf("claim %s: %+v, %v", id, c, err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		for j := range kinds {
			k := (i + j) % len(kinds) // alternate which goes first
			t0 := time.Now()
			claim(k, i)
			kinds[k].lat = append(kinds[k].lat, time.Since(t0))
		}
	}
	b.StopTimer()
	for _, k := range kinds {
		slices.Sort(k.lat)
		b.ReportMetric(float64(k.lat[len(k.lat)/2].Microseconds()), k.name+"-p50-µs")
		b.ReportMetric(float64(k.lat[len(k.lat)*99/100].Microseconds()), k.name+"-p99-µs")
	}
}
