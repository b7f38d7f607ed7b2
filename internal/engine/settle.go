package engine

import (
	"context"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

// Settling: a run's last batch (what its alerts recorded without a round
// trip of their own, and their finish) goes to one settler goroutine, which
// writes the last batches of every run waiting, of any container, in one
// store request. The worker that processed the run takes the next one at
// once instead of waiting for the batch's fsync; the run's container waits
// for it (its next run starts only once this one is settled), so a
// container's journal stays in order.
//
// Without it, a trickle of alerts over many containers (a run of one alert
// each) settles one run per worker per fsync: four workers, four alerts per
// fsync. With it, one fsync settles every run processed meanwhile.

// settleReq is one run's last batch.
type settleReq struct {
	batch  store.Batch
	queued bool // some update puts messages in the outbox
	start  time.Time
	done   chan error
}

// maxSettle bounds the alerts one settle request finishes.
const maxSettle = 1024

// settleRun hands b and the alerts to finish to the settler and returns a
// channel that yields the outcome once durable. Without a settler (the
// engine is not running: tests calling process) it writes at once.
func (e *Engine) settleRun(ctx context.Context, b *batch, finish []string, start time.Time) <-chan error {
	r := &settleReq{batch: store.Batch{Actions: b.updates, Finish: finish}, queued: b.queued, start: start, done: make(chan error, 1)}
	b.updates, b.queued = nil, false
	if e.settles == nil {
		e.settleGroup(ctx, []*settleReq{r})
	} else {
		e.settles <- r
	}
	return r.done
}

// settleLoop writes settle requests until reqs is closed, taking every
// request waiting at once.
func (e *Engine) settleLoop(ctx context.Context, reqs <-chan *settleReq) {
	for r := range reqs {
		group, n := []*settleReq{r}, len(r.batch.Finish)
	more:
		for n < maxSettle {
			select {
			case r, ok := <-reqs:
				if !ok {
					break more
				}
				group = append(group, r)
				n += len(r.batch.Finish)
			default:
				break more
			}
		}
		e.settleGroup(ctx, group)
	}
}

// settleGroup applies the group's batches in one store request; when that
// fails, each alone, so that one run's failure is only its own.
func (e *Engine) settleGroup(ctx context.Context, group []*settleReq) {
	var all store.Batch
	for _, r := range group {
		all.Actions = append(all.Actions, r.batch.Actions...)
		all.Finish = append(all.Finish, r.batch.Finish...)
	}
	_, err := e.deps.Store.Apply(ctx, all)
	if err != nil && len(group) > 1 {
		for _, r := range group {
			e.settled(r, e.apply(ctx, r))
		}
		return
	}
	for _, r := range group {
		e.settled(r, err)
	}
}

func (e *Engine) apply(ctx context.Context, r *settleReq) error {
	_, err := e.deps.Store.Apply(ctx, r.batch)
	return err
}

// settled reports a run's outcome and its processing time.
func (e *Engine) settled(r *settleReq, err error) {
	if err != nil {
		// Left claimed: the lease runs out and they are processed again;
		// what was recorded is not recorded twice.
		e.log.Error("finish alerts", "alerts", len(r.batch.Finish), "err", err)
	} else if r.queued {
		e.notifyOutbox()
	}
	took := e.now().Sub(r.start).Seconds()
	for range r.batch.Finish {
		e.m.ProcessSeconds.Observe(took)
	}
	r.done <- err
}
