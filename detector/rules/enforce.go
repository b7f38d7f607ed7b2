package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// Signal is what a rule marked `enforce:` sends, in the kernel, to the
// process whose exec matched it.
type Signal int

// Signals a rule may enforce with.
const (
	SigKill Signal = 9  // the process dies before its first instruction
	SigStop Signal = 19 // the process stops before its first instruction; SIGCONT or SIGKILL it
)

func (s Signal) String() string {
	switch s {
	case SigKill:
		return "SIGKILL"
	case SigStop:
		return "SIGSTOP"
	}
	return fmt.Sprintf("signal %d", int(s))
}

// UnmarshalText reads sigkill or sigstop, in any case.
func (s *Signal) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "sigkill":
		*s = SigKill
	case "sigstop":
		*s = SigStop
	default:
		return fmt.Errorf("unknown signal %q (want sigkill or sigstop)", string(b))
	}
	return nil
}

// commLen is the kernel's TASK_COMM_LEN less the NUL: proc.name is the
// task's comm, at most 15 bytes, so a longer name never matches.
const commLen = 15

// pathLen bounds an enforced path (ENF_PATH_LEN in bpf/enforce.c, less
// the NUL).
const pathLen = 255

// Enforcement is what the kernel does for a rule marked `enforce:`: signal
// a process whose exec'd program has one of Names (proc.name) or one of
// Paths (proc.exepath, as exec'd), inside a container. The rule's condition
// says exactly that and nothing else, so the kernel's decision and the
// rule's match in user space agree.
type Enforcement struct {
	Signal Signal
	Names  []string
	Paths  []string
}

// Enforced lists the enabled rules marked `enforce:`, in load order.
func (rs *Ruleset) Enforced() []*Rule {
	var out []*Rule
	for _, r := range rs.rules {
		if r.Enabled && r.Enforce != nil {
			out = append(out, r)
		}
	}
	return out
}

// errNotKernel explains which conditions can be enforced.
const kernelForms = `an exec (evt.type == "exec", the spawned_process macro) in a container ` +
	`(container.id != "host", the in_container macro) of a program named by proc.name or proc.exepath ` +
	`(== "x", in [list], or an "or" of those), joined with "and"`

// kernelEnforcement derives what the kernel must check from a rule's
// expanded condition, or says why the kernel cannot decide it.
func kernelEnforcement(src string, sig Signal) (*Enforcement, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse condition: %w", err)
	}
	var terms []ast.Node
	conjuncts(tree.Node, &terms)
	e := &Enforcement{Signal: sig}
	var exec, container, program bool
	for _, t := range terms {
		switch {
		case isExecTest(t):
			exec = true
		case isContainerTest(t):
			container = true
		default:
			if f, v, ok := compare(t, "=="); ok && f == "evt.type" {
				return nil, fmt.Errorf("enforcement happens at exec: evt.type must be \"exec\", got %q", v)
			}
			names, paths, ok := programTest(t)
			if !ok {
				return nil, fmt.Errorf("the kernel cannot decide %q: an enforced condition must be %s", t.String(), kernelForms)
			}
			if program {
				return nil, fmt.Errorf("the kernel cannot decide two program tests joined by \"and\" (%q): use one test, or an \"or\" of tests", t.String())
			}
			program = true
			e.Names, e.Paths = names, paths
		}
	}
	switch {
	case !exec:
		return nil, fmt.Errorf(`enforcement happens at exec: the condition must require evt.type == "exec" (spawned_process)`)
	case !container:
		return nil, fmt.Errorf(`enforcement happens only in containers: the condition must require container.id != "host" (in_container)`)
	case !program:
		return nil, fmt.Errorf("the condition must name the programs to stop with proc.name or proc.exepath")
	}
	for _, n := range e.Names {
		if n == "" || len(n) > commLen {
			return nil, fmt.Errorf("proc.name %q can never match: a process name is 1 to %d bytes (the kernel's comm)", n, commLen)
		}
	}
	for _, p := range e.Paths {
		if p == "" || len(p) > pathLen {
			return nil, fmt.Errorf("proc.exepath %q cannot be enforced: 1 to %d bytes", p, pathLen)
		}
	}
	slices.Sort(e.Names)
	e.Names = slices.Compact(e.Names)
	slices.Sort(e.Paths)
	e.Paths = slices.Compact(e.Paths)
	return e, nil
}

func conjuncts(n ast.Node, out *[]ast.Node) {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "and" || b.Operator == "&&") {
		conjuncts(b.Left, out)
		conjuncts(b.Right, out)
		return
	}
	*out = append(*out, n)
}

// fieldRef returns the dotted name of a field reference (proc.name), or "".
func fieldRef(n ast.Node) string {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value
	case *ast.MemberNode:
		p, ok := x.Property.(*ast.StringNode)
		if !ok || x.Optional {
			return ""
		}
		if base := fieldRef(x.Node); base != "" {
			return base + "." + p.Value
		}
	}
	return ""
}

// compare splits `field op "string"` (either way round).
func compare(n ast.Node, op string) (string, string, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok || b.Operator != op {
		return "", "", false
	}
	if s, ok := b.Right.(*ast.StringNode); ok {
		if f := fieldRef(b.Left); f != "" {
			return f, s.Value, true
		}
	}
	if s, ok := b.Left.(*ast.StringNode); ok {
		if f := fieldRef(b.Right); f != "" {
			return f, s.Value, true
		}
	}
	return "", "", false
}

func isExecTest(n ast.Node) bool {
	f, v, ok := compare(n, "==")
	return ok && f == "evt.type" && v == "exec"
}

func isContainerTest(n ast.Node) bool {
	f, v, ok := compare(n, "!=")
	return ok && f == "container.id" && v == "host"
}

// programTest reads proc.name / proc.exepath == "x", in ["x", ...], and
// "or"s of those.
func programTest(n ast.Node) (names, paths []string, ok bool) {
	b, isBin := n.(*ast.BinaryNode)
	if !isBin {
		return nil, nil, false
	}
	add := func(f string, vs ...string) bool {
		switch f {
		case "proc.name":
			names = append(names, vs...)
		case "proc.exepath":
			paths = append(paths, vs...)
		default:
			return false
		}
		return true
	}
	switch b.Operator {
	case "or", "||":
		ln, lp, lok := programTest(b.Left)
		rn, rp, rok := programTest(b.Right)
		if !lok || !rok {
			return nil, nil, false
		}
		return append(ln, rn...), append(lp, rp...), true
	case "==":
		f, v, cok := compare(n, "==")
		if !cok || !add(f, v) {
			return nil, nil, false
		}
		return names, paths, true
	case "in":
		arr, isArr := b.Right.(*ast.ArrayNode)
		if !isArr {
			return nil, nil, false
		}
		var vs []string
		for _, e := range arr.Nodes {
			s, isStr := e.(*ast.StringNode)
			if !isStr {
				return nil, nil, false
			}
			vs = append(vs, s.Value)
		}
		if len(vs) == 0 || !add(fieldRef(b.Left), vs...) {
			return nil, nil, false
		}
		return names, paths, true
	}
	return nil, nil, false
}

// checkOverlap rejects two enforced rules naming the same program: the
// kernel keeps one signal per name and per path.
func checkOverlap(rs []*Rule) []error {
	var errs []error
	names, paths := map[string]*Rule{}, map[string]*Rule{}
	for _, r := range rs {
		for _, n := range r.Enforce.Names {
			if o := names[n]; o != nil {
				errs = append(errs, fmt.Errorf("%s:%d: rule %q: enforce: proc.name %q is already enforced by rule %q (%s:%d)", r.File, r.Line, r.Name, n, o.Name, o.File, o.Line))
				continue
			}
			names[n] = r
		}
		for _, p := range r.Enforce.Paths {
			if o := paths[p]; o != nil {
				errs = append(errs, fmt.Errorf("%s:%d: rule %q: enforce: proc.exepath %q is already enforced by rule %q (%s:%d)", r.File, r.Line, r.Name, p, o.Name, o.File, o.Line))
				continue
			}
			paths[p] = r
		}
	}
	return errs
}
