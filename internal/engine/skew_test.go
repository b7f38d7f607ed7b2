package engine

import (
	"context"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// TestIncidentByReceiveTimeWhenSenderClockIsOff: alerts taken from the
// inbox are grouped by their receive time when the sender's time is
// outside the clock skew tolerance. An alert dated 1970 and one with the
// right time, received together for one container and rule, are one
// incident (by their own times they were decades apart: two).
func TestIncidentByReceiveTimeWhenSenderClockIsOff(t *testing.T) {
	f := newFixture(t, Config{}, containPlaybook)
	f.start()
	old := shellAlert("c0ffee000001")
	old.Time = time.Unix(0, 0).UTC()
	now := shellAlert("c0ffee000001")
	if _, err := f.st.Accept(context.Background(), []alert.Alert{old, now}); err != nil {
		t.Fatal(err)
	}
	f.eng.Notify()
	for _, id := range []string{old.ID, now.ID} {
		f.waitFor("the playbook of "+id, func(es []store.Entry) bool { return has(es, store.PlaybookMatched) },
			store.Filter{AlertID: id})
	}
	opened, err := f.st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.IncidentOpened}})
	if err != nil {
		t.Fatal(err)
	}
	if len(opened) != 1 {
		t.Fatalf("%d incidents opened, want 1:\n%s", len(opened), dump(opened))
	}
	if opened[0].Detail["alert_time"] != store.FormatTime(old.Time) || opened[0].Detail["received_at"] == nil {
		t.Errorf("incident.opened does not keep both times: %v", opened[0].Detail)
	}
}
