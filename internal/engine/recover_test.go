package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// refusingStore refuses every batch while down, as a store with a full
// disk does.
type refusingStore struct {
	Store
	down    atomic.Bool
	refused atomic.Int64
}

func (s *refusingStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	if s.down.Load() {
		s.refused.Add(1)
		return store.BatchResult{}, errors.New("apply batch: database or disk is full")
	}
	return s.Store.Apply(ctx, b)
}

// TestClaimedWorkResumesWhenTheStoreRecovers: alerts claimed while the
// store refuses writes are finished within the retry backoff once it
// recovers, not after their lease (a minute here).
func TestClaimedWorkResumesWhenTheStoreRecovers(t *testing.T) {
	f := newFixture(t, Config{Lease: time.Minute}, containPlaybook)
	rs := &refusingStore{Store: f.st}
	rs.down.Store(true)
	f.eng.deps.Store = rs
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	testutil.Eventually(t, 10*time.Second, func() bool { return rs.refused.Load() >= 2 }, "the store refused the run and it was tried again")
	if st, err := f.st.Stats(context.Background()); err != nil || st.InboxPending+st.InboxProcessing != 1 {
		t.Fatalf("while the store refuses, the alert must stay claimed: %+v %v", st, err)
	}
	recovered := time.Now()
	rs.down.Store(false)
	testutil.Eventually(t, 10*time.Second, func() bool {
		st, err := f.st.Stats(context.Background())
		return err == nil && st.InboxPending+st.InboxProcessing == 0
	}, "the alert finished after the store recovered")
	if took := time.Since(recovered); took > 10*time.Second {
		t.Errorf("finished %v after recovery", took)
	}
	es, _ := f.st.Entries(context.Background(), store.Filter{AlertID: a.ID})
	if count(es, store.PlaybookMatched) != 1 || count(es, store.Note) != 1 || f.rec.count("container.pause") != 1 {
		t.Errorf("the retry repeated or lost work: pause %d\n%s", f.rec.count("container.pause"), dump(es))
	}
}
