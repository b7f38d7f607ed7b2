package silence

import (
	"errors"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// Set is a compiled set of silences.
type Set struct {
	list []compiled
}

type compiled struct {
	s store.Silence
	m *Matcher
}

// NewSet compiles silences. One that does not compile (written by another
// version, say) is left out and named in the error; the others are kept.
func NewSet(ss []store.Silence) (*Set, error) {
	set := &Set{list: make([]compiled, 0, len(ss))}
	var errs []error
	for _, s := range ss {
		m, err := Compile(s.Matcher)
		if err != nil {
			errs = append(errs, fmt.Errorf("silence %s: %w", s.ID, err))
			continue
		}
		set.list = append(set.list, compiled{s: s, m: m})
	}
	return set, errors.Join(errs...)
}

// Len is how many silences the set holds.
func (s *Set) Len() int { return len(s.list) }

// Match returns the silence that mutes the alert at time at: of those in
// force then that match it, one of scope all if any (it mutes more), else
// the first by start time.
func (s *Set) Match(a *alert.Alert, at time.Time) (store.Silence, bool) {
	var found *store.Silence
	for i := range s.list {
		c := &s.list[i]
		if !c.s.InForce(at) || !c.m.Match(a) {
			continue
		}
		if c.s.Scope == store.ScopeAll {
			return c.s, true
		}
		if found == nil {
			found = &c.s
		}
	}
	if found == nil {
		return store.Silence{}, false
	}
	return *found, true
}
