package anchor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

func testKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, created, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "anchor.key"))
	if err != nil || !created {
		t.Fatalf("create key: %v %v", created, err)
	}
	return k
}

func TestSignVerify(t *testing.T) {
	k := testKey(t)
	other := testKey(t)
	head := store.Head{Seq: 42, Hash: strings.Repeat("ab", 32), Time: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	c := Sign(k, head)
	if err := c.Verify(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(k.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("pinned own key: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Checkpoint)
		pinned ed25519.PublicKey
		want   string
	}{
		{"other seq", func(c *Checkpoint) { c.Seq = 41 }, nil, "signature does not verify"},
		{"other hash", func(c *Checkpoint) { c.Hash = strings.Repeat("cd", 32) }, nil, "signature does not verify"},
		{"other time", func(c *Checkpoint) { c.Time = c.Time.Add(time.Second) }, nil, "signature does not verify"},
		{"re-signed with another key", func(c *Checkpoint) { *c = Sign(other, head) }, k.Public().(ed25519.PublicKey), "not by the key given"},
		{"bad key", func(c *Checkpoint) { c.PublicKey = "zz" }, nil, "public_key: want 64 hex digits"},
		{"bad signature", func(c *Checkpoint) { c.Signature = "00" }, nil, "signature: want 128 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Sign(k, head)
			tt.change(&c)
			if err := c.Verify(tt.pinned); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "anchor.key")
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: created %v err %v same %v", created, err, k1.Equal(k2))
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(bad); err == nil || !strings.Contains(err.Error(), "want a PEM PRIVATE KEY block") {
		t.Fatalf("bad key: %v", err)
	}
	pub, err := ParsePublicKey([]byte(fmt.Sprintf("%x\n", []byte(k1.Public().(ed25519.PublicKey)))))
	if err != nil || !pub.Equal(k1.Public()) {
		t.Fatalf("parse hex public key: %v", err)
	}
	if _, err := ParsePublicKey([]byte("abc")); err == nil {
		t.Fatal("short public key accepted")
	}
}

func TestRead(t *testing.T) {
	k := testKey(t)
	var buf bytes.Buffer
	for i := int64(1); i <= 3; i++ {
		if err := appendTo(&buf, Sign(k, store.Head{Seq: i, Hash: strings.Repeat("0", 64), Time: time.Now()})); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("\n")
	cps, err := Read(&buf)
	if err != nil || len(cps) != 3 || cps[2].Seq != 3 {
		t.Fatalf("read %d checkpoints: %v", len(cps), err)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"not json", "{\"seq\":1}\nnope\n", "line 2: invalid character"},
		{"unknown field", `{"seq":1,"extra":true}`, `line 1: json: unknown field "extra"`},
		{"zero seq", `{"seq":0}`, "line 1: seq must be positive, got 0"},
		{"line too long", strings.Repeat("x", maxLine+1), "token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Read(strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func appendTo(buf *bytes.Buffer, c Checkpoint) error {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("anchor-%d.jsonl", time.Now().UnixNano()))
	defer os.Remove(path)
	if err := appendLine(path, c); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	buf.Write(b)
	return err
}

// journal opens a store with n notes in its journal.
func journal(t *testing.T, dir string, n int) *store.Store {
	t.Helper()
	st, err := store.Open(store.PathIn(dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := st.Append(context.Background(), store.Entry{Type: store.Note, Actor: "test", Detail: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestWriter: a checkpoint goes to the anchor file and, as an entry, to
// the journal; the periodic round waits for Every new entries; nothing
// new since the last checkpoint writes nothing.
func TestWriter(t *testing.T) {
	dir := t.TempDir()
	st := journal(t, filepath.Join(dir, "data"), 3)
	defer st.Close()
	ctx := context.Background()
	file := filepath.Join(dir, "anchors.jsonl")
	w := NewWriter(testKey(t), st, file, 5, nil)
	c, ok, err := w.Checkpoint(ctx)
	if err != nil || !ok || c.Seq != 3 {
		t.Fatalf("first checkpoint: %+v %v %v", c, ok, err)
	}
	if _, ok, _ := w.Checkpoint(ctx); ok {
		t.Error("a second checkpoint with nothing new was written")
	}
	if _, ok, _ := w.checkpoint(ctx, w.every); ok {
		t.Error("periodic round before Every entries wrote a checkpoint")
	}
	es, _ := st.Entries(ctx, store.Filter{Types: []store.EntryType{store.JournalCheckpoint}})
	if len(es) != 1 || es[0].Seq != 4 || es[0].Detail["hash"] != c.Hash {
		t.Fatalf("journal checkpoints: %+v", es)
	}
	for i := 0; i < 5; i++ {
		if _, err := st.Append(ctx, store.Entry{Type: store.Note}); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok, err := w.checkpoint(ctx, w.every); !ok || err != nil || c.Seq != 9 {
		t.Fatalf("periodic round after Every entries: %+v %v %v", c, ok, err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cps, err := Read(f)
	if err != nil || len(cps) != 2 {
		t.Fatalf("anchor file: %d %v", len(cps), err)
	}
	if p, err := Check(ctx, st, cps, nil); p != "" || err != nil {
		t.Fatalf("intact journal: %q %v", p, err)
	}
}

// TestCheckTamper: the tampering the chain check cannot see — cut tail
// with the head row updated, the whole chain rewritten, every entry
// deleted — is caught against the checkpoints.
func TestCheckTamper(t *testing.T) {
	tests := []struct {
		name   string
		tamper []string
		// rewrite appends this many entries after the SQL (a new chain).
		rewrite int
		want    string
	}{
		{"intact", nil, 0, ""},
		{"tail cut, head row updated", []string{
			`DELETE FROM journal WHERE seq > 5`,
			`UPDATE journal_head SET seq = 5, hash = (SELECT hash FROM journal WHERE seq = 5), time = (SELECT time FROM journal WHERE seq = 5)`,
		}, 0, "entry 8 was anchored but the journal ends at seq 5: its tail was cut"},
		{"whole chain rewritten", []string{`DELETE FROM journal`, `DELETE FROM journal_head`}, 12, "entry 8 has hash"},
		{"every entry deleted", []string{`DELETE FROM journal`, `DELETE FROM journal_head`}, 0, "entry 8 was anchored but the journal is empty: it was emptied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			data := filepath.Join(t.TempDir(), "data")
			st := journal(t, data, 8)
			c, _, err := NewWriter(testKey(t), st, "", 0, nil).Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			db, err := sql.Open("sqlite", store.PathIn(data))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range append([]string{`DROP TRIGGER journal_no_update`, `DROP TRIGGER journal_no_delete`}, tt.tamper...) {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			db.Close()
			st = journal(t, data, tt.rewrite)
			defer st.Close()
			if rep, err := st.Verify(ctx); err != nil || !rep.OK() {
				t.Fatalf("the tampered chain should verify on its own: %+v %v", rep, err)
			}
			p, err := Check(ctx, st, []Checkpoint{c}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if (tt.want == "") != (p == "") || !strings.Contains(p, tt.want) {
				t.Fatalf("problem %q, want %q", p, tt.want)
			}
		})
	}
}

func FuzzRead(f *testing.F) {
	k, _, _ := LoadOrCreateKey(filepath.Join(f.TempDir(), "k"))
	var buf bytes.Buffer
	_ = appendTo(&buf, Sign(k, store.Head{Seq: 7, Hash: strings.Repeat("ab", 32), Time: time.Now()}))
	f.Add(buf.Bytes())
	f.Add([]byte("{\"seq\":1}\n\n{\"seq\":2,\"hash\":\"x\"}"))
	f.Add([]byte("[]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cps, err := Read(bytes.NewReader(b))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read anchors: ") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		for _, c := range cps {
			if c.Seq <= 0 {
				t.Fatalf("accepted seq %d", c.Seq)
			}
			_ = c.Verify(nil) // must not panic on any content
		}
	})
}
