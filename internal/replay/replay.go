package replay

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
)

// Source is what replay reads: the kept alerts, the journal and the
// silences.
type Source interface {
	store.History
	store.Journal
	store.Silences
}

// Action is one planned action: the playbook, the action's index in it
// and its name.
type Action struct {
	Playbook string `json:"playbook"`
	Index    int    `json:"index"`
	Do       string `json:"do"`
}

func (a Action) String() string { return a.Playbook + "[" + strconv.Itoa(a.Index) + "] " + a.Do }

// Result is the comparison for one alert.
type Result struct {
	Alert      string    `json:"alert"`
	Rule       string    `json:"rule"`
	Container  string    `json:"container,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	// Silence is the silence in force at ReceivedAt that matches the alert.
	Silence string `json:"silence,omitempty"`
	// Added: the playbooks would take these and the journal has them not;
	// Removed: the journal has these and the playbooks would not take them.
	Added   []Action `json:"added"`
	Removed []Action `json:"removed"`
}

// Differs reports whether the playbooks would act otherwise.
func (r Result) Differs() bool { return len(r.Added) > 0 || len(r.Removed) > 0 }

// Report is a replay's outcome.
type Report struct {
	Since  time.Time `json:"since"`
	Alerts int       `json:"alerts"` // alerts replayed
	Differ int       `json:"differ"` // of them, those that differ
	// Results has every alert, in the order received.
	Results []Result `json:"results"`
}

// Run replays the alerts received at or after since through set.
func Run(ctx context.Context, src Source, set *playbooks.Set, since time.Time) (Report, error) {
	items, err := src.AlertsSince(ctx, since)
	if err != nil {
		return Report{}, fmt.Errorf("replay: %w", err)
	}
	// Every silence that could have been in force in the window; deleted
	// ones never were.
	list, err := src.ListSilences(ctx, store.SilenceFilter{EndsAfter: since})
	if err != nil {
		return Report{}, fmt.Errorf("replay: %w", err)
	}
	sils, err := silence.NewSet(list)
	if err != nil {
		return Report{}, fmt.Errorf("replay: %w", err)
	}
	rep := Report{Since: since, Alerts: len(items), Results: make([]Result, 0, len(items))}
	for i := range items {
		it := &items[i]
		entries, err := src.Entries(ctx, store.Filter{AlertID: it.Alert.ID})
		if err != nil {
			return Report{}, fmt.Errorf("replay: read journal of alert %s: %w", it.Alert.ID, err)
		}
		r := Result{Alert: it.Alert.ID, Rule: it.Alert.Rule, ReceivedAt: it.ReceivedAt}
		if it.Alert.InContainer() {
			r.Container = it.Alert.Field("container.id")
		}
		var sil *store.Silence
		if s, ok := sils.Match(&it.Alert, it.ReceivedAt); ok {
			sil, r.Silence = &s, s.ID
		}
		taken, failed := Journaled(entries)
		r.Added, r.Removed = diff(Would(set, &it.Alert, sil, failed), taken)
		if r.Differs() {
			rep.Differ++
		}
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

// Would returns the actions the playbooks would take for an alert muted
// by sil (nil: none), in order: the engine's decisions without running
// anything. failed are the actions that failed when the alert was
// processed: as then, a playbook stops after one unless it says
// on_error: continue (replay cannot know a run-time outcome otherwise).
func Would(set *playbooks.Set, a *alert.Alert, sil *store.Silence, failed map[Action]bool) []Action {
	var out []Action
	for _, plan := range set.Match(a) {
		for _, pa := range plan.Actions {
			spec := pa.Action.Spec
			act := Action{Playbook: plan.Playbook.Name, Index: pa.Index, Do: pa.Do}
			fails := false
			switch {
			case pa.Skip != "":
			case pa.Err != nil: // a render or `if` error fails the action
				out, fails = append(out, act), true
			case spec.Container && !a.InContainer():
			case sil != nil && silence.Mutes(*sil, spec):
			default:
				out, fails = append(out, act), failed[act]
			}
			if fails && pa.Action.OnError != playbooks.ErrorContinue {
				break
			}
		}
	}
	return out
}

// Journaled returns the actions the journal records as taken for one
// alert, from its entries in journal order: those planned and not
// skipped (action.skipped: `if` false, no container, silenced), and the
// steps of a dry-run playbook's plan (its playbook.matched entry, see
// store.PlanStep) not decided skipped. An action that was only recorded
// through a later step (a dry-run skip, a start) counts too. failed are those of them that failed. This is the one place
// that reads how plans are journaled.
func Journaled(entries []store.Entry) (taken []Action, failed map[Action]bool) {
	type key struct{ playbook, do string }
	failed = map[Action]bool{}
	state := map[Action]bool{}
	var order []Action
	last := map[key]Action{} // the action each later entry of (playbook, do) is about
	for _, e := range entries {
		if _, ok := e.Detail[store.PlanDetail]; ok && e.Type == store.PlaybookMatched {
			// A playbook in dry run: its whole plan is this one entry.
			plan, err := store.PlannedActions([]store.Entry{e})
			if err != nil {
				continue // not a plan the engine wrote; nothing to compare
			}
			for _, p := range plan {
				a := Action{Playbook: p.Playbook, Index: p.Index, Do: p.Action}
				if _, seen := state[a]; !seen {
					order = append(order, a)
				}
				state[a] = p.Decision != string(actions.StatusSkipped)
				if p.Decision == string(actions.StatusFailed) {
					failed[a] = true
				}
			}
			continue
		}
		if e.Playbook == "" || e.Action == "" {
			continue
		}
		k := key{e.Playbook, e.Action}
		switch e.Type {
		case store.ActionPlanned:
			idx, ok := indexOf(e.Detail)
			if !ok {
				continue
			}
			a := Action{Playbook: e.Playbook, Index: idx, Do: e.Action}
			last[k] = a
			if _, seen := state[a]; !seen {
				order = append(order, a)
			}
			state[a] = true
		case store.ActionSkipped:
			if a, ok := last[k]; ok {
				state[a] = false
			}
		case store.ActionSkippedDryRun, store.ActionStarted, store.ActionQueued, store.ActionHeldForApproval,
			store.ActionFailed, store.ActionBlockedProtected:
			a, ok := last[k]
			if !ok {
				// No action.planned entry before it: take its index
				// from the detail when there is one.
				idx, found := indexOf(e.Detail)
				if !found {
					continue
				}
				a = Action{Playbook: e.Playbook, Index: idx, Do: e.Action}
				last[k] = a
				order = append(order, a)
				state[a] = true
			}
			if e.Type == store.ActionFailed {
				failed[a] = true
			}
		}
	}
	for _, a := range order {
		if state[a] {
			taken = append(taken, a)
		}
	}
	return taken, failed
}

func indexOf(d map[string]any) (int, bool) {
	switch v := d["index"].(type) {
	case interface{ Int64() (int64, error) }: // json.Number
		n, err := v.Int64()
		return int(n), err == nil
	case float64:
		return int(v), true
	case int:
		return v, true
	}
	return 0, false
}

// diff returns what would is and journaled is not, and the reverse, each
// sorted by playbook and index.
func diff(would, journaled []Action) (added, removed []Action) {
	in := func(list []Action) map[Action]bool {
		m := make(map[Action]bool, len(list))
		for _, a := range list {
			m[a] = true
		}
		return m
	}
	w, j := in(would), in(journaled)
	added, removed = []Action{}, []Action{}
	for _, a := range would {
		if !j[a] {
			added = append(added, a)
		}
	}
	for _, a := range journaled {
		if !w[a] {
			removed = append(removed, a)
		}
	}
	less := func(l []Action) func(i, k int) bool {
		return func(i, k int) bool {
			if l[i].Playbook != l[k].Playbook {
				return l[i].Playbook < l[k].Playbook
			}
			return l[i].Index < l[k].Index
		}
	}
	sort.SliceStable(added, less(added))
	sort.SliceStable(removed, less(removed))
	return added, removed
}
