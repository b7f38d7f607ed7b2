package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// crashChildEnv tells the test binary, re-executed by TestCrashDurability,
// to be the child that writes until it is killed.
const crashChildEnv = "RIPOSTE_STORE_CRASH_CHILD"

// TestCrashDurability starts a child process that accepts alerts from 16
// goroutines and prints every acknowledged id, starts actions and leases
// outbox messages, kills it with SIGKILL mid-stream, reopens the store and
// checks: every acknowledged alert is in the inbox and journaled as
// alert.received exactly once; the journal verifies; actions the child
// finished are done and the ones it started are in doubt; messages it
// leased are claimable at once.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	for round := 1; round <= 3; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) { crashRound(t) })
	}
}

func crashRound(t *testing.T) {
	path := PathIn(filepath.Join(t.TempDir(), "data"))
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	done := map[string]bool{}
	started := map[string]bool{}
	leased := map[string]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		kind, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch kind {
		case "ack":
			acked[v]++
		case "done":
			done[v] = true
		case "started":
			started[v] = true
		case "leased":
			leased[v] = true
		}
		// Kill mid-stream: the child is still accepting at full speed.
		if !killed && len(acked) >= 3000 && len(started) > 0 && len(leased) > 0 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true // keep reading: lines already in the pipe were acknowledged too
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed (%d acks)", len(acked))
	}
	for id, n := range acked {
		if n != 1 {
			t.Fatalf("child acknowledged %s %d times", id, n)
		}
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	ctx := context.Background()

	var inbox int
	rows, err := s.rdb.QueryContext(ctx, `SELECT id FROM inbox`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id]++
		inbox++
	}
	rows.Close()
	received := map[string]int{}
	for e, err := range s.Scan(ctx, Filter{Types: []EntryType{AlertReceived}}) {
		if err != nil {
			t.Fatal(err)
		}
		received[e.AlertID]++
	}
	var missing []string
	for id := range acked {
		if stored[id] != 1 || received[id] != 1 {
			missing = append(missing, fmt.Sprintf("%s (inbox %d, alert.received %d)", id, stored[id], received[id]))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged alerts not there exactly once, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
	}
	for id, n := range received {
		if n != 1 {
			t.Fatalf("alert %s journaled as received %d times", id, n)
		}
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("journal does not verify after kill -9: %s", rep.Problem.Message)
	}
	t.Logf("acknowledged %d, in the inbox %d (the rest committed but not yet acknowledged), journal %d entries",
		len(acked), inbox, rep.Entries)

	// Actions: finished ones are never run again; started ones are in doubt.
	for k := range done {
		c, err := s.ClaimAction(ctx, ClaimRequest{Key: crashKey(k), Action: "container.pause"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Outcome != ClaimDone {
			t.Errorf("finished action %s: claim after restart says %s, want done", k, c.Outcome)
		}
	}
	// A started action whose finish was committed but not yet reported
	// when the kill came is done; any other is in doubt. None may be
	// claimed to run again.
	inDoubt, doneUnreported := 0, 0
	for k := range started {
		if done[k] {
			continue
		}
		c, err := s.ClaimAction(ctx, ClaimRequest{Key: crashKey(k), Action: "container.pause"})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case c.Outcome == ClaimDone:
			doneUnreported++
		case c.Outcome == ClaimInDoubt && c.Run.InDoubt:
			inDoubt++
		default:
			t.Errorf("started action %s: claim after restart says %s, want in_doubt (or done: finished, not yet reported)", k, c.Outcome)
		}
	}
	if doneUnreported > 1 {
		t.Errorf("%d started actions found done but not reported done: the child reports each finish before starting the next", doneUnreported)
	}
	unfinished, err := s.UnfinishedActions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range unfinished {
		if r.State == ActionStateStarted && !r.InDoubt {
			t.Errorf("unfinished %s not marked in doubt", r.Key)
		}
	}
	// Outbox: the dead child's leases (one hour) are claimable at once.
	items, err := s.ClaimOutbox(ctx, 1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range items {
		got[it.Key] = true
	}
	for k := range leased {
		if !got[k] {
			t.Errorf("message %s leased by the dead child is not claimable after restart", k)
		}
	}
	t.Logf("actions: %d done (%d of them not yet reported at the kill), %d in doubt; outbox: %d leased by the child, %d claimed after restart",
		len(done)+doneUnreported, doneUnreported, inDoubt, len(leased), len(items))
}

func crashKey(k string) ActionKey { return ActionKey{AlertID: k, Playbook: "contain", Index: 0} }

// TestMain runs the test binary as the child of TestCrashDurability when
// crashChildEnv is set.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path) // killed by the parent; never returns
	}
	os.Exit(m.Run())
}

// crashChild accepts alerts, starts and finishes actions and leases
// messages, printing each acknowledgement, until it is killed.
func crashChild(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	var outMu sync.Mutex
	say := func(kind, v string) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.WriteString(kind + " " + v + "\n"); err != nil {
			os.Exit(4)
		}
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(5)
	}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				// Mostly single alerts (an HTTP post each), sometimes a batch.
				n := 1
				if i%7 == 0 {
					n = 5
				}
				as := make([]alert.Alert, n)
				for j := range as {
					as[j] = testAlert(fmt.Sprintf("g%d-%d-%d", g, i, j))
				}
				got, err := s.Accept(ctx, as)
				if err != nil {
					fail(err)
				}
				for _, a := range got {
					say("ack", a.ID)
				}
				if g == 0 && i%10 == 0 {
					// An action that finishes, and one left started.
					k := got[0].ID
					if _, err := s.ClaimAction(ctx, ClaimRequest{Key: crashKey(k), Action: "container.pause"}); err != nil {
						fail(err)
					}
					say("started", k)
					if i%20 == 0 {
						if _, _, err := s.RecordAction(ctx, ActionUpdate{Key: crashKey(k), State: ActionStateSucceeded}); err != nil {
							fail(err)
						}
						say("done", k)
					}
				}
				if g == 1 && i%10 == 0 {
					key := "slack/" + got[0].ID
					if _, err := s.Enqueue(ctx, []Message{{Key: key, Kind: "slack", Target: "#ir", Payload: []byte(`{"text":"x"}`)}}); err != nil {
						fail(err)
					}
					items, err := s.ClaimOutbox(ctx, 100, time.Hour)
					if err != nil {
						fail(err)
					}
					for _, it := range items {
						say("leased", it.Key)
					}
				}
			}
		}()
	}
	wg.Wait()
}
