package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// gatedSync holds each fsync of the WAL until the test releases it with
// what it returns; closing release lets every later fsync through.
type gatedSync struct {
	entered chan struct{} // one per fsync, as it starts
	release chan error
}

// openGated opens a store whose checkpointer does not run (the writer
// checkpoints itself, after hundreds of frames): its WAL restarts would be
// fsyncs the tests do not expect.
func openGated(t *testing.T) *Store { return openTest(t, Options{checkpointInWriter: true}) }

func gateSyncs(t *testing.T, s *Store) *gatedSync {
	g := &gatedSync{entered: make(chan struct{}, 64), release: make(chan error)}
	s.w.fsync = func() error {
		g.entered <- struct{}{}
		return <-g.release
	}
	t.Cleanup(func() { close(g.release) }) // before the store's Close
	return g
}

// await fails t unless ch delivers within a few seconds.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not within 5s", what)
		panic("unreachable")
	}
}

// async runs f in a goroutine and delivers its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func claimPause(ctx context.Context, s *Store, alertID string) error {
	c, err := s.ClaimAction(ctx, ClaimRequest{Key: ActionKey{AlertID: alertID, Playbook: "pb"}, Action: "container.pause", Destructive: true,
		Budget: Budget{Max: 10, Window: time.Minute}}, Entry{Type: ActionStarted, AlertID: alertID, Playbook: "pb", Action: "container.pause"})
	if err == nil && c.Outcome != ClaimRun {
		err = errors.New("claim outcome " + string(c.Outcome))
	}
	return err
}

// An urgent write is answered at its commit, while the fsync that makes it
// durable is still held; readers see it; the syncer runs that fsync
// without being asked by any other write. An ordinary write is still
// answered only after its fsync.
func TestUrgentAnsweredAtCommit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(ctx context.Context, s *Store) error
		seen  func(s *Store) bool
	}{
		{"accept", func(ctx context.Context, s *Store) error {
			_, _, err := s.AcceptClaimed(ctx, []alert.Alert{testAlert("u-1")}, time.Minute)
			return err
		}, func(s *Store) bool {
			st, err := s.Stats(context.Background())
			return err == nil && st.InboxProcessing == 1
		}},
		{"claim", func(ctx context.Context, s *Store) error { return claimPause(ctx, s, "u-2") },
			func(s *Store) bool {
				r, err := s.GetAction(context.Background(), ActionKey{AlertID: "u-2", Playbook: "pb"})
				return err == nil && r.State == ActionStateStarted
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openGated(t)
			g := gateSyncs(t, s)
			syncs := s.w.syncs.Load()
			if err := await(t, async(func() error { return tc.write(Urgent(context.Background()), s) }), "urgent write answered with its fsync held"); err != nil {
				t.Fatal(err)
			}
			if !tc.seen(s) {
				t.Fatal("a reader does not see the urgent write")
			}
			await(t, g.entered, "the fsync after the urgent commit")
			if n := s.w.syncs.Load() - syncs; n != 1 {
				t.Fatalf("%d fsyncs after one urgent write, want 1", n)
			}
			g.release <- nil

			// An ordinary write waits for its own fsync.
			done := async(func() error { _, err := s.Append(context.Background(), Entry{Type: Note}); return err })
			await(t, g.entered, "the ordinary write's fsync")
			select {
			case err := <-done:
				t.Fatalf("ordinary write answered before its fsync returned (err %v)", err)
			default:
			}
			g.release <- nil
			if err := await(t, done, "ordinary write after its fsync"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// While an fsync is in flight the writer holds the next batch open (group
// commit); an urgent request commits it at once, with any ordinary request
// waiting in it, which is still answered only after an fsync.
func TestUrgentCommitsOpenBatch(t *testing.T) {
	s := openGated(t)
	g := gateSyncs(t, s)
	first := async(func() error { _, err := s.Append(context.Background(), Entry{Type: Note}); return err })
	await(t, g.entered, "the first write's fsync") // the syncer is busy from here on
	second := async(func() error { _, err := s.Append(context.Background(), Entry{Type: Note}); return err })
	if err := await(t, async(func() error { return claimPause(Urgent(context.Background()), s, "u-3") }),
		"urgent claim answered while the previous batch's fsync is held"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first:
		t.Fatalf("ordinary write answered while its fsync is held (err %v)", err)
	default:
	}
	// Let the fsyncs through, one at a time, until both ordinary writes
	// are answered (the second may have reached the writer before the
	// urgent claim or after it).
	g.release <- nil
	deadline := time.After(5 * time.Second)
	for left := 2; left > 0; {
		select {
		case <-g.entered:
			g.release <- nil
		case err := <-first:
			if err != nil {
				t.Fatal(err)
			}
			left--
		case err := <-second:
			if err != nil {
				t.Fatal(err)
			}
			left--
		case <-deadline:
			t.Fatalf("%d ordinary writes not answered within 5s", left)
		}
	}
	if got := len(entriesOf(t, s, Note)); got != 2 {
		t.Fatalf("%d notes, want 2", got)
	}
}

// An urgent write answered before a failed fsync is the durability it gave
// up; after that failure the store refuses every write, urgent or not.
func TestUrgentAfterFailedFsync(t *testing.T) {
	s := openGated(t)
	g := gateSyncs(t, s)
	ctx := Urgent(context.Background())
	if err := await(t, async(func() error { return claimPause(ctx, s, "u-4") }), "urgent claim"); err != nil {
		t.Fatal(err)
	}
	await(t, g.entered, "the urgent claim's fsync")
	g.release <- errors.New("input/output error")
	testutil.Eventually(t, 5*time.Second, func() bool { return s.w.broken.Load() != nil }, "store not broken by the failed fsync")
	for name, write := range map[string]func() error{
		"urgent claim":   func() error { return claimPause(ctx, s, "u-5") },
		"urgent accept":  func() error { _, err := s.Accept(ctx, []alert.Alert{testAlert("u-6")}); return err },
		"ordinary write": func() error { _, err := s.Append(context.Background(), Entry{Type: Note}); return err },
	} {
		if err := write(); err == nil || !strings.Contains(err.Error(), "sync write-ahead log: input/output error") {
			t.Errorf("%s after a failed fsync: %v, want the fsync's error", name, err)
		}
	}
}
