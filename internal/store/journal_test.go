package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// tricky holds text that canonical encoding must escape exactly as SQLite.
var tricky = []string{
	"", "plain", `quote " and backslash \`, "tab\tnewline\nreturn\rbell\afeed\fbs\b",
	"\x01\x1f\x7f", "unicode é 漢字 😀 \u2028\u2029", "<script>&amp;</script>", "/slash/",
}

func TestCanonicalMatchesSQLiteJSONArray(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	var entries []Entry
	for i, txt := range tricky {
		entries = append(entries, Entry{
			Type: Note, AlertID: txt, Playbook: txt, Action: txt, Actor: txt,
			Detail: map[string]any{"text": txt, "n": i, "f": 1.5, "nested": map[string]any{"k": []any{txt, true, nil}}},
		})
	}
	if _, err := s.Append(ctx, entries...); err != nil {
		t.Fatal(err)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+journalColumns+`, json_array('riposte.journal.v1', seq, time, type,
		alert_id, playbook, action, actor, detail, sha256, prev_hash) FROM journal ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var r Row
		var sqlite string
		if err := rows.Scan(&r.Seq, &r.Time, &r.Type, &r.AlertID, &r.Playbook, &r.Action, &r.Actor,
			&r.Detail, &r.SHA256, &r.PrevHash, &r.Hash, &sqlite); err != nil {
			t.Fatal(err)
		}
		n++
		if got := string(r.Canonical(nil)); got != sqlite {
			t.Errorf("entry %d: canonical\n got %s\nwant %s", r.Seq, got, sqlite)
		}
		sum := sha256.Sum256([]byte(sqlite))
		if hex.EncodeToString(sum[:]) != r.Hash {
			t.Errorf("entry %d: hash is not sha256(json_array(...))", r.Seq)
		}
		if strings.Contains(sqlite, "\n") {
			t.Errorf("entry %d: canonical encoding holds a raw newline", r.Seq)
		}
	}
	if n != len(tricky) {
		t.Fatalf("read %d entries, want %d", n, len(tricky))
	}
}

// TestAuditorRecomputesWithSQLite3 runs the command doc.go gives auditors.
func TestAuditorRecomputesWithSQLite3(t *testing.T) {
	testutil.Tools(t, "sqlite3", "sha256sum", "sh")
	s := openTest(t, Options{})
	mustAccept(t, s, "a-1", "a-2")
	got, err := s.Append(context.Background(), Entry{Type: Note, Actor: "cli:alice", Detail: map[string]any{"text": tricky[3]}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	script := `sqlite3 "$1" "SELECT json_array('riposte.journal.v1',seq,time,type,alert_id,playbook,action,actor,detail,sha256,prev_hash) FROM journal WHERE seq=3" | tr -d '\n' | sha256sum`
	out, err := exec.Command("sh", "-c", script, "sh", s.Path()).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if h, _, _ := strings.Cut(string(out), " "); h != got[0].Hash {
		t.Fatalf("auditor's hash %s, stored %s", h, got[0].Hash)
	}
}

func TestAppendAndRead(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	ctx := context.Background()
	mustAccept(t, s, "a-1")
	c.Add(time.Hour)
	since := c.Now()
	evidence := strings.Repeat("ab", 32)
	appended, err := s.Append(ctx,
		Entry{Type: PlaybookMatched, AlertID: "a-1", Playbook: "contain", Actor: "playbook:contain"},
		Entry{Type: ActionSucceeded, AlertID: "a-1", Playbook: "contain", Action: "container.snapshot",
			Actor: "playbook:contain", SHA256: evidence, Detail: map[string]any{"bytes": int64(1) << 60}},
		Entry{Type: Note, AlertID: "a-2", Actor: "cli:bob"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if appended[0].Seq != 2 || appended[2].Seq != 4 || appended[1].PrevHash != appended[0].Hash {
		t.Fatalf("appended entries not numbered and chained: %+v", appended)
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []int64
	}{
		{"all", Filter{}, []int64{1, 2, 3, 4}},
		{"alert", Filter{AlertID: "a-1"}, []int64{1, 2, 3}},
		{"since", Filter{Since: since}, []int64{2, 3, 4}},
		{"types", Filter{Types: []EntryType{AlertReceived, Note}}, []int64{1, 4}},
		{"after seq", Filter{AfterSeq: 2}, []int64{3, 4}},
		{"limit", Filter{Limit: 2}, []int64{1, 2}},
		{"combined", Filter{AlertID: "a-1", Since: since, Limit: 1}, []int64{2}},
		{"none", Filter{AlertID: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := s.Entries(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, e := range es {
				got = append(got, e.Seq)
			}
			if !equalInts(got, tc.want) {
				t.Fatalf("seqs %v, want %v", got, tc.want)
			}
		})
	}
	es, err := s.Entries(ctx, Filter{AfterSeq: 2, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := es[0]
	if e.SHA256 != evidence || e.Action != "container.snapshot" || e.Detail["bytes"] != json.Number("1152921504606846976") {
		t.Fatalf("read back %+v", e)
	}
	if h, err := HashEntry(e); err != nil || h != e.Hash {
		t.Fatalf("HashEntry = %s, %v; stored %s", h, err, e.Hash)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"detail":{"bytes":1152921504606846976}`) || !strings.Contains(string(b), `"seq":3`) {
		t.Fatalf("entry JSON %s", b)
	}
	head, err := s.Head(ctx)
	if err != nil || head.Seq != 4 || head.Hash != appended[2].Hash {
		t.Fatalf("head %+v, %v", head, err)
	}
	// Stop a scan early.
	n := 0
	for _, err := range s.Scan(ctx, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 2 {
			break
		}
	}
	mustVerify(t, s)
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAppendRejects(t *testing.T) {
	s := openTest(t, Options{})
	for _, tc := range []struct {
		name string
		e    Entry
		want string
	}{
		{"no type", Entry{}, "type is empty"},
		{"bad sha", Entry{Type: Note, SHA256: "ABC"}, "field sha256"},
		{"bad utf8", Entry{Type: Note, Actor: "\xff"}, "field actor: not valid UTF-8"},
		{"nul", Entry{Type: Note, Playbook: "a\x00b"}, "field playbook: contains a NUL byte"},
		{"bad detail", Entry{Type: Note, Detail: map[string]any{"c": make(chan int)}}, "marshal detail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(context.Background(), tc.e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if h, _ := s.Head(context.Background()); h.Seq != 0 {
		t.Fatalf("rejected entries were appended: head %+v", h)
	}
}

func TestJournalTriggersRefuseEdits(t *testing.T) {
	s := openTest(t, Options{})
	mustAccept(t, s, "a-1")
	db := rawDB(t, s.Path())
	for _, q := range []string{`UPDATE journal SET actor = 'x'`, `DELETE FROM journal`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error %v, want append-only", q, err)
		}
	}
}

// rawDB opens the file as an attacker (or sqlite3) would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestVerifyFindsTampering(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  []string
		forge   func(t *testing.T, db *sql.DB) // after tamper
		seq     int64
		kind    ProblemKind
		message string
	}{
		{name: "intact", seq: 0},
		{name: "edit detail", tamper: []string{`UPDATE journal SET detail = '{"rule":"nothing to see"}' WHERE seq = 5`},
			seq: 5, kind: Edited, message: "entry 5 was edited"},
		{name: "edit actor", tamper: []string{`UPDATE journal SET actor = 'slack:U1 (mallory)' WHERE seq = 9`},
			seq: 9, kind: Edited},
		{name: "edit time", tamper: []string{`UPDATE journal SET time = '2020-01-01T00:00:00.000000000Z' WHERE seq = 2`},
			seq: 2, kind: Edited},
		{name: "swap evidence hash", tamper: []string{`UPDATE journal SET sha256 = '` + strings.Repeat("0", 64) + `' WHERE seq = 3`},
			seq: 3, kind: Edited},
		{name: "delete one", tamper: []string{`DELETE FROM journal WHERE seq = 7`},
			seq: 7, kind: Missing, message: "entry 7 is missing"},
		{name: "delete first", tamper: []string{`DELETE FROM journal WHERE seq = 1`},
			seq: 1, kind: Missing},
		{name: "delete several", tamper: []string{`DELETE FROM journal WHERE seq BETWEEN 4 AND 6`},
			seq: 4, kind: Missing, message: "entries 4 to 6 are missing"},
		{name: "delete and renumber", tamper: []string{`DELETE FROM journal WHERE seq = 6`,
			`UPDATE journal SET seq = seq - 1 WHERE seq > 6`, `UPDATE journal_head SET seq = seq - 1`},
			seq: 6, kind: Moved, message: "entry 6 holds the entry recorded as entry 7"},
		{name: "swap two", tamper: []string{`UPDATE journal SET seq = -1 WHERE seq = 4`,
			`UPDATE journal SET seq = 4 WHERE seq = 5`, `UPDATE journal SET seq = 5 WHERE seq = -1`},
			seq: 4, kind: Moved, message: "entry 4 holds the entry recorded as entry 5 (reordered)"},
		{name: "truncate tail", tamper: []string{`DELETE FROM journal WHERE seq > 8`},
			seq: 9, kind: Truncated, message: "the journal ends at entry 8 but its head records entry 10"},
		{name: "delete head", tamper: []string{`DELETE FROM journal_head`}, seq: 10, kind: HeadBad},
		{name: "head behind", tamper: []string{`UPDATE journal_head SET seq = 9`}, seq: 10, kind: HeadBad},
		{name: "edit and rehash", tamper: []string{`UPDATE journal SET actor = 'mallory' WHERE seq = 5`},
			forge: func(t *testing.T, db *sql.DB) { rehash(t, db, 5) },
			seq:   6, kind: Unchained, message: "entry 6 does not follow entry 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, Options{})
			ids := []string{"a-1", "a-2", "a-3", "a-4", "a-5", "a-6", "a-7", "a-8", "a-9", "a-10"}
			for _, id := range ids { // ten entries, ten commits
				mustAccept(t, s, id)
			}
			mustVerify(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, s.Path())
			for _, q := range append([]string{`DROP TRIGGER journal_no_update`, `DROP TRIGGER journal_no_delete`}, tc.tamper...) {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if tc.forge != nil {
				tc.forge(t, db)
			}
			db.Close()
			ro, err := Open(s.Path(), Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			rep, err := ro.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tc.seq == 0 {
				if !rep.OK() {
					t.Fatalf("intact journal: %s", rep.Problem.Message)
				}
				return
			}
			if rep.OK() {
				t.Fatal("tampering not detected")
			}
			p := rep.Problem
			if p.Seq != tc.seq || p.Kind != tc.kind || !strings.Contains(p.Message, tc.message) {
				t.Fatalf("problem seq %d kind %s %q; want seq %d kind %s containing %q", p.Seq, p.Kind, p.Message, tc.seq, tc.kind, tc.message)
			}
		})
	}
}

// rehash recomputes entry seq's hash from its columns, as a forger would.
func rehash(t *testing.T, db *sql.DB, seq int64) {
	t.Helper()
	r, err := scanRow(db.QueryRow(`SELECT `+journalColumns+` FROM journal WHERE seq = ?`, seq))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE journal SET hash = ? WHERE seq = ?`, r.ComputeHash(), seq); err != nil {
		t.Fatal(err)
	}
}

// TestCutTailStaysVisible: after the tail is cut and riposte restarts, new
// entries continue from the recorded head, so the gap is still reported.
func TestCutTailStaysVisible(t *testing.T) {
	s := openTest(t, Options{})
	mustAccept(t, s, "a-1", "a-2", "a-3")
	mustAccept(t, s, "a-4")
	s.Close()
	db := rawDB(t, s.Path())
	for _, q := range []string{`DROP TRIGGER journal_no_delete`, `DELETE FROM journal WHERE seq >= 3`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s2, err := Open(s.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.Append(context.Background(), Entry{Type: Note})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Seq != 5 {
		t.Fatalf("new entry got seq %d, want 5 (after the recorded head)", got[0].Seq)
	}
	rep, err := s2.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problem.Seq != 3 || rep.Problem.Kind != Missing {
		t.Fatalf("report %+v, want entries 3 to 4 missing", rep.Problem)
	}
}

func TestVerifyRowsEmpty(t *testing.T) {
	n, p, err := VerifyRows(func(func(Row, error) bool) {}, nil)
	if n != 0 || p != nil || err != nil {
		t.Fatalf("empty journal: %d %v %v", n, p, err)
	}
	boom := errors.New("disk on fire")
	_, _, err = VerifyRows(func(yield func(Row, error) bool) { yield(Row{}, boom) }, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("read error not returned: %v", err)
	}
}

// TestVerifyWhileWriting: a reader (journal verify, a read-only store)
// always sees a consistent snapshot of entries and head while the writer
// appends.
func TestVerifyWhileWriting(t *testing.T) {
	s := openTest(t, Options{})
	ro, err := Open(s.Path(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := s.Append(context.Background(), Entry{Type: Note, Detail: map[string]any{"i": i}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var seen []int64
	for i := 0; len(seen) < 20 || seen[len(seen)-1] < 3000; i++ {
		rep, err := ro.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("verify %d during writes: %s", i, rep.Problem.Message)
		}
		seen = append(seen, rep.Entries)
	}
	cancel()
	<-done
	if seen[0] == seen[len(seen)-1] {
		t.Fatal("the journal did not grow while verifying")
	}
}

// TestAuditorRecomputesWithPython checks doc.go's other recipe.
func TestAuditorRecomputesWithPython(t *testing.T) {
	testutil.Tools(t, "python3")
	s := openTest(t, Options{})
	var entries []Entry
	for _, txt := range tricky {
		entries = append(entries, Entry{Type: Note, Actor: txt, Detail: map[string]any{"text": txt}})
	}
	if _, err := s.Append(context.Background(), entries...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	script := `
import hashlib, json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cols = "seq,time,type,alert_id,playbook,action,actor,detail,sha256,prev_hash"
bad = 0
for row in db.execute("SELECT " + cols + ",hash FROM journal ORDER BY seq"):
    enc = json.dumps(["riposte.journal.v1"] + list(row[:10]), ensure_ascii=False, separators=(",", ":"))
    if hashlib.sha256(enc.encode()).hexdigest() != row[10]:
        bad += 1
        print("mismatch at", row[0])
print("checked")
sys.exit(1 if bad else 0)
`
	out, err := exec.Command("python3", "-c", script, s.Path()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "checked") {
		t.Fatalf("python recomputation: %v: %s", err, out)
	}
}

// TestEntriesByAlert: an alert's entries are found by its id whether its
// alert.received entry is reached through the inbox (the journal's alert
// index leaves it out) or, once the alert was pruned, by a scan; other
// alerts' entries never leak in, and the other filters still apply.
func TestEntriesByAlert(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DuplicateWindow: time.Hour})
	ctx := context.Background()
	mustAccept(t, s, "a-1", "a-2", "a-3")
	mustAccept(t, s, "a-2") // duplicate
	if _, _, err := s.AcceptClaimed(ctx, []alert.Alert{testAlert("a-4")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a-1", "a-4"} {
		if err := s.FinishAlert(ctx, id, Entry{Type: Note, AlertID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// Settled at their accept: their entries follow their alert.received
	// (with incident.opened, of no alert, in between) and stay out of the
	// alert index.
	settle := func(ids ...string) {
		t.Helper()
		var as []alert.Alert
		var st []*Settled
		for _, id := range ids {
			as = append(as, testAlert(id))
			st = append(st, &Settled{Entries: []Entry{
				{Type: PlaybookMatched, AlertID: id, Playbook: "p", Detail: map[string]any{"incident": TheIncident}},
				{Type: Note, AlertID: id},
			}})
		}
		if _, _, _, err := s.AcceptSettled(ctx, as, st, 0); err != nil {
			t.Fatal(err)
		}
	}
	settle("s-1")
	clk.Add(2 * time.Hour)
	if p, err := s.Prune(ctx); err != nil || p.Alerts != 3 {
		t.Fatalf("prune: %+v, %v", p, err)
	}
	mustAccept(t, s, "a-5")
	settle("s-2", "s-3")
	var indexed int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM journal INDEXED BY journal_alert
		WHERE alert_id IN ('s-1', 's-2', 's-3') AND type <> 'alert.received' AND via_inbox = 0`).Scan(&indexed); err != nil || indexed != 0 {
		t.Fatalf("settled entries in the alert index: %d, %v", indexed, err)
	}

	types := func(f Filter) []EntryType {
		t.Helper()
		es, err := s.Entries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []EntryType
		for _, e := range es {
			if e.AlertID != f.AlertID {
				t.Fatalf("filter %+v returned entry %d of alert %q", f, e.Seq, e.AlertID)
			}
			out = append(out, e.Type)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []EntryType
	}{
		{"in the inbox", Filter{AlertID: "a-3"}, []EntryType{AlertReceived}},
		{"duplicate", Filter{AlertID: "a-2"}, []EntryType{AlertReceived, AlertDuplicate}},
		{"pruned", Filter{AlertID: "a-1"}, []EntryType{AlertReceived, Note}},
		{"claimed, pruned", Filter{AlertID: "a-4"}, []EntryType{AlertReceived, Note}},
		{"after prune", Filter{AlertID: "a-5"}, []EntryType{AlertReceived}},
		{"settled", Filter{AlertID: "s-2"}, []EntryType{AlertReceived, PlaybookMatched, Note}},
		{"settled after another", Filter{AlertID: "s-3"}, []EntryType{AlertReceived, PlaybookMatched, Note}},
		{"settled, pruned", Filter{AlertID: "s-1"}, []EntryType{AlertReceived, PlaybookMatched, Note}},
		{"settled, types", Filter{AlertID: "s-2", Types: []EntryType{Note}}, []EntryType{Note}},
		{"unknown", Filter{AlertID: "a-9"}, nil},
		{"types", Filter{AlertID: "a-2", Types: []EntryType{AlertDuplicate}}, []EntryType{AlertDuplicate}},
		{"limit", Filter{AlertID: "a-1", Limit: 1}, []EntryType{AlertReceived}},
		{"after seq", Filter{AlertID: "a-1", AfterSeq: 1}, []EntryType{Note}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := types(tc.f); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMigrateAlertIndex: a store written at schema version 1 (every entry
// in the alert index, no received_seq) opens at version 2 with its chain
// intact, its old alert.received found by alert (a scan), a new one through
// the inbox.
func TestMigrateAlertIndex(t *testing.T) {
	path := PathIn(t.TempDir())
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	v1, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	r := Row{Seq: 1, Time: "2025-03-01T12:00:00.000000000Z", Type: string(AlertReceived), AlertID: "old-1",
		Actor: storeActor, Detail: `{"priority":"Warning","rule":"r"}`, PrevHash: GenesisHash}
	r.Hash = r.ComputeHash()
	raw, err := testAlert("old-1").MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []struct {
		q    string
		args []any
	}{
		{`CREATE TABLE schema_version (version INTEGER NOT NULL)`, nil},
		{migrations[0], nil},
		{`INSERT INTO schema_version (version) VALUES (1)`, nil},
		{`INSERT INTO journal (` + journalColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			[]any{r.Seq, r.Time, r.Type, r.AlertID, r.Playbook, r.Action, r.Actor, r.Detail, r.SHA256, r.PrevHash, r.Hash}},
		{`INSERT INTO journal_head (id, seq, hash, time) VALUES (1, 1, ?, ?)`, []any{r.Hash, r.Time}},
		{`INSERT INTO inbox (id, raw, received_at) VALUES ('old-1', ?, ?)`, []any{string(raw), r.Time}},
	}
	for _, st := range stmts {
		if _, err := v1.Exec(st.q, st.args...); err != nil {
			t.Fatalf("build a version 1 store: %v", err)
		}
	}
	v1.Close()

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustAccept(t, s, "new-1")
	for _, id := range []string{"old-1", "new-1"} {
		es, err := s.Entries(context.Background(), Filter{AlertID: id})
		if err != nil || len(es) != 1 || es[0].Type != AlertReceived || es[0].AlertID != id {
			t.Fatalf("entries of %s: %+v, %v", id, es, err)
		}
	}
	var index string
	if err := s.rdb.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'journal_alert'`).Scan(&index); err != nil ||
		!strings.Contains(index, "WHERE type <> 'alert.received'") {
		t.Fatalf("journal_alert after migration: %q, %v", index, err)
	}
	if rep := mustVerify(t, s); rep.Entries != 2 {
		t.Fatalf("verify read %d entries, want 2", rep.Entries)
	}
}
