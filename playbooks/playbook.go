package playbooks

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// Playbook is one loaded, validated playbook.
type Playbook struct {
	Name        string
	Description string
	Order       int
	Match       Match
	// Continue is false when a match must stop later playbooks. Default true.
	Continue bool
	DryRun   bool
	Approval *Approval
	Actions  []Action

	// Where it was defined.
	File string
	Line int

	position int // index in load order, for stable sorting
}

// Match holds the criteria; every one that is set must hold.
type Match struct {
	Rules    []string // glob patterns, any of
	Priority *PriorityMatch
	Tags     []string // all of
	Sources  []string // any of
	When     string   // expr source
	when     *vm.Program
	exact    []string // rules without glob characters
	globbed  []string // rules with glob characters
}

// Op is a comparison in a priority match.
type Op string

// Comparisons.
const (
	OpGE Op = ">="
	OpGT Op = ">"
	OpLE Op = "<="
	OpLT Op = "<"
	OpEQ Op = "="
)

// PriorityMatch is a parsed `priority: ">=warning"`.
type PriorityMatch struct {
	Op       Op
	Priority alert.Priority
}

// ParsePriorityMatch parses ">=warning", "<Error", "=notice" or a bare name
// (exact match).
func ParsePriorityMatch(s string) (PriorityMatch, error) {
	t := strings.TrimSpace(s)
	op := OpEQ
	for _, o := range []Op{OpGE, OpLE, OpGT, OpLT, OpEQ} {
		if strings.HasPrefix(t, string(o)) {
			op, t = o, strings.TrimSpace(t[len(o):])
			break
		}
	}
	p, err := alert.ParsePriority(t)
	if err != nil {
		return PriorityMatch{}, err
	}
	return PriorityMatch{Op: op, Priority: p}, nil
}

// Holds reports whether p satisfies the match.
func (m PriorityMatch) Holds(p alert.Priority) bool {
	switch m.Op {
	case OpGE:
		return p >= m.Priority
	case OpGT:
		return p > m.Priority
	case OpLE:
		return p <= m.Priority
	case OpLT:
		return p < m.Priority
	}
	return p == m.Priority
}

// failure says why p does not satisfy the match: the negated comparison.
func (m PriorityMatch) failure(p alert.Priority) string {
	neg := map[Op]string{OpGE: "<", OpGT: "<=", OpLE: ">", OpLT: ">=", OpEQ: "!="}[m.Op]
	return fmt.Sprintf("priority %s %s %s", p, neg, m.Priority)
}

func (m PriorityMatch) String() string { return string(m.Op) + m.Priority.String() }

// OnTimeout is what happens to gated actions when nobody answers in time.
type OnTimeout string

// Timeout outcomes.
const (
	TimeoutAbort   OnTimeout = "abort"
	TimeoutProceed OnTimeout = "proceed"
)

// Approval is a human gate for the actions marked `gated`.
type Approval struct {
	Approvers []string // Slack user ids (U…) or user groups (@handle or S…)
	Timeout   time.Duration
	OnTimeout OnTimeout
}

// OnError is what a failed action does to the remaining actions.
type OnError string

// Failure policies.
const (
	ErrorStop     OnError = "stop"
	ErrorContinue OnError = "continue"
)

// Action is one step of a playbook.
type Action struct {
	Do      string
	With    map[string]Value
	If      string
	Gated   bool
	OnError OnError
	Line    int
	Spec    actions.Spec
	cond    *vm.Program
}

// Value is one `with` value: a literal as YAML gave it, or a template.
type Value struct {
	Literal  any
	Template *template.Template // set when Literal is a string containing "{{"
	// plain is Template when it only prints the alert's text fields (see
	// plainTemplate); nil otherwise, and in a Value made by hand.
	plain *plainTemplate
}
