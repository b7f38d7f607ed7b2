package engine

import (
	"context"
	"slices"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
)

// settleAtAccept processes, before they are stored, the alerts whose processing
// runs no responder: no playbook matches them, or only playbooks in dry
// run. What processing journals for such an alert (action.enforced,
// alert.silenced, each dry-run playbook's plan) is known before its
// incident is, so it is handed to the store with the alert
// (store.AcceptSettled) and written in the accept's transaction: the alert
// is processed when its 202 goes out, at the cost of its accept alone.
// settled[i] is nil for an alert that needs the workers; work counts them.
func (e *Engine) settleAtAccept(ctx context.Context, alerts []alert.Alert, now time.Time) (settled []*store.Settled, work int) {
	set := e.playbooks.Load()
	settled = make([]*store.Settled, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		plans := set.Match(a)
		if slices.ContainsFunc(plans, func(p playbooks.Plan) bool { return !e.dryRun(p.Playbook) }) {
			work++
			continue
		}
		st := &store.Settled{}
		if ent, ok := enforcedEntry(a); ok {
			st.Entries = append(st.Entries, ent)
		}
		sil := e.silenceAt(ctx, a, now)
		if sil != nil {
			st.Entries = append(st.Entries, silencedEntry(a.ID, *sil, store.TheIncident))
		}
		for _, plan := range plans {
			e.m.PlaybookMatches.WithLabelValues(plan.Playbook.Name).Inc()
			st.Entries = append(st.Entries, e.dryEntry(a, store.TheIncident, plan, false, sil))
		}
		settled[i] = st
	}
	return settled, work
}

// silenceAt returns the silence in force at the time given that mutes a,
// if any (see silenced).
func (e *Engine) silenceAt(ctx context.Context, a *alert.Alert, at time.Time) *store.Silence {
	if e.deps.Silences == nil {
		return nil
	}
	s, ok, err := e.deps.Silences.Match(ctx, a, at)
	if err != nil {
		e.log.Error("match silences", "alert", a.ID, "err", err)
	}
	if !ok {
		return nil
	}
	return &s
}

// settledDone finishes what follows the accept of settled alerts: their
// records for the stream outputs and the processing time.
func (e *Engine) settledDone(ctx context.Context, alerts []alert.Alert, acc []store.Accepted, settled []*store.Settled, incidents []string, start time.Time) {
	took := e.now().Sub(start).Seconds()
	for i := range alerts {
		if settled[i] == nil || acc[i].Duplicate {
			continue
		}
		e.streamAlert(ctx, &alerts[i], incidents[i])
		e.m.ProcessSeconds.Observe(took)
	}
}
