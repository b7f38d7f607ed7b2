package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Forwarder sends the spooled alerts to the replicas' intake (POST
// /v1/alerts), oldest first, in batches, and removes them from the spool
// once a replica answered 2xx. A replica outage (no answer, 5xx, 503 with
// Retry-After) is retried with backoff; nothing is removed that was not
// acknowledged. An alert the intake refuses for good (400) is set aside in
// the spool's bad/ directory, counted and logged.
type Forwarder struct {
	spool    *Spool
	replicas *Replicas
	log      *slog.Logger
	m        *Metrics
	batch    int
	wake     chan struct{}
	acked    atomic.Int64 // alerts acknowledged

	// Backoff between tries while no replica takes the alerts.
	minWait, maxWait time.Duration
}

func newForwarder(s *Spool, r *Replicas, log *slog.Logger, m *Metrics, batch int) *Forwarder {
	return &Forwarder{spool: s, replicas: r, log: log, m: m, batch: batch, wake: make(chan struct{}, 1),
		minWait: 200 * time.Millisecond, maxWait: 10 * time.Second}
}

// Notify says alerts were spooled.
func (f *Forwarder) Notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// forwardTimeout bounds one POST: the intake answers once its store
// committed, in milliseconds when healthy.
const forwardTimeout = 15 * time.Second

// Run forwards until ctx ends.
func (f *Forwarder) Run(ctx context.Context) error {
	wait := f.minWait
	size := f.batch
	down := false
	for {
		f.m.SpoolDepth.Set(float64(f.spool.Len()))
		items, bad, err := f.spool.Peek(size)
		for _, b := range bad {
			f.m.SpoolRejected.WithLabelValues("corrupt").Inc()
			f.log.Error("spooled alert unreadable; set aside, not sent", "file", b)
		}
		if err != nil {
			f.log.Error("read spool", "err", err)
		}
		if len(items) == 0 {
			if !f.sleep(ctx, f.wake, time.Second) {
				return nil
			}
			continue
		}
		retryAfter, err := f.send(ctx, items)
		switch {
		case err == nil:
			if down {
				f.log.Info("replicas reachable again; spooled alerts sent", "spooled", f.spool.Len())
				down = false
			}
			wait, size = f.minWait, f.batch
			continue
		case errors.Is(err, errSplit):
			size = 1 // find the alert the intake refuses
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if !down {
			f.log.Warn("replicas unreachable; alerts stay spooled", "spooled", f.spool.Len(), "err", err)
			down = true
		} else {
			f.log.Debug("replicas still unreachable", "spooled", f.spool.Len(), "err", err)
		}
		d := max(wait, retryAfter)
		if !f.sleep(ctx, nil, d) {
			return nil
		}
		wait = min(2*wait, f.maxWait)
	}
}

var errSplit = errors.New("send alerts one at a time")

// send posts items as one request and applies the answer to the spool.
func (f *Forwarder) send(ctx context.Context, items []Spooled) (time.Duration, error) {
	list := make([]json.RawMessage, len(items))
	for i, it := range items {
		b, err := json.Marshal(it.Alert)
		if err != nil {
			return 0, fmt.Errorf("encode alert %s: %w", it.Alert.ID, err)
		}
		list[i] = b
	}
	body, _ := json.Marshal(list)
	start := time.Now()
	resp, err := f.replicas.Post(ctx, "/v1/alerts", body, forwardTimeout)
	if err != nil {
		var u *Unavailable
		var ra time.Duration
		if errors.As(err, &u) {
			ra = u.RetryAfter
		}
		f.m.ForwardErrors.WithLabelValues("unavailable").Inc()
		return ra, err
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	switch {
	case resp.Status >= 200 && resp.Status < 300:
		f.m.ForwardSeconds.Observe(time.Since(start).Seconds())
		f.m.Forwarded.Add(float64(len(items)))
		f.acked.Add(int64(len(items)))
		if err := f.spool.Remove(seqs...); err != nil {
			// Sent again later: the intake collapses duplicates of one id.
			f.log.Error("remove forwarded alerts from the spool", "err", err)
		}
		return 0, nil
	case (resp.Status == http.StatusBadRequest || resp.Status == http.StatusRequestEntityTooLarge) && len(items) > 1:
		return 0, errSplit
	case resp.Status == http.StatusBadRequest || resp.Status == http.StatusRequestEntityTooLarge:
		where, rerr := f.spool.Reject(items[0].Seq)
		f.m.SpoolRejected.WithLabelValues("refused").Inc()
		f.log.Error("the intake refused an alert; set aside, not sent again", "alert", items[0].Alert.ID, "file", where,
			"status", resp.Status, "answer", snippet(resp.Body), "err", rerr)
		return 0, nil
	default:
		// 401/403 (a token not accepted), 429: keep the alerts, try again.
		f.m.ForwardErrors.WithLabelValues(fmt.Sprint(resp.Status)).Inc()
		return 0, fmt.Errorf("post alerts to %s: status %d: %s", resp.From, resp.Status, snippet(resp.Body))
	}
}

// sleep waits d, or until wake (when not nil) or ctx ends; false when ctx
// ended.
func (f *Forwarder) sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}
