package silence

import (
	"errors"
	"fmt"
	"strings"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/glob"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
)

// Limits of a matcher: enough for any hand-written silence, small enough
// that matching stays cheap on the hot path.
const (
	maxPatterns   = 64
	maxPatternLen = 256
	maxWhenLen    = 2048
)

// Matcher is a compiled store.SilenceMatcher.
type Matcher struct {
	rules, containers, images, pods, namespaces []string
	tags                                        []string
	priority                                    *playbooks.PriorityMatch
	when                                        *playbooks.Condition
}

// Compile checks a matcher and compiles it; the error names every bad
// field.
func Compile(m store.SilenceMatcher) (*Matcher, error) {
	if m.Empty() {
		return nil, errors.New("compile matcher: no criterion set (rule, priority, tag, container, image, pod, namespace or when)")
	}
	c := &Matcher{}
	var errs []error
	patterns := func(field string, list []string) []string {
		if len(list) > maxPatterns {
			errs = append(errs, fmt.Errorf("%s: more than %d patterns", field, maxPatterns))
			return nil
		}
		for i, p := range list {
			if err := checkText(p, maxPatternLen); err != nil || strings.TrimSpace(p) == "" {
				if err == nil {
					err = errors.New("empty")
				}
				errs = append(errs, fmt.Errorf("%s[%d]: %w", field, i, err))
			}
		}
		return list
	}
	c.rules = patterns("rules", m.Rules)
	c.tags = patterns("tags", m.Tags)
	c.containers = patterns("containers", m.Containers)
	c.images = patterns("images", m.Images)
	c.pods = patterns("pods", m.Pods)
	c.namespaces = patterns("namespaces", m.Namespaces)
	if m.Priority != "" {
		p, err := playbooks.ParsePriorityMatch(m.Priority)
		if err != nil {
			errs = append(errs, fmt.Errorf("priority: %w", err))
		} else {
			c.priority = &p
		}
	}
	if m.When != "" {
		if err := checkText(m.When, maxWhenLen); err != nil {
			errs = append(errs, fmt.Errorf("when: %w", err))
		} else if cond, err := playbooks.CompileCondition(m.When); err != nil {
			errs = append(errs, fmt.Errorf("when: %w", err))
		} else {
			c.when = cond
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("compile matcher: %w", err)
	}
	return c, nil
}

// Match reports whether the alert meets every criterion. A condition that
// fails to evaluate does not match: a silence mutes only what it surely
// names.
func (m *Matcher) Match(a *alert.Alert) bool {
	if len(m.rules) > 0 && !anyGlob(m.rules, a.Rule) {
		return false
	}
	if m.priority != nil && !m.priority.Holds(a.Priority) {
		return false
	}
	for _, t := range m.tags {
		if !a.HasTag(t) {
			return false
		}
	}
	if len(m.containers) > 0 {
		c := a.Container()
		if !anyGlob(m.containers, c.Name) && !anyGlob(m.containers, c.ID) {
			return false
		}
	}
	if len(m.images) > 0 {
		c := a.Container()
		if c.Image == "" || (!anyGlob(m.images, c.Image) && (c.Tag == "" || !anyGlob(m.images, c.Image+":"+c.Tag))) {
			return false
		}
	}
	if len(m.pods) > 0 && !anyGlob(m.pods, a.Field("k8s.pod.name")) {
		return false
	}
	if len(m.namespaces) > 0 && !anyGlob(m.namespaces, a.Field("k8s.ns.name")) {
		return false
	}
	if m.when != nil {
		ok, err := m.when.Eval(a)
		if err != nil || !ok {
			return false
		}
	}
	return true
}

// anyGlob reports whether s is non-empty and matches one of the patterns.
func anyGlob(patterns []string, s string) bool {
	if s == "" {
		return false
	}
	for _, p := range patterns {
		if glob.Match(p, s) {
			return true
		}
	}
	return false
}

// Mutes reports whether a silence in force mutes an action: scope all
// mutes every action, scope notify the notifications.
func Mutes(s store.Silence, spec actions.Spec) bool {
	return s.Scope == store.ScopeAll || spec.Notification
}

// checkText refuses text that could garble the journal or a terminal:
// invalid UTF-8, control and format characters, or more than max bytes.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if err := store.CheckText(s); err != nil {
		return err
	}
	for i, r := range s {
		if isControl(r) {
			return fmt.Errorf("control or format character %U at byte %d", r, i)
		}
	}
	return nil
}
