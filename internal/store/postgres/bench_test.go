package postgres

import (
	"context"
	"fmt"
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
	ctx := context.Background()
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
				if _, err := s.Accept(ctx, a); err != nil {
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
