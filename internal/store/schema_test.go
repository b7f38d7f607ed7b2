package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// TestInboxOpenIndex: the inbox's state index (schema 6) holds the alerts
// still to process and nothing else, and the queries that look for them
// use it (and the incident lookup the open incidents' index): a settled
// alert, inserted done, is not in it; a pending one is until it is
// finished.
func TestInboxOpenIndex(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	for q, index := range map[string]string{
		`SELECT rowid, raw, received_at, attempts FROM inbox WHERE state = 'processing' AND (lease_until <= '' OR owner <> '') ORDER BY rowid LIMIT 1`: "inbox_open",
		`SELECT rowid, raw, received_at, attempts FROM inbox WHERE state = 'pending' ORDER BY rowid LIMIT 1`:                                           "inbox_open",
		`SELECT state, count(*) FROM inbox WHERE state = 'pending' OR state = 'processing' GROUP BY state`:                                             "inbox_open",
		`SELECT id, last_seen FROM incidents WHERE container_id = '' AND rule = '' AND state = 'open' ORDER BY last_seen DESC LIMIT 1`:                 "incidents_open",
	} {
		var plan strings.Builder
		rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN ` + q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(detail + "; ")
		}
		rows.Close()
		if !strings.Contains(plan.String(), "USING") || !strings.Contains(plan.String(), "INDEX "+index) {
			t.Errorf("%s: plan %q, want a search of %s", q, plan.String(), index)
		}
	}
	indexed := func() int {
		t.Helper()
		var n int
		if err := s.rdb.QueryRow(`SELECT count(*) FROM inbox INDEXED BY inbox_open WHERE state = 'pending' OR state = 'processing'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, _, _, err := s.AcceptSettled(ctx, []alert.Alert{testAlert("settled-1"), testAlert("pending-1")}, []*Settled{{}}, 0); err != nil {
		t.Fatal(err)
	}
	if n := indexed(); n != 1 {
		t.Fatalf("%d alerts in inbox_open after a settled and a pending accept, want 1", n)
	}
	got, err := s.ClaimAlerts(ctx, 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].Alert.ID != "pending-1" {
		t.Fatalf("claim: %+v, %v; want pending-1", got, err)
	}
	if n := indexed(); n != 1 {
		t.Fatalf("%d alerts in inbox_open while pending-1 is claimed, want 1", n)
	}
	if err := s.FinishAlert(ctx, "pending-1"); err != nil {
		t.Fatal(err)
	}
	if n := indexed(); n != 0 {
		t.Fatalf("%d alerts in inbox_open after pending-1 finished, want 0", n)
	}
}
