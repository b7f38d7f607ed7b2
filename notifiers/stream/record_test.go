package stream

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

func testAlert() alert.Alert {
	return alert.Alert{
		ID:       "6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41",
		Time:     time.Date(2026, 11, 20, 9, 14, 3, 512348123, time.UTC),
		Rule:     "Terminal shell in container",
		Priority: alert.PriorityCritical,
		Output:   "shell <in> & \"payments\"",
		OutputFields: map[string]any{
			"container.id": "3f9a1c2b7d4e", "container.name": "payments-api",
			"container.image.repository": "registry.local/payments", "container.image.tag": "1.4",
		},
		Source: "syscall", Tags: []string{"container", "shell"}, Hostname: "node-3",
	}
}

func TestFromAlert(t *testing.T) {
	a := testAlert()
	r, err := FromAlert(a, "inc-1")
	if err != nil {
		t.Fatal(err)
	}
	want := Record{
		Kind: KindAlert, ID: a.ID, Type: "alert", Time: a.Time, Priority: alert.PriorityCritical,
		Rule: a.Rule, ContainerID: "3f9a1c2b7d4e", ContainerName: "payments-api",
		ContainerImage: "registry.local/payments:1.4", Incident: "inc-1", AlertID: a.ID, Hostname: "node-3",
	}
	got := r
	got.JSON = nil
	if !equalRecords(got, want) {
		t.Errorf("record = %+v\nwant     %+v", got, want)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	back, err := alert.Decode(r.JSON)
	if err != nil {
		t.Fatalf("record JSON is not a Falco alert: %v\n%s", err, r.JSON)
	}
	if back[0].ID != a.ID || back[0].Output != a.Output || back[0].Priority != a.Priority {
		t.Errorf("decoded %+v", back[0])
	}
	if r.Key() != "alert/"+a.ID {
		t.Errorf("key = %q", r.Key())
	}

	a.ID = ""
	if _, err := FromAlert(a, ""); err == nil || err.Error() != "record alert: alert has no id" {
		t.Errorf("alert without id: %v", err)
	}
}

func equalRecords(a, b Record) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestFromEntryStore journals through the real store and builds records from
// what it reads back, with and without the alert at hand.
func TestFromEntryStore(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(store.PathIn(filepath.Join(t.TempDir(), "data")), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := testAlert()
	if _, err := s.Accept(ctx, []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	inc, _, err := s.Incident(ctx, "3f9a1c2b7d4e", a.Rule, a.Time)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx,
		store.Entry{Type: store.ActionFailed, AlertID: a.ID, Playbook: "p", Action: "container.pause", Actor: "riposte", Detail: map[string]any{"error": "boom"}},
		store.Entry{Type: store.NotificationSent, AlertID: a.ID, Actor: "riposte", Detail: map[string]any{DeliveryDetailKey: "siem"}},
		store.Entry{Type: store.Note, Actor: "jane", Detail: map[string]any{"text": "looked at it"}},
	); err != nil {
		t.Fatal(err)
	}
	entries, err := s.Entries(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Fatalf("journal has %d entries, want 5", len(entries))
	}

	tests := []struct {
		name     string
		entry    store.Entry
		about    *alert.Alert
		incident string
		want     Record
	}{
		{"alert.received from detail", entries[0], nil, "", Record{Kind: KindJournal, ID: "1", Type: "alert.received",
			Priority: alert.PriorityCritical, Rule: a.Rule, ContainerID: "3f9a1c2b7d4e", AlertID: a.ID, Hostname: "node-3"}},
		{"incident.opened from detail", entries[1], nil, "", Record{Kind: KindJournal, ID: "2", Type: "incident.opened",
			Priority: alert.PriorityInformational, Rule: a.Rule, ContainerID: "3f9a1c2b7d4e", Incident: inc}},
		{"action.failed with alert", entries[2], &a, inc, Record{Kind: KindJournal, ID: "3", Type: "action.failed",
			Priority: alert.PriorityCritical, Rule: a.Rule, ContainerID: "3f9a1c2b7d4e", ContainerName: "payments-api",
			ContainerImage: "registry.local/payments:1.4", Incident: inc, AlertID: a.ID, Hostname: "node-3"}},
		{"action.failed without alert is at least Error", entries[2], nil, "", Record{Kind: KindJournal, ID: "3", Type: "action.failed",
			Priority: alert.PriorityError, AlertID: a.ID}},
		{"delivery report", entries[3], nil, "", Record{Kind: KindJournal, ID: "4", Type: "notification.sent",
			Priority: alert.PriorityInformational, AlertID: a.ID, SelfReport: true}},
		{"note", entries[4], nil, "", Record{Kind: KindJournal, ID: "5", Type: "note", Priority: alert.PriorityInformational}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := FromEntry(tt.entry, tt.about, tt.incident)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			if !r.Time.Equal(tt.entry.Time) || r.Time.IsZero() {
				t.Errorf("time = %v, want %v", r.Time, tt.entry.Time)
			}
			got := r
			got.JSON, got.Time = nil, time.Time{}
			if !equalRecords(got, tt.want) {
				t.Errorf("record = %+v\nwant     %+v", got, tt.want)
			}
			var back struct {
				Seq  int64  `json:"seq"`
				Type string `json:"type"`
				Hash string `json:"hash"`
			}
			if err := json.Unmarshal(r.JSON, &back); err != nil {
				t.Fatal(err)
			}
			if back.Seq != tt.entry.Seq || back.Type != string(tt.entry.Type) || back.Hash != tt.entry.Hash || back.Hash == "" {
				t.Errorf("entry JSON = %s", r.JSON)
			}
		})
	}

	if _, err := FromEntry(store.Entry{Type: store.Note}, nil, ""); err == nil || err.Error() != `record journal entry "note": not appended (seq 0)` {
		t.Errorf("unappended entry: %v", err)
	}
}

func TestEntryPriority(t *testing.T) {
	tests := []struct {
		typ  store.EntryType
		base alert.Priority
		want alert.Priority
	}{
		{store.ActionSucceeded, alert.PriorityNotice, alert.PriorityNotice},
		{store.ActionFailed, alert.PriorityNotice, alert.PriorityError},
		{store.ActionFailed, alert.PriorityEmergency, alert.PriorityEmergency},
		{store.NotificationFailed, alert.PriorityDebug, alert.PriorityError},
		{store.ActionInDoubt, alert.PriorityWarning, alert.PriorityError},
		{store.ActionHeldForApproval, alert.PriorityInformational, alert.PriorityWarning},
		{store.ApprovalTimeout, alert.PriorityCritical, alert.PriorityCritical},
		{store.AlertDuplicate, alert.PriorityCritical, alert.PriorityDebug},
		{store.Note, alert.PriorityInformational, alert.PriorityInformational},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.base.String(), func(t *testing.T) {
			if got := EntryPriority(tt.typ, tt.base); got != tt.want {
				t.Errorf("EntryPriority(%s, %s) = %s, want %s", tt.typ, tt.base, got, tt.want)
			}
		})
	}
}

func TestRecordValidate(t *testing.T) {
	good, err := FromAlert(testAlert(), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Record)
		want   string
	}{
		{"good", func(*Record) {}, ""},
		{"kind", func(r *Record) { r.Kind = "metric" }, `invalid record: unknown kind "metric"`},
		{"id", func(r *Record) { r.ID = "" }, "invalid record: empty id"},
		{"type", func(r *Record) { r.Type = "" }, "invalid record: empty type"},
		{"priority", func(r *Record) { r.Priority = 9 }, "invalid record: priority 9 out of range"},
		{"no json", func(r *Record) { r.JSON = nil }, "invalid record: empty json"},
		{"two lines", func(r *Record) { r.JSON = []byte("{\n}") }, "invalid record: json is not one line"},
		{"bad json", func(r *Record) { r.JSON = []byte(`{"a":`) }, "invalid record: json is not valid"},
		{"null", func(r *Record) { r.JSON = []byte(`null`) }, "invalid record: json is not an object"},
		{"indented", func(r *Record) { r.JSON = []byte(` {}`) }, "invalid record: json is not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.change(&r)
			err := r.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && err.Error() != tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// The outbox carries records as JSON; they must come back identical.
func TestRecordJSONRoundTrip(t *testing.T) {
	r, err := FromAlert(testAlert(), "inc-9")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if string(back.JSON) != string(r.JSON) || !back.Time.Equal(r.Time) || !equalRecords(back, r) {
		t.Errorf("round trip changed the record:\n%+v\n%+v", r, back)
	}
	if !strings.Contains(string(b), `"priority":"Critical"`) {
		t.Errorf("priority not by name: %s", b)
	}
}
