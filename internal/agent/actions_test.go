package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/riposte-sec/riposte/internal/actions"
)

// answers records the outcomes posted to a replica.
type answers struct {
	mu  sync.Mutex
	got []Outcome
}

func (a *answers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o, err := Decode[Outcome](r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.got = append(a.got, o)
	a.mu.Unlock()
	json.NewEncoder(w).Encode(ResultAnswer{Applied: true, State: "succeeded"})
}

// TestDoAtMostOnce: a claimed action runs once; claimed again after the
// agent stopped without answering it is answered from the ledger when its
// outcome was recorded, else reported in doubt, and never run again.
func TestDoAtMostOnce(t *testing.T) {
	tests := []struct {
		name     string
		attempts int
		recorded bool // the ledger holds the outcome already
		wantRuns int32
		want     Status
		inDoubt  bool
	}{
		{"first claim runs", 1, false, 1, StatusSucceeded, false},
		{"claimed again, outcome recorded: answered from the ledger", 2, true, 0, StatusSucceeded, false},
		{"claimed again, no outcome: in doubt, not run", 2, false, 0, StatusFailed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans := &answers{}
			srv := httptest.NewServer(ans)
			defer srv.Close()
			var runs atomic.Int32
			pause := actions.RunnerFunc(func(context.Context, actions.Request) (actions.Result, error) {
				runs.Add(1)
				return actions.Result{Note: "paused"}, nil
			})
			r, _ := NewReplicas([]string{srv.URL}, staticToken, nil)
			ag, err := New(Config{Node: "node-a", Data: t.TempDir()}, Deps{Replicas: r, Runners: map[string]actions.Runner{"container.pause": pause}})
			if err != nil {
				t.Fatal(err)
			}
			w := Work{Key: "a1/freeze/0", Attempts: tc.attempts, Request: Request{Action: "container.pause", Key: "a1/freeze/0", Container: "c1"}}
			if tc.recorded {
				if err := ag.ledger.put(Outcome{Key: w.Key, Status: StatusSucceeded, Result: actions.Result{Note: "paused"}}); err != nil {
					t.Fatal(err)
				}
			}
			ag.do(context.Background(), w)
			if n := runs.Load(); n != tc.wantRuns {
				t.Errorf("ran %d times, want %d", n, tc.wantRuns)
			}
			if len(ans.got) != 1 || ans.got[0].Status != tc.want || ans.got[0].InDoubt != tc.inDoubt || ans.got[0].Node != "node-a" || ans.got[0].Key != w.Key {
				t.Fatalf("answers %+v", ans.got)
			}
			if pend, _ := ag.ledger.pending(); len(pend) != 0 {
				t.Errorf("the ledger keeps a recorded outcome: %+v", pend)
			}
		})
	}
}

// TestOutcomeErr: an outcome becomes the runner's error a replica's
// engine journals: protected is actions.ErrProtected, retryable stays so.
func TestOutcomeErr(t *testing.T) {
	if err := (Outcome{Status: StatusProtected, Error: "label riposte.protect"}).Err(); !errors.Is(err, actions.ErrProtected) {
		t.Errorf("protected: %v", err)
	}
	if err := (Outcome{Status: StatusFailed, Error: "daemon down", Retryable: true}).Err(); !actions.IsRetryable(err) || err.Error() != "daemon down" {
		t.Errorf("retryable: %v", err)
	}
	if err := (Outcome{Status: StatusSucceeded}).Err(); err != nil {
		t.Errorf("succeeded: %v", err)
	}
}
