package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/storetest"
)

// TestMigrateAlertIndex: a database at schema version 1, holding alerts
// and their journal as versions 1 and 2 wrote them, is migrated on Open
// (to 3): the
// inbox rows get the seq of their alert.received entry, the alert index
// leaves alert.received out, every entry of an alert is still found by
// its id (through the inbox row, and by a scan once the alert is pruned),
// new alerts record their entry's seq, and the chain verifies.
func TestMigrateAlertIndex(t *testing.T) {
	url := pg.Database(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, migrations[0]); err != nil {
		t.Fatal(err)
	}
	// Version 1's writes: per alert an inbox row and alert.received, and a
	// note for the first.
	old := time.Now().Add(-48 * time.Hour).UTC()
	head := store.Row{Hash: store.GenesisHash}
	add := func(typ, alertID string) {
		r := store.Row{Seq: head.Seq + 1, Time: store.FormatTime(old), Type: typ, AlertID: alertID, Detail: "{}", PrevHash: head.Hash}
		r.Hash = r.ComputeHash()
		if _, err := conn.Exec(ctx, `INSERT INTO journal (`+journalColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
			r.Seq, r.Time, r.Type, r.AlertID, r.Playbook, r.Action, r.Actor, r.Detail, r.SHA256, r.PrevHash, r.Hash); err != nil {
			t.Fatal(err)
		}
		head = r
	}
	for i := range 3 {
		id := fmt.Sprintf("old-%d", i)
		if _, err := conn.Exec(ctx, `INSERT INTO inbox (id, raw, received_at, state, done_at) VALUES ($1, '{}', $2, 'done', $2)`, id, store.FormatTime(old)); err != nil {
			t.Fatal(err)
		}
		add(string(store.AlertReceived), id)
	}
	add(string(store.Note), "old-0")
	if _, err := conn.Exec(ctx, `UPDATE journal_head SET seq = $1, hash = $2, time = $3`, head.Seq, head.Hash, head.Time); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, url, store.Options{DuplicateWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil || v != SchemaVersion || SchemaVersion < 2 {
		t.Fatalf("schema version %d (%v), want %d", v, err, SchemaVersion)
	}
	var def string
	if err := conn.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'journal_alert'`).Scan(&def); err != nil ||
		!strings.Contains(def, "(type <> 'alert.received'::text)") || !strings.Contains(def, "NOT via_inbox") {
		t.Fatalf("journal_alert: %q, %v; want it partial", def, err)
	}
	for i := range 3 {
		var seq int64
		if err := conn.QueryRow(ctx, `SELECT received_seq FROM inbox WHERE id = $1`, fmt.Sprintf("old-%d", i)).Scan(&seq); err != nil || seq != int64(i+1) {
			t.Fatalf("old-%d: received_seq %d, %v; want %d", i, seq, err, i+1)
		}
	}
	if _, err := s.Accept(ctx, []alert.Alert{storetest.Alert("new-0"), storetest.Alert("new-1")}); err != nil {
		t.Fatal(err)
	}
	var newSeq int64
	if err := conn.QueryRow(ctx, `SELECT received_seq FROM inbox WHERE id = 'new-1'`).Scan(&newSeq); err != nil {
		t.Fatal(err)
	}
	got := func(id string) string {
		t.Helper()
		es, err := s.Entries(ctx, store.Filter{AlertID: id})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%d:%s", e.Seq, e.Type))
		}
		return strings.Join(out, " ")
	}
	want := map[string]string{"old-0": "1:alert.received 4:note", "old-2": "3:alert.received", "new-1": fmt.Sprintf("%d:alert.received", newSeq)}
	for id, w := range want {
		if g := got(id); g != w {
			t.Errorf("entries of %s: %q, want %q", id, g, w)
		}
	}
	if newSeq != 6 {
		t.Errorf("new-1's received_seq %d, want 6 (after new-0's 5)", newSeq)
	}
	// Pruned from the inbox, the old alerts are found by a scan.
	if p, err := s.Prune(ctx); err != nil || p.Alerts != 3 {
		t.Fatalf("prune: %+v, %v; want the 3 old alerts", p, err)
	}
	if g := got("old-0"); g != "1:alert.received 4:note" {
		t.Errorf("entries of old-0 after prune: %q", g)
	}
	// Schema 5: a settled alert's entries stay out of the alert index,
	// found through its inbox row while it has one and by a scan after.
	settled := []*store.Settled{{Entries: []store.Entry{{Type: store.PlaybookMatched, AlertID: "new-2", Playbook: "p",
		Detail: map[string]any{"incident": store.TheIncident}}}}}
	if _, _, _, err := s.AcceptSettled(ctx, []alert.Alert{storetest.Alert("new-2")}, settled, 0); err != nil {
		t.Fatal(err)
	}
	var received, last int64
	if err := conn.QueryRow(ctx, `SELECT received_seq, settled_seq FROM inbox WHERE id = 'new-2'`).Scan(&received, &last); err != nil {
		t.Fatal(err)
	}
	var via []bool
	rows, err := conn.Query(ctx, `SELECT via_inbox FROM journal WHERE alert_id = 'new-2' ORDER BY seq`)
	if err == nil {
		via, err = pgx.CollectRows(rows, pgx.RowTo[bool])
	}
	if err != nil || fmt.Sprint(via) != "[false true]" {
		t.Fatalf("via_inbox of new-2's entries: %v, %v; want its playbook.matched only", via, err)
	}
	// received+1 is the incident.opened of the incident it opened.
	w := fmt.Sprintf("%d:alert.received %d:playbook.matched", received, last)
	if g := got("new-2"); last != received+2 || g != w {
		t.Errorf("settled new-2: received_seq %d, settled_seq %d, entries %q; want %q", received, last, g, w)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM inbox WHERE id = 'new-2'`); err != nil {
		t.Fatal(err)
	}
	if g := got("new-2"); g != w {
		t.Errorf("entries of new-2 out of the inbox: %q, want %q", g, w)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
