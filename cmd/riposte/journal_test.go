package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/anchor"
	"github.com/riposte-sec/riposte/internal/store"
)

// journalData makes a data directory with a few journal entries.
func journalData(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := store.Open(store.PathIn(dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var as []alert.Alert
	for _, id := range []string{"alert-1", "alert-2"} {
		as = append(as, alert.Alert{ID: id, Time: time.Now(), Rule: "Terminal shell in container", Priority: alert.PriorityWarning,
			OutputFields: map[string]any{"container.id": "3f9a1c2b4d5e"}})
	}
	if _, err := s.Accept(ctx, as); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx,
		store.Entry{Type: store.PlaybookMatched, AlertID: "alert-1", Playbook: "contain", Actor: "playbook:contain"},
		store.Entry{Type: store.ActionSucceeded, AlertID: "alert-1", Playbook: "contain", Action: "container.snapshot",
			Actor: "playbook:contain", SHA256: strings.Repeat("ab", 32), Detail: map[string]any{"note": "snapshot <taken>\tok"}},
	); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestJournalShow(t *testing.T) {
	dir := journalData(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		lines  int      // JSON lines, when > 0
		stdout []string // substrings
		errHas string
	}{
		{name: "table", args: []string{"--data", dir},
			stdout: []string{"SEQ", "alert.received", "alert-2", "container.snapshot", "sha256:abababababab", `"note":"snapshot <taken>\tok"`}},
		{name: "json", args: []string{"--data", dir, "--output", "json"}, lines: 4},
		{name: "alert", args: []string{"--data", dir, "-o", "json", "--alert", "alert-1"}, lines: 3},
		{name: "type", args: []string{"--data", dir, "-o", "json", "--type", "alert.received"}, lines: 2},
		{name: "since an hour ago", args: []string{"--data", dir, "-o", "json", "--since", "1h"}, lines: 4},
		{name: "since tomorrow", args: []string{"--data", dir, "--since", time.Now().Add(48 * time.Hour).Format("2006-01-02")},
			stdout: []string{"(no entries)"}},
		{name: "bad since", args: []string{"--data", dir, "--since", "yesterday"}, code: exitBadInput,
			errHas: `--since "yesterday": want an RFC 3339 time`},
		{name: "bad output", args: []string{"--data", dir, "-o", "yaml"}, code: exitBadInput, errHas: "--output: want text or json"},
		{name: "unknown type", args: []string{"--data", dir, "--type", "action.succeded"}, code: exitBadInput,
			errHas: `--type: unknown entry type "action.succeded" (want one of alert.received,`},
		{name: "no data", args: []string{"--data", filepath.Join(dir, "nope")}, code: exitBadInput, errHas: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errText, code := run(t, "", append([]string{"journal", "show"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errText, tc.errHas) {
				t.Fatalf("exit %d %q, want %d %q", code, errText, tc.code, tc.errHas)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tc.lines > 0 {
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != tc.lines {
					t.Fatalf("%d lines, want %d:\n%s", len(lines), tc.lines, out)
				}
				for _, l := range lines {
					var e map[string]any
					if err := json.Unmarshal([]byte(l), &e); err != nil {
						t.Fatalf("line %q: %v", l, err)
					}
					for _, k := range []string{"seq", "time", "type", "alert_id", "playbook", "action", "actor", "detail", "sha256", "prev_hash", "hash"} {
						if _, ok := e[k]; !ok {
							t.Fatalf("line lacks %s: %s", k, l)
						}
					}
				}
			}
		})
	}
}

func TestJournalVerify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper []string
		code   int
		out    string
		errHas string
	}{
		{name: "intact", out: "journal ok: 4 entries, head seq 4 hash "},
		{name: "edited", tamper: []string{`UPDATE journal SET detail = '{}' WHERE seq = 4`},
			code: exitFailed, errHas: "journal verify: entry 4 was edited"},
		{name: "removed", tamper: []string{`DELETE FROM journal WHERE seq = 2`},
			code: exitFailed, errHas: "entry 2 is missing"},
		{name: "reordered", tamper: []string{`UPDATE journal SET seq = -1 WHERE seq = 2`,
			`UPDATE journal SET seq = 2 WHERE seq = 3`, `UPDATE journal SET seq = 3 WHERE seq = -1`},
			code: exitFailed, errHas: "entry 2 holds the entry recorded as entry 3 (reordered)"},
		{name: "truncated", tamper: []string{`DELETE FROM journal WHERE seq = 4`},
			code: exitFailed, errHas: "entry 4 was removed (truncated)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := journalData(t)
			if len(tc.tamper) > 0 {
				db, err := sql.Open("sqlite", store.PathIn(dir))
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range append([]string{`DROP TRIGGER journal_no_update`, `DROP TRIGGER journal_no_delete`}, tc.tamper...) {
					if _, err := db.Exec(q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				db.Close()
			}
			out, errText, code := run(t, "", "journal", "verify", "--data", dir)
			if code != tc.code || !strings.Contains(errText, tc.errHas) || !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d, stdout %q, error %q; want %d, %q, %q", code, out, errText, tc.code, tc.out, tc.errHas)
			}
		})
	}
	out, errText, code := run(t, "", "journal", "verify", "--data", t.TempDir())
	if code != exitBadInput || !strings.Contains(errText, "no such file") {
		t.Fatalf("verify of an empty directory: exit %d %q %q", code, out, errText)
	}
	out, _, code = run(t, "", "journal", "verify", "--data", journalData(t), "-o", "json")
	var rep store.Report
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || rep.Entries != 4 || !rep.OK() {
		t.Fatalf("verify -o json: exit %d, %q, %v", code, out, err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in     string
		want   time.Time
		errHas string
	}{
		{in: "", want: time.Time{}},
		{in: "2025-03-01T08:30:00Z", want: time.Date(2025, 3, 1, 8, 30, 0, 0, time.UTC)},
		{in: "2025-03-01T08:30:00.5+02:00", want: time.Date(2025, 3, 1, 6, 30, 0, 5e8, time.UTC)},
		{in: "2025-03-01", want: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "2h", want: now.Add(-2 * time.Hour)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "1d12h", want: now.Add(-36 * time.Hour)},
		{in: " 0s ", want: now},
		{in: "2025-03-01T08:30:00", errHas: "the time has no zone"},
		{in: "-2h", errHas: "cannot be negative"},
		{in: "-1d", errHas: "cannot be negative"},
		{in: "10", errHas: `a duration needs a unit (10m, 10h, 10d)`},
		{in: "yesterday", errHas: "want an RFC 3339 time (2025-03-01T12:00:00Z), a date (2025-03-01) or a duration back from now"},
		{in: "2025-13-01", errHas: "want an RFC 3339 time"},
		{in: "5 minutes", errHas: "want an RFC 3339 time"},
		{in: "999999d", errHas: "more than 100 years"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// FuzzParseSince: any input gives a time or an error that names --since;
// never a panic, never a time in the future of now for a duration.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"2h", "7d", "1d12h", "2025-03-01", "2025-03-01T08:30:00Z", "-1d", "10", "d", "1dd", "+3h"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, now)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--since ") {
				t.Fatalf("error does not name the flag: %v", err)
			}
			return
		}
		if d, ok, _ := parseAgo(strings.TrimSpace(s)); ok && got.After(now) {
			t.Fatalf("%q (%s back) gives %v, after now", s, d, got)
		}
	})
}

// TestJournalTypeCompletion: the shell completes --type with every entry
// type the journal has, including those the engine and captures write.
func TestJournalTypeCompletion(t *testing.T) {
	out, errText, code := run(t, "", "__complete", "journal", "show", "--type", "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	for _, want := range []string{"action.queued", "capture.finished", "incident.acknowledged", "action.skipped", "alert.received"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("completion lacks %s:\n%s", want, out)
		}
	}
}

// TestJournalVerifyAnchored: what the chain alone cannot catch — a tail
// cut with the head row updated, the whole chain rewritten, every entry
// deleted — fails verify against the anchor file or an expected head; an
// emptied journal fails even without one, since the store still holds the
// alerts.
func TestJournalVerifyAnchored(t *testing.T) {
	tests := []struct {
		name    string
		tamper  []string
		rewrite bool // append a fresh chain after the SQL
		flags   func(anchorFile, head string) []string
		code    int
		errHas  string
		stdout  string
	}{
		{name: "intact, anchored", flags: anchorFlag, code: exitOK},
		{name: "intact, expected head", flags: headFlag, code: exitOK},
		{name: "tail cut, head row updated", tamper: []string{`DELETE FROM journal WHERE seq > 3`,
			`UPDATE journal_head SET seq = 3, hash = (SELECT hash FROM journal WHERE seq = 3), time = (SELECT time FROM journal WHERE seq = 3)`},
			flags: anchorFlag, code: exitFailed, errHas: "entry 4 was anchored but the journal ends at seq 3: its tail was cut"},
		{name: "tail cut, expected head", tamper: []string{`DELETE FROM journal WHERE seq > 3`,
			`UPDATE journal_head SET seq = 3, hash = (SELECT hash FROM journal WHERE seq = 3), time = (SELECT time FROM journal WHERE seq = 3)`},
			flags: headFlag, code: exitFailed, errHas: "--expect-head: entry 4 was anchored but the journal ends at seq 3"},
		{name: "whole chain rewritten", tamper: []string{`DELETE FROM journal`, `DELETE FROM journal_head`}, rewrite: true,
			flags: anchorFlag, code: exitFailed, errHas: "the journal was rewritten"},
		{name: "every entry deleted, anchored", tamper: []string{`DELETE FROM journal`, `DELETE FROM journal_head`},
			flags: anchorFlag, code: exitFailed, errHas: "the journal is empty but the store holds 2 alerts"},
		{name: "every entry deleted, no anchor", tamper: []string{`DELETE FROM journal`, `DELETE FROM journal_head`},
			flags: func(string, string) []string { return nil }, code: exitFailed, errHas: "the journal is empty but the store holds 2 alerts, 0 incidents and 0 action runs: it was emptied"},
		{name: "rewritten, json report", tamper: []string{`DELETE FROM journal`, `DELETE FROM journal_head`}, rewrite: true,
			flags: func(a, _ string) []string { return []string{"--anchor", a, "-o", "json"} }, code: exitFailed, errHas: "the journal was rewritten",
			stdout: `"anchor_problem":"checkpoint 1 (head at `},
		{name: "bad expected head", flags: func(string, string) []string { return []string{"--expect-head", "four:abc"} },
			code: exitBadInput, errHas: `--expect-head "four:abc": want SEQ:HASH`},
		{name: "missing anchor file", flags: func(a, _ string) []string { return []string{"--anchor", a + ".missing"} },
			code: exitBadInput, errHas: "--anchor: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := journalData(t)
			anchorFile := filepath.Join(t.TempDir(), "anchors.jsonl")
			key, _, err := anchor.LoadOrCreateKey(filepath.Join(t.TempDir(), "anchor.key"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(store.PathIn(dir), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			c, _, err := anchor.NewWriter(key, s, anchorFile, 0, nil).Checkpoint(context.Background())
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.tamper) > 0 {
				db, err := sql.Open("sqlite", store.PathIn(dir))
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range append([]string{`DROP TRIGGER journal_no_update`, `DROP TRIGGER journal_no_delete`}, tt.tamper...) {
					if _, err := db.Exec(q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				db.Close()
			}
			if tt.rewrite {
				s, err := store.Open(store.PathIn(dir), store.Options{})
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 6; i++ {
					if _, err := s.Append(context.Background(), store.Entry{Type: store.Note, Detail: map[string]any{"forged": i}}); err != nil {
						t.Fatal(err)
					}
				}
				s.Close()
			}
			args := append([]string{"journal", "verify", "--data", dir}, tt.flags(anchorFile, fmt.Sprintf("%d:%s", c.Seq, c.Hash))...)
			out, errText, code := run(t, "", args...)
			if code != tt.code || !strings.Contains(errText, tt.errHas) || !strings.Contains(out, tt.stdout) {
				t.Fatalf("exit %d, stdout %q, error %q; want %d, %q, stdout with %q", code, out, errText, tt.code, tt.errHas, tt.stdout)
			}
		})
	}
}

func anchorFlag(a, _ string) []string { return []string{"--anchor", a} }
func headFlag(_, h string) []string   { return []string{"--expect-head", h} }
