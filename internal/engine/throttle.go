package engine

import (
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
)

// Throttling, per incident and notification action: the first notification
// goes out at once; later ones within the interval are held in the outbox
// and folded into one update (the latest alert and how many it stands
// for), which goes out when the interval has passed. The store keeps the
// fold (store.Fold), so that a restart or another replica delivers it;
// every held notification is journaled notification.throttled, and the
// update's notification.sent says how many alerts it carried.

// throttle is the interval of one notification action: its `throttle`
// parameter, else its notifier's default.
func (e *Engine) throttle(action string, with actions.Params) (time.Duration, error) {
	d, err := with.Duration(actions.ParamThrottle, e.deps.Throttle[action])
	if err != nil {
		return 0, fmt.Errorf("throttle %s: %w", action, err)
	}
	return d, nil
}

// throttleKey groups the notifications that fold together: one action's
// about one incident.
func throttleKey(action, incident string) string { return action + "/" + incident }

// foldOf is the Fold of a delivered outbox message: set when the store
// held it (it stands for it.Folded alerts).
func (e *Engine) foldOf(it store.OutboxItem, req actions.Request) *actions.Fold {
	if it.Folded <= 0 {
		return nil
	}
	every, err := e.throttle(req.Action, req.Params)
	if err != nil {
		every = e.deps.Throttle[req.Action]
	}
	return &actions.Fold{Alerts: it.Folded, Every: every}
}
