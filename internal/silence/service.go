package silence

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/riposte-sec/riposte/internal/store"
)

// Add checks s (its matcher compiles, store.CheckSilence holds) and
// stores it with its silence.created entry. A silence of scope all without
// an approver is stored pending: Approve makes it active.
func Add(ctx context.Context, st store.Silences, s store.Silence) (store.Silence, error) {
	if _, err := Compile(s.Matcher); err != nil {
		return store.Silence{}, fmt.Errorf("add silence: %w", err)
	}
	if err := checkText(s.Comment, maxComment); err != nil {
		return store.Silence{}, fmt.Errorf("add silence: comment: %w", err)
	}
	detail := map[string]any{
		"matcher": matcherDetail(s.Matcher), "scope": string(s.Scope),
		"starts_at": store.FormatTime(s.StartsAt), "ends_at": store.FormatTime(s.EndsAt), "comment": s.Comment,
		"state": string(store.InitialSilenceState(s)),
	}
	if s.ApprovedBy != "" {
		detail["approved_by"] = s.ApprovedBy
	}
	return st.AddSilence(ctx, s, store.Entry{Type: store.SilenceCreated, Actor: s.CreatedBy, Detail: detail})
}

// Approve makes a pending silence active, journaled; by must be another
// person than its creator: "cli:jane" and "cli:jane via socket" are one
// person.
func Approve(ctx context.Context, st store.Silences, id, by string) (store.Silence, error) {
	cur, err := st.GetSilence(ctx, id)
	if err != nil {
		return store.Silence{}, fmt.Errorf("approve silence %s: %w", id, err)
	}
	if person(cur.CreatedBy) == person(by) {
		return store.Silence{}, fmt.Errorf("approve silence %s: the approver must be another person than the creator %s: %w", id, cur.CreatedBy, store.ErrState)
	}
	return st.ApproveSilence(ctx, id, by, store.Entry{Type: store.SilenceApproved, Actor: by})
}

// person is an actor without the way it came in.
func person(actor string) string { return strings.TrimSuffix(actor, " via socket") }

// ErrEnded: the silence had ended (or been deleted) already.
var ErrEnded = errors.New("silence already ended")

// End expires (or, with del, deletes) a silence now, journaled.
func End(ctx context.Context, st store.Silences, id, by string, del bool) (store.Silence, error) {
	typ, verb := store.SilenceExpired, "expire"
	if del {
		typ, verb = store.SilenceDeleted, "delete"
	}
	s, changed, err := st.EndSilence(ctx, id, store.SilenceEnd{Delete: del, By: by}, store.Entry{Type: typ, Actor: by})
	if err != nil {
		return store.Silence{}, err
	}
	if !changed {
		return s, fmt.Errorf("%s silence %s: %w (%s)", verb, id, ErrEnded, s.State)
	}
	return s, nil
}

// matcherDetail is the matcher as a journal detail: only what is set.
func matcherDetail(m store.SilenceMatcher) map[string]any {
	d := map[string]any{}
	add := func(k string, v []string) {
		if len(v) > 0 {
			l := make([]any, len(v))
			for i, s := range v {
				l[i] = s
			}
			d[k] = l
		}
	}
	add("rules", m.Rules)
	add("tags", m.Tags)
	add("containers", m.Containers)
	add("images", m.Images)
	add("pods", m.Pods)
	add("namespaces", m.Namespaces)
	if m.Priority != "" {
		d["priority"] = m.Priority
	}
	if m.When != "" {
		d["when"] = m.When
	}
	return d
}
