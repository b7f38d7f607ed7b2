package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

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
	measureCost(b, s, func() { loadSettled(b, s, callers, perCall) })
}

// loadSettled is benchAccept with settled alerts, over 64 containers.
func loadSettled(b *testing.B, s *Store, callers, perCall int) {
	var container atomic.Int64
	benchLoad(b, callers, perCall, func() func(ctx context.Context, ids []string) error {
		return func(ctx context.Context, ids []string) error {
			a := make([]alert.Alert, len(ids))
			settled := make([]*Settled, len(ids))
			for j, id := range ids {
				a[j] = testAlert(id)
				a[j].OutputFields["container.id"] = fmt.Sprintf("%012d", container.Add(1)%64)
				settled[j] = &Settled{Entries: []Entry{
					{Type: PlaybookMatched, AlertID: id, Playbook: "oncall-shell-in-container", Actor: "playbook:oncall-shell-in-container", Detail: settledPlan(30)},
					{Type: PlaybookMatched, AlertID: id, Playbook: "journal-everything-else", Actor: "playbook:journal-everything-else", Detail: settledPlan(99)},
				}}
			}
			_, _, _, err := s.AcceptSettled(ctx, a, settled, 0)
			return err
		}
	})
}
