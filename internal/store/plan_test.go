package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestPlannedActions reads both forms of a plan back from the journal: a
// dry-run playbook's playbook.matched entry with its plan, and a playbook
// that runs, as action.planned entries and the entries that decide them.
func TestPlannedActions(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	_, err := s.Append(ctx,
		Entry{Type: PlaybookMatched, AlertID: "a-1", Playbook: "evidence", Detail: map[string]any{"dry_run": true, PlanDetail: []PlanStep{
			{Index: 0, Action: "container.snapshot", With: map[string]any{"commit": true}, Decision: "skipped_dry_run"},
			{Index: 1, Action: "container.kill", Decision: "skipped", Reason: "if was false"},
		}}},
		Entry{Type: PlaybookMatched, AlertID: "a-1", Playbook: "contain", Detail: map[string]any{"dry_run": false}},
		Entry{Type: ActionPlanned, AlertID: "a-1", Playbook: "contain", Action: "journal.note", Detail: map[string]any{"index": 0, "with": map[string]any{"text": "one"}}},
		Entry{Type: ActionPlanned, AlertID: "a-1", Playbook: "contain", Action: "journal.note", Detail: map[string]any{"index": 1, "with": map[string]any{"text": "two"}}},
		Entry{Type: Note, AlertID: "a-1", Playbook: "contain", Action: "journal.note", Detail: map[string]any{"text": "one"}},
		Entry{Type: ActionPlanned, AlertID: "a-1", Playbook: "contain", Action: "container.pause", Detail: map[string]any{"index": 2}},
		Entry{Type: ActionFailed, AlertID: "a-1", Playbook: "contain", Action: "container.pause", Detail: map[string]any{"error": "pause: gone"}},
		Entry{Type: ActionPlanned, AlertID: "b-2", Playbook: "contain", Action: "container.pause", Detail: map[string]any{"index": 2}},
	)
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.Entries(ctx, Filter{AlertID: "a-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := PlannedActions(es)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range got {
		lines = append(lines, fmt.Sprintf("%s %s %d %s %s %q %v", p.AlertID, p.Playbook, p.Index, p.Action, p.Decision, p.Reason, p.With))
	}
	want := []string{
		`a-1 evidence 0 container.snapshot skipped_dry_run "" map[commit:true]`,
		`a-1 evidence 1 container.kill skipped "if was false" map[]`,
		`a-1 contain 0 journal.note note "" map[text:one]`,
		`a-1 contain 1 journal.note  "" map[text:two]`, // not decided yet
		`a-1 contain 2 container.pause failed "pause: gone" map[]`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("planned:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if got[0].Seq != es[0].Seq || got[0].Seq == 0 {
		t.Errorf("seq of the plan = %d, want %d", got[0].Seq, es[0].Seq)
	}
}

func TestPlannedActionsRefusesABadPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
		want string
	}{
		{"plan not a list", Entry{Seq: 7, Type: PlaybookMatched, Detail: map[string]any{PlanDetail: "x"}}, "read plan of entry 7: want a list"},
		{"index not a number", Entry{Seq: 8, Type: ActionPlanned, Detail: map[string]any{"index": "x"}}, "read action.planned entry 8: index: want an integer, got string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlannedActions([]Entry{tc.e})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
