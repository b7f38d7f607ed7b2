package replay_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/replay"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
)

func ent(t store.EntryType, pb, do string, index int) store.Entry {
	e := store.Entry{Type: t, AlertID: "a", Playbook: pb, Action: do}
	if index >= 0 {
		e.Detail = map[string]any{"index": json.Number(itoa(index))}
	}
	return e
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestJournaled(t *testing.T) {
	act := func(pb string, i int, do string) replay.Action { return replay.Action{Playbook: pb, Index: i, Do: do} }
	tests := []struct {
		name       string
		entries    []store.Entry
		want       []replay.Action
		wantFailed []replay.Action
	}{
		{"ran, queued, dry run", []store.Entry{
			ent(store.PlaybookMatched, "p", "slack.notify", -1),
			ent(store.ActionPlanned, "p", "slack.notify", 0), ent(store.ActionQueued, "p", "slack.notify", -1),
			ent(store.ActionPlanned, "p", "container.pause", 1), ent(store.ActionStarted, "p", "container.pause", -1),
			ent(store.ActionPlanned, "q", "container.kill", 0), ent(store.ActionSkippedDryRun, "q", "container.kill", -1),
		}, []replay.Action{act("p", 0, "slack.notify"), act("p", 1, "container.pause"), act("q", 0, "container.kill")}, nil},
		{"skipped: if, no container, silenced", []store.Entry{
			ent(store.ActionPlanned, "p", "slack.notify", 0), ent(store.ActionSkipped, "p", "slack.notify", -1),
			ent(store.ActionPlanned, "p", "container.pause", 1),
			ent(store.ActionPlanned, "p", "slack.notify", 2), ent(store.ActionQueued, "p", "slack.notify", -1),
		}, []replay.Action{act("p", 1, "container.pause"), act("p", 2, "slack.notify")}, nil},
		{"failed", []store.Entry{
			ent(store.ActionPlanned, "p", "container.pause", 0), ent(store.ActionFailed, "p", "container.pause", -1),
		}, []replay.Action{act("p", 0, "container.pause")}, []replay.Action{act("p", 0, "container.pause")}},
		// A journal that records plans in fewer rows (no action.planned,
		// the index on the step's own entry) reads the same.
		{"no planned rows", []store.Entry{
			ent(store.ActionSkippedDryRun, "p", "slack.notify", 0), ent(store.ActionSkippedDryRun, "p", "container.pause", 1),
		}, []replay.Action{act("p", 0, "slack.notify"), act("p", 1, "container.pause")}, nil},
		{"dry-run plan entry", []store.Entry{
			{Type: store.PlaybookMatched, AlertID: "a", Playbook: "p", Detail: map[string]any{store.PlanDetail: []any{
				map[string]any{"index": json.Number("0"), "do": "slack.notify", "decision": "skipped", "reason": "silenced", "silence": "s-1"},
				map[string]any{"index": json.Number("1"), "do": "container.pause", "decision": "skipped_dry_run"},
				map[string]any{"index": json.Number("2"), "do": "journal.note", "decision": "failed", "reason": "render with.text: boom"},
			}}},
			ent(store.PlaybookMatched, "q", "", -1),
			ent(store.ActionPlanned, "q", "container.kill", 0), ent(store.ActionStarted, "q", "container.kill", -1),
		}, []replay.Action{act("p", 1, "container.pause"), act("p", 2, "journal.note"), act("q", 0, "container.kill")},
			[]replay.Action{act("p", 2, "journal.note")}},
		{"not about actions", []store.Entry{{Type: store.AlertReceived, AlertID: "a"}, {Type: store.AlertSilenced, AlertID: "a"}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, failed := replay.Journaled(tt.entries)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("taken %v, want %v", got, tt.want)
			}
			var gotFailed []replay.Action
			for _, a := range tt.want {
				if failed[a] {
					gotFailed = append(gotFailed, a)
				}
			}
			if !reflect.DeepEqual(gotFailed, tt.wantFailed) {
				t.Errorf("failed %v, want %v", gotFailed, tt.wantFailed)
			}
		})
	}
}

func TestWould(t *testing.T) {
	cat, err := actions.NewCatalog(
		actions.Spec{Name: "slack.notify", Notification: true},
		actions.Spec{Name: "container.pause", Container: true, Destructive: true},
		actions.Spec{Name: "journal.note", NoteParam: "text", Params: []actions.Param{{Name: "text", Type: actions.String, Required: true}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	set, err := playbooks.Parse(cat, playbooks.Source{Name: "p.yaml", Data: []byte(`
- playbook: p
  match: {rules: ["Terminal*"]}
  actions:
    - do: slack.notify
    - do: container.pause
    - do: journal.note
      with: {text: x}
      if: 'priority >= Critical'
    - do: journal.note
      with: {text: y}
`)})
	if err != nil {
		t.Fatal(err)
	}
	inContainer := &alert.Alert{ID: "a", Rule: "Terminal shell", Priority: alert.PriorityWarning, OutputFields: map[string]any{"container.id": "3f9a1c2b4d5e"}}
	onHost := &alert.Alert{ID: "h", Rule: "Terminal shell", Priority: alert.PriorityWarning, OutputFields: map[string]any{"container.id": "host"}}
	notify := &store.Silence{ID: "s", Scope: store.ScopeNotify}
	all := &store.Silence{ID: "s", Scope: store.ScopeAll}
	a := func(i int, do string) replay.Action { return replay.Action{Playbook: "p", Index: i, Do: do} }
	tests := []struct {
		name   string
		alert  *alert.Alert
		sil    *store.Silence
		failed map[replay.Action]bool
		want   []replay.Action
	}{
		{"container, no silence", inContainer, nil, nil, []replay.Action{a(0, "slack.notify"), a(1, "container.pause"), a(3, "journal.note")}},
		{"host: no container action", onHost, nil, nil, []replay.Action{a(0, "slack.notify"), a(3, "journal.note")}},
		{"scope notify", inContainer, notify, nil, []replay.Action{a(1, "container.pause"), a(3, "journal.note")}},
		{"scope all", inContainer, all, nil, nil},
		{"failed at run time stops the playbook", inContainer, nil, map[replay.Action]bool{a(1, "container.pause"): true},
			[]replay.Action{a(0, "slack.notify"), a(1, "container.pause")}},
		{"other rule", &alert.Alert{ID: "o", Rule: "Read file"}, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replay.Would(set, tt.alert, tt.sil, tt.failed); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("would %v, want %v", got, tt.want)
			}
		})
	}
}
