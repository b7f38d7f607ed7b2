package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// BenchmarkClaimFinish measures the engine's two inbox round trips for a
// backlog: ClaimAlerts of 1024 alerts, then Apply finishing them in runs of
// 64 (a container's run), without other changes. Alerts are accepted
// before the timer starts; reported: time, CPU of the whole process and
// allocations per alert.
//
//	go test -run '^$' -bench ClaimFinish -benchtime 20480x ./internal/store
func BenchmarkClaimFinish(b *testing.B) {
	s := openTest(b, Options{})
	ctx := context.Background()
	run := benchRun.Add(1)
	for i := 0; i < b.N; i += 1000 {
		var as []alert.Alert
		for j := i; j < min(i+1000, b.N); j++ {
			as = append(as, testAlert(fmt.Sprintf("claim-%d-%016x", run, uint64(j)*0x9E3779B97F4A7C15)))
		}
		if _, err := s.Accept(ctx, as); err != nil {
			b.Fatal(err)
		}
	}
	c0, costOK := readCost()
	b.ResetTimer()
	for done := 0; done < b.N; {
		items, err := s.ClaimAlerts(ctx, 1024, time.Minute)
		if err != nil || len(items) == 0 {
			b.Fatalf("claim: %d items, %v", len(items), err)
		}
		for k := 0; k < len(items); k += 64 {
			var batch Batch
			for _, it := range items[k:min(k+64, len(items))] {
				batch.Finish = append(batch.Finish, it.Alert.ID)
			}
			if _, err := s.Apply(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		done += len(items)
	}
	if c1, err := readCost(); err == nil && costOK == nil {
		b.ReportMetric(float64(c1.cpu-c0.cpu)/float64(b.N), "cpu-ns/alert")
		b.ReportMetric(float64(c1.mallocs-c0.mallocs)/float64(b.N), "allocs/alert")
	}
}
