package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Timing of the action loop.
const (
	claimWait      = 20 * time.Second // a claim's long poll
	heartbeatEvery = 5 * time.Second  // until a replica tells its lease
	// defaultActionTimeout bounds an action whose request names no timeout.
	defaultActionTimeout = 15 * time.Minute
)

// agentID is this agent's identity in claims: <node>/<random>, kept in the
// data directory so that a restarted agent answers for what it claimed.
func agentID(data, node string) (string, error) {
	path := filepath.Join(data, "agent-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); strings.HasPrefix(id, node+"/") {
			return id, nil
		}
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("make agent id: %w", err)
	}
	id := node + "/" + hex.EncodeToString(r[:])
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write agent id: %w", err)
	}
	return id, nil
}

// runningSet is the keys this process runs now.
type runningSet struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (r *runningSet) add(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[k] {
		return false
	}
	r.keys[k] = true
	return true
}

func (r *runningSet) remove(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.keys, k)
}

func (r *runningSet) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.keys))
	for k := range r.keys {
		out = append(out, k)
	}
	return out
}

// takeActions claims the actions addressed to this node, runs them with
// the node's runners and answers each, until ctx ends. Actions already
// running finish (each has its timeout) before it returns.
func (a *Agent) takeActions(ctx context.Context) {
	log := a.log.With("component", "actions")
	var work sync.WaitGroup
	defer work.Wait()
	var bg sync.WaitGroup
	defer bg.Wait()
	a.recoverCaptures() // before any capture of this process starts
	bg.Go(func() { a.heartbeats(ctx) })
	bg.Go(func() { a.resendOutcomes(ctx) })
	wait := 200 * time.Millisecond
	for ctx.Err() == nil {
		body, _ := json.Marshal(ClaimRequest{Node: a.cfg.Node, Agent: a.id, Max: 16, WaitMS: int(claimWait / time.Millisecond)})
		resp, err := a.deps.Replicas.Post(ctx, PathClaim, body, claimWait+10*time.Second)
		if err == nil && resp.Status != http.StatusOK {
			err = fmt.Errorf("claim actions at %s: status %d: %s", resp.From, resp.Status, snippet(resp.Body))
		}
		var cr ClaimResponse
		if err == nil {
			if cr, err = Decode[ClaimResponse](strings.NewReader(string(resp.Body))); err != nil {
				err = fmt.Errorf("claim actions at %s: %w", resp.From, err)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("claim actions", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 10*time.Second)
			continue
		}
		wait = 200 * time.Millisecond
		if cr.LeaseMS > 0 {
			a.beat.Store(int64(max(time.Duration(cr.LeaseMS)*time.Millisecond/3, 100*time.Millisecond)))
		}
		for _, w := range cr.Work {
			if !a.running.add(w.Key) {
				continue // this process runs it already; its lease ran out meanwhile
			}
			work.Go(func() {
				defer a.running.remove(w.Key)
				a.do(context.WithoutCancel(ctx), w)
			})
		}
	}
}

// do runs one claimed action, at most once: an outcome this agent
// recorded is sent again instead, and an action claimed before by an
// agent that stopped without answering is reported in doubt, not run.
func (a *Agent) do(ctx context.Context, w Work) {
	log := a.log.With("component", "actions", "key", w.Key, "action", w.Request.Action)
	o, found, err := a.ledger.get(w.Key)
	switch {
	case err != nil:
		log.Error("read the action ledger", "err", err)
		return // the claim runs out; answered when the ledger reads again
	case found:
		log.Info("action claimed again: answering with the recorded outcome", "status", o.Status)
	case w.Attempts > 1:
		o = Outcome{Status: StatusFailed, InDoubt: true,
			Error: fmt.Sprintf("in doubt: an agent of node %s claimed %s before and stopped without answering; not run again", a.cfg.Node, w.Request.Action)}
		log.Warn("action in doubt: not run again", "attempts", w.Attempts)
	default:
		o = a.run(ctx, w)
		if o.Status == StatusSucceeded {
			a.noteCapture(w, o.Result)
		}
	}
	o.Key, o.Node, o.Agent = w.Key, a.cfg.Node, a.id
	if !found {
		if err := a.ledger.put(o); err != nil {
			log.Error("record the outcome", "err", err)
		}
	}
	a.m.Actions.WithLabelValues(w.Request.Action, string(o.Status)).Inc()
	a.answer(ctx, o)
}

func (a *Agent) run(ctx context.Context, w Work) Outcome {
	r, ok := a.deps.Runners[w.Request.Action]
	if !ok {
		return Outcome{Status: StatusFailed, Error: fmt.Sprintf("run %s on node %s: the agent has no integration for it (configure it in the agent's config)", w.Request.Action, a.cfg.Node)}
	}
	timeout := time.Duration(w.Request.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultActionTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res, err := r.Run(ctx, w.Request.ActionRequest())
	a.log.Info("node action ran", "action", w.Request.Action, "key", w.Key, "container", w.Request.Container,
		"took", time.Since(start).Round(time.Millisecond), "err", err)
	switch {
	case err == nil:
		return Outcome{Status: StatusSucceeded, Result: res}
	case errors.Is(err, actions.ErrProtected):
		return Outcome{Status: StatusProtected, Error: err.Error()}
	default:
		return Outcome{Status: StatusFailed, Error: err.Error(), Retryable: actions.IsRetryable(err)}
	}
}

// answer sends an outcome until a replica recorded it or the request is
// closed; the ledger forgets it then. While no replica answers, the
// resender tries again.
func (a *Agent) answer(ctx context.Context, o Outcome) bool {
	body, _ := json.Marshal(o)
	resp, err := a.deps.Replicas.Post(ctx, PathResult, body, 30*time.Second)
	if err != nil {
		a.log.Warn("send an action's outcome; kept to send again", "key", o.Key, "err", err)
		return false
	}
	var ans ResultAnswer
	if resp.Status == http.StatusOK {
		ans, err = Decode[ResultAnswer](strings.NewReader(string(resp.Body)))
	}
	switch {
	case resp.Status == http.StatusOK && err == nil && (ans.Applied || (ans.State != "pending" && ans.State != "claimed")):
		if !ans.Applied {
			a.log.Warn("action's outcome not recorded: the request was closed already", "key", o.Key, "state", ans.State)
		}
		if err := a.ledger.drop(o.Key); err != nil {
			a.log.Error("forget a recorded outcome", "err", err)
		}
		return true
	case resp.Status == http.StatusNotFound:
		a.log.Error("action's outcome refused: the replicas know no such request", "key", o.Key)
		_ = a.ledger.drop(o.Key)
		return true
	}
	a.log.Warn("action's outcome not recorded yet; kept", "key", o.Key, "status", resp.Status, "answer", snippet(resp.Body))
	return false
}

// resendOutcomes sends again the outcomes no replica recorded (lost
// answers, a restart).
func (a *Agent) resendOutcomes(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		a.reportCaptures(ctx)
		pend, err := a.ledger.pending()
		if err != nil {
			a.log.Error("read the action ledger", "err", err)
		}
		for _, o := range pend {
			if a.running.has(o.Key) {
				continue
			}
			a.answer(ctx, o)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.resend:
		}
	}
}

// kick wakes the resender.
func (a *Agent) kick() {
	select {
	case a.resend <- struct{}{}:
	default:
	}
}

// heartbeats tell the replicas this agent lives, and extend the leases of
// the actions it runs.
func (a *Agent) heartbeats(ctx context.Context) {
	for {
		body, _ := json.Marshal(Heartbeat{Node: a.cfg.Node, Agent: a.id, Running: a.running.list()})
		if resp, err := a.deps.Replicas.Post(ctx, PathHeartbeat, body, 10*time.Second); err != nil && ctx.Err() == nil {
			a.log.Debug("heartbeat", "err", err)
		} else if err == nil && resp.Status != http.StatusOK {
			a.log.Warn("heartbeat refused", "status", resp.Status, "answer", snippet(resp.Body))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(a.beat.Load())):
		}
	}
}

func (r *runningSet) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[k]
}
