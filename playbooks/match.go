package playbooks

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/glob"
)

// Set is a loaded, ordered set of playbooks with a rule-name index.
type Set struct {
	books []*Playbook
	// byRule lists, per exact rule name, the positions (in books) of the
	// playbooks naming it; always lists playbooks every alert must look at
	// (globs or no rule filter). Both are sorted.
	byRule map[string][]int
	always []int
}

func newSet(books []*Playbook) *Set {
	sort.SliceStable(books, func(i, j int) bool {
		if books[i].Order != books[j].Order {
			return books[i].Order < books[j].Order
		}
		return books[i].position < books[j].position
	})
	s := &Set{books: books, byRule: map[string][]int{}}
	for i, b := range books {
		if len(b.Match.Rules) == 0 || len(b.Match.globbed) > 0 {
			s.always = append(s.always, i)
		}
		for _, r := range b.Match.exact {
			if list := s.byRule[r]; len(list) == 0 || list[len(list)-1] != i {
				s.byRule[r] = append(list, i)
			}
		}
	}
	return s
}

// Playbooks returns the playbooks in matching order.
func (s *Set) Playbooks() []*Playbook { return s.books }

// Lookup finds a playbook by name.
func (s *Set) Lookup(name string) (*Playbook, bool) {
	for _, b := range s.books {
		if b.Name == name {
			return b, true
		}
	}
	return nil, false
}

// Plan is a matched playbook and its rendered actions.
type Plan struct {
	Playbook *Playbook
	Actions  []Planned
}

// Planned is one action of a plan, templates rendered and `if` evaluated.
type Planned struct {
	Index  int // position in the playbook's actions
	Action *Action
	Do     string
	With   actions.Params
	// Skip is why the action will not run ("if was false"); "" when it runs.
	Skip string
	// Err is a render or `if` evaluation failure; the action fails with it.
	Err error
}

// Skipped is a playbook that did not match, with the first reason.
type Skipped struct {
	Playbook *Playbook
	Reason   string
}

// Match returns the plans of the playbooks the alert triggers, in order:
// Select, then each playbook's Plan.
func (s *Set) Match(a *alert.Alert) []Plan {
	books, env := s.selectBooks(a)
	if len(books) == 0 {
		return nil
	}
	plans := make([]Plan, len(books))
	for i, b := range books {
		plans[i] = b.plan(a, env)
	}
	return plans
}

// Select returns the playbooks the alert triggers, in order, without
// planning their actions. It only looks at candidate playbooks (by the rule
// name index).
func (s *Set) Select(a *alert.Alert) []*Playbook {
	books, _ := s.selectBooks(a)
	return books
}

// Plan renders the playbook's actions for an alert.
func (b *Playbook) Plan(a *alert.Alert) Plan { return b.plan(a, nil) }

func (s *Set) selectBooks(a *alert.Alert) ([]*Playbook, *Env) {
	var books []*Playbook
	var env *Env
	exact := s.byRule[a.Rule]
	i, j := 0, 0
	for i < len(exact) || j < len(s.always) {
		var pos int
		switch {
		case j >= len(s.always) || (i < len(exact) && exact[i] < s.always[j]):
			pos, i = exact[i], i+1
		case i >= len(exact) || s.always[j] < exact[i]:
			pos, j = s.always[j], j+1
		default: // same playbook in both lists
			pos, i, j = exact[i], i+1, j+1
		}
		b := s.books[pos]
		if b.check(a, &env, false) != "" {
			continue
		}
		books = append(books, b)
		if !b.Continue {
			break
		}
	}
	return books, env
}

// Explain evaluates every playbook and says, for those that do not match,
// the first reason. It is the slow path behind `riposte playbook test`.
func (s *Set) Explain(a *alert.Alert) (matched []Plan, skipped []Skipped) {
	var env *Env
	var stoppedBy string
	for _, b := range s.books {
		if stoppedBy != "" {
			skipped = append(skipped, Skipped{Playbook: b, Reason: fmt.Sprintf("playbook %q matched first with continue: false", stoppedBy)})
			continue
		}
		if reason := b.check(a, &env, true); reason != "" {
			skipped = append(skipped, Skipped{Playbook: b, Reason: reason})
			continue
		}
		matched = append(matched, b.plan(a, env))
		if !b.Continue {
			stoppedBy = b.Name
		}
	}
	return matched, skipped
}

// check returns "" when the playbook matches, else the first reason it does
// not; the reason is only spelt out when explain is set (the hot path does
// not pay for formatting). env is built on first use and shared across
// playbooks.
func (b *Playbook) check(a *alert.Alert, env **Env, explain bool) string {
	const no = "no"
	m := &b.Match
	if len(m.Rules) > 0 && !m.matchesRule(a.Rule) {
		if !explain {
			return no
		}
		return fmt.Sprintf("rule %q not in %s", a.Rule, quoteList(m.Rules))
	}
	if m.Priority != nil && !m.Priority.Holds(a.Priority) {
		if !explain {
			return no
		}
		return m.Priority.failure(a.Priority)
	}
	for _, t := range m.Tags {
		if !a.HasTag(t) {
			if !explain {
				return no
			}
			return fmt.Sprintf("tag %q missing", t)
		}
	}
	if len(m.Sources) > 0 && !contains(m.Sources, a.Source) {
		if !explain {
			return no
		}
		return fmt.Sprintf("source %q not in %s", a.Source, quoteList(m.Sources))
	}
	if m.when != nil {
		if *env == nil {
			e := NewEnv(a)
			*env = &e
		}
		ok, err := runCondition(m.when, *env)
		if err != nil {
			return "when failed: " + firstLine(err.Error())
		}
		if !ok {
			return "when was false"
		}
	}
	return ""
}

func (m *Match) matchesRule(rule string) bool {
	for _, r := range m.exact {
		if r == rule {
			return true
		}
	}
	for _, g := range m.globbed {
		if glob.Match(g, rule) {
			return true
		}
	}
	return false
}

func (b *Playbook) plan(a *alert.Alert, env *Env) Plan {
	p := Plan{Playbook: b, Actions: make([]Planned, 0, len(b.Actions))}
	var data *TemplateData
	for i := range b.Actions {
		act := &b.Actions[i]
		pl := Planned{Index: i, Action: act, Do: act.Do, With: make(actions.Params, len(act.With))}
		if act.cond != nil {
			if env == nil {
				e := NewEnv(a)
				env = &e
			}
			ok, err := runCondition(act.cond, env)
			switch {
			case err != nil:
				pl.Err = fmt.Errorf("evaluate if: %s", firstLine(err.Error()))
			case !ok:
				pl.Skip = "if was false"
			}
		}
		for name, v := range act.With {
			if v.Template == nil {
				pl.With[name] = v.Literal
				continue
			}
			var out string
			var err error
			if v.plain != nil {
				out = v.plain.render(a)
			} else {
				if data == nil {
					d := NewTemplateData(a)
					data = &d
				}
				out, err = renderTemplate(v.Template, *data)
			}
			if err != nil && pl.Err == nil {
				pl.Err = fmt.Errorf("render with.%s: %s", name, templateError(err))
			}
			if p, ok := act.Spec.Param(name); ok && (p.Type != actions.String || len(p.Enum) > 0) && err == nil {
				if cerr := p.Check(out); cerr != nil && pl.Err == nil {
					pl.Err = fmt.Errorf("with.%s rendered to %q: %v", name, out, cerr)
				}
			}
			pl.With[name] = out
		}
		p.Actions = append(p.Actions, pl)
	}
	return p
}

func renderTemplate(t *template.Template, data TemplateData) (string, error) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
