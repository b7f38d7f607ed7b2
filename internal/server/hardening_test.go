package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/metrics"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// storeInbox is the SQLite store behind the server, as the app wires it.
type storeInbox struct{ st *store.Store }

func (i storeInbox) Accept(ctx context.Context, alerts []alert.Alert) ([]Accepted, error) {
	acc, err := i.st.Accept(ctx, alerts)
	if err != nil {
		return nil, err
	}
	out := make([]Accepted, len(acc))
	for k, x := range acc {
		out[k] = Accepted{ID: x.ID, Duplicate: x.Duplicate, Conflict: x.Conflict}
	}
	return out, nil
}

// TestIntakeReusedUUID: the same alert again is a duplicate (202); the same
// uuid with other content is refused with 409 and journaled, and the
// stored alert stays as it was.
func TestIntakeReusedUUID(t *testing.T) {
	st, err := store.Open(store.PathIn(filepath.Join(t.TempDir(), "data")), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m := metrics.New(nil)
	s, err := New(Config{Tokens: []string{token}}, Deps{Inbox: storeInbox{st}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(oneAlert, `"container.id":"3f9a1c2b7d4e"`, `"container.id":"000000000000"`, 1)
	second := strings.Replace(oneAlert, "a-1", "a-2", 1)
	tests := []struct {
		name   string
		body   string
		status int
		want   []Accepted
	}{
		{"new", oneAlert, 202, []Accepted{{ID: "a-1"}}},
		{"same content again", oneAlert, 202, []Accepted{{ID: "a-1", Duplicate: true}}},
		{"same uuid, other content", forged, 409, []Accepted{{ID: "a-1", Duplicate: true, Conflict: true}}},
		{"conflict among new alerts", "[" + second + "," + forged + "]", 409, []Accepted{{ID: "a-2"}, {ID: "a-1", Duplicate: true, Conflict: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s, "POST", "/v1/alerts", bearer(), tt.body)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			var resp struct {
				Accepted []Accepted `json:"accepted"`
				Error    string     `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if len(resp.Accepted) != len(tt.want) {
				t.Fatalf("accepted %+v, want %+v", resp.Accepted, tt.want)
			}
			for i := range tt.want {
				if resp.Accepted[i] != tt.want[i] {
					t.Errorf("accepted[%d] = %+v, want %+v", i, resp.Accepted[i], tt.want[i])
				}
			}
			if tt.status == 409 && !strings.Contains(resp.Error, "uuid a-1 already received with different content") {
				t.Errorf("409 error %q", resp.Error)
			}
		})
	}
	if got := promtestutil.ToFloat64(m.AlertsRejected.WithLabelValues(metrics.RejectConflict)); got != 2 {
		t.Errorf("rejected{reason=conflict} = %v, want 2", got)
	}
	es, err := st.Entries(t.Context(), store.Filter{AlertID: "a-1", Types: []store.EntryType{store.AlertDuplicate}})
	if err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	for _, e := range es {
		if e.Detail["conflict"] != nil {
			conflicts++
		}
	}
	if len(es) != 3 || conflicts != 2 {
		t.Errorf("journal: %d alert.duplicate entries, %d conflicts; want 3 and 2", len(es), conflicts)
	}
}

// TestStoreFailureAnswer: the 503 does not show the store's error; the log
// has it, once per storeFailHold with a count of the others; /readyz is not
// ready until a write succeeds or the hold passes.
func TestStoreFailureAnswer(t *testing.T) {
	const internal = "disk I/O error (sqlite3 SQLITE_FULL in /var/lib/riposte/riposte.db-wal)"
	inbox := &memInbox{err: errors.New(internal)}
	var logs testutil.SyncBuffer
	var mu sync.Mutex
	now := clock
	tick := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s, err := New(Config{Tokens: []string{token}}, Deps{Inbox: inbox, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		w := do(s, "POST", "/v1/alerts", bearer(), oneAlert)
		if w.Code != 503 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "disk") || strings.Contains(w.Body.String(), "sqlite") {
			t.Fatalf("503 body shows the store's error: %s", w.Body)
		}
		tick(10 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines for 50 failures within %s, want 1:\n%s", n, storeFailHold, logs.String())
	}
	if !strings.Contains(logs.String(), "SQLITE_FULL") {
		t.Errorf("the log lacks the store's error:\n%s", logs.String())
	}
	if w := do(s, "GET", "/readyz", nil, ""); w.Code != 503 {
		t.Errorf("readyz while the store refuses writes: %d %s", w.Code, w.Body)
	}
	tick(storeFailHold)
	do(s, "POST", "/v1/alerts", bearer(), oneAlert)
	if !strings.Contains(logs.String(), "failures_not_logged=49") {
		t.Errorf("the second error line does not count the 49 not logged:\n%s", logs.String())
	}
	inbox.mu.Lock()
	inbox.err = nil
	inbox.mu.Unlock()
	if w := do(s, "POST", "/v1/alerts", bearer(), oneAlert); w.Code != 202 {
		t.Fatalf("after recovery: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/readyz", nil, ""); w.Code != 200 {
		t.Errorf("readyz after a successful write: %d %s", w.Code, w.Body)
	}
}

func TestUnsupportedContentTypeNotEchoed(t *testing.T) {
	s, _, _ := newTestServer(t, &memInbox{})
	for _, ct := range []string{
		"text/" + strings.Repeat("x", 500_000),
		"application/json; " + strings.Repeat("a", 500_000), // malformed parameter
	} {
		w := do(s, "POST", "/v1/alerts", bearer("Content-Type", ct), oneAlert)
		if w.Code != 415 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Body.Len() > 300 {
			t.Errorf("415 body is %d bytes: %.120s…", w.Body.Len(), w.Body)
		}
	}
}
