package rules

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/alert"
)

// Source is the alert source of every detector alert, as Falco names its
// syscall source.
const Source = "syscall"

// Rule is one compiled detection rule.
type Rule struct {
	Name      string
	Desc      string
	Condition string // as written
	Expanded  string // with macros and lists expanded
	Output    string
	Priority  alert.Priority
	Tags      []string
	Enabled   bool
	File      string
	Line      int
	// Enforce is set for a rule marked `enforce:`: the kernel signals the
	// process itself, before the program runs (see Enforcement).
	Enforce *Enforcement

	program *vm.Program
	types   map[string]bool // nil: every event type
	okOnly  bool            // the condition cannot match a failed syscall (not evt.failed)
	out     *output
}

// EventTypes lists the event types the rule can match; nil means any.
func (r *Rule) EventTypes() []string {
	if r.types == nil {
		return nil
	}
	var out []string
	for _, t := range event.Types() {
		if r.types[t] {
			out = append(out, t)
		}
	}
	return out
}

// Ruleset is a compiled set of rules, macros and lists. It is immutable and
// safe for concurrent use.
type Ruleset struct {
	rules  []*Rule
	byType map[string][]*Rule
	fields fieldTable
	macros *compiler
	vms    sync.Pool // reused expr VMs
}

func (rs *Ruleset) index() {
	for _, t := range event.Types() {
		for _, r := range rs.rules {
			if r.Enabled && (r.types == nil || r.types[t]) {
				rs.byType[t] = append(rs.byType[t], r)
			}
		}
	}
}

// Rules lists every rule, enabled or not, in load order.
func (rs *Ruleset) Rules() []*Rule { return rs.rules }

// Rule returns the rule with that name, or nil.
func (rs *Ruleset) Rule(name string) *Rule {
	for _, r := range rs.rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Match evaluates the enabled rules that apply to ev's type and returns
// those whose condition holds, in load order. A rule whose evaluation fails
// at run time does not match; its error is returned (joined) alongside the
// matches.
func (rs *Ruleset) Match(ev *event.Event) ([]*Rule, *Env, error) {
	candidates := rs.byType[ev.Type]
	if len(candidates) == 0 {
		return nil, nil, nil
	}
	env := NewEnv(ev)
	machine, _ := rs.vms.Get().(*vm.VM)
	if machine == nil {
		machine = new(vm.VM)
	}
	defer rs.vms.Put(machine)
	var matched []*Rule
	var errs []error
	for _, r := range candidates {
		out, err := machine.Run(r.program, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("evaluate rule %q: %w", r.Name, err))
			continue
		}
		if b, _ := out.(bool); b {
			matched = append(matched, r)
		}
	}
	return matched, env, errorsJoin(errs)
}

// Eval evaluates the rules over ev and returns an alert per matching rule.
// hostname goes into each alert's hostname.
func (rs *Ruleset) Eval(ev *event.Event, hostname string) ([]alert.Alert, error) {
	matched, env, err := rs.Match(ev)
	var out []alert.Alert
	for _, r := range matched {
		out = append(out, rs.Alert(r, ev, env, hostname))
	}
	return out, err
}

// standardFields go into every alert's output_fields; fieldsByType add
// those relevant to the event's type.
var standardFields = []string{
	"evt.time", "evt.type", "container.id", "container.name",
	"container.image.repository", "container.image.tag",
	"proc.name", "proc.exepath", "proc.cmdline", "proc.pname", "proc.pid", "proc.ppid", "proc.vpid",
	"proc.tty", "user.name", "user.uid",
}

var resourceFields = []string{"evt.time", "evt.type", "container.id", "container.name",
	"container.image.repository", "container.image.tag"}

// k8sFields go into the alerts of containers that belong to a pod.
var k8sFields = []string{"k8s.pod.name", "k8s.ns.name", "k8s.pod.uid"}

var netFields = []string{"fd.name", "fd.type", "fd.l4proto", "fd.sip", "fd.sport", "fd.cip", "fd.cport"}

var fieldsByType = map[string][]string{
	event.Open:         {"fd.name", "evt.arg.flags"},
	event.MemfdCreate:  {"fd.name", "evt.arg.flags"},
	event.Connect:      netFields,
	event.Accept:       netFields,
	event.Bind:         netFields,
	event.Listen:       netFields,
	event.Dup:          append([]string{"fd.num"}, netFields...),
	event.Socket:       {"evt.arg.domain", "evt.arg.type"},
	event.Ptrace:       {"evt.arg.request", "evt.arg.pid"},
	event.Setuid:       {"evt.syscall", "evt.arg.uid"},
	event.Chmod:        {"fd.name", "evt.arg.mode"},
	event.Symlink:      {"evt.arg.target", "evt.arg.linkpath"},
	event.Link:         {"evt.arg.oldpath", "evt.arg.newpath"},
	event.Unlink:       {"fd.name", "evt.arg.flags"},
	event.Rename:       {"evt.arg.oldpath", "evt.arg.newpath"},
	event.Truncate:     {"fd.name", "evt.arg.length"},
	event.Mount:        {"evt.arg.dev", "evt.arg.dir", "evt.arg.type", "evt.arg.flags", "evt.res", "evt.errno"},
	event.Umount:       {"evt.arg.dir", "evt.arg.flags", "evt.res", "evt.errno"},
	event.Setns:        {"fd.name", "evt.arg.flags", "evt.res", "evt.errno"},
	event.Unshare:      {"evt.arg.flags", "evt.res", "evt.errno"},
	event.CPUHigh:      {"container.cpu.percent", "container.cpu.seconds"},
	event.MemoryGrowth: {"container.memory.bytes", "container.memory.growth"},
}

// Alert builds the Falco-shaped alert of rule r matching ev. env may be nil.
func (rs *Ruleset) Alert(r *Rule, ev *event.Event, env *Env, hostname string) alert.Alert {
	if env == nil {
		env = NewEnv(ev)
	}
	fields := map[string]any{}
	base := standardFields
	if ev.Type == event.CPUHigh || ev.Type == event.MemoryGrowth {
		base = resourceFields
	}
	for _, set := range [][]string{base, fieldsByType[ev.Type], r.out.fieldNames()} {
		for _, name := range set {
			fields[name] = rs.fields.value(env, name)
		}
	}
	if env.K8s.Pod.UID != "" || env.K8s.Pod.Name != "" {
		for _, name := range k8sFields {
			fields[name] = rs.fields.value(env, name)
		}
	}
	if ev.Type == event.Exec && (ev.StdinNet || ev.StdoutNet) {
		for _, name := range netFields {
			fields[name] = rs.fields.value(env, name)
		}
	}
	text := r.out.render(rs.fields, env)
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	a := alert.Alert{
		Time:         t.UTC(),
		Rule:         r.Name,
		Priority:     r.Priority,
		Output:       t.Local().Format("15:04:05.000000000") + ": " + r.Priority.String() + " " + text,
		OutputFields: fields,
		Source:       Source,
		Tags:         append([]string(nil), r.Tags...),
		Hostname:     hostname,
	}
	a.ID = alert.DeterministicID(a)
	return a
}

func (o *output) fieldNames() []string {
	if o == nil {
		return nil
	}
	return o.fields
}

func (o *output) render(fields fieldTable, env *Env) string {
	if o == nil {
		return ""
	}
	if o.tmpl != nil {
		var sb strings.Builder
		if err := o.tmpl.Execute(&sb, fields.tree(env)); err != nil {
			return fmt.Sprintf("(output template failed: %v)", err)
		}
		return sb.String()
	}
	var sb strings.Builder
	for _, p := range o.parts {
		if p.field == "" {
			sb.WriteString(p.text)
			continue
		}
		sb.WriteString(formatValue(fields.value(env, p.field)))
	}
	return sb.String()
}

// formatValue writes a field value as Falco does: "<NA>" for empty.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return "<NA>"
		}
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []string:
		if len(x) == 0 {
			return "<NA>"
		}
		return strings.Join(x, ",")
	case nil:
		return "<NA>"
	}
	return fmt.Sprint(v)
}

// Filter is a compiled boolean expression over events, in the rule
// language (as `capture read --filter` uses it). Safe for concurrent use.
type Filter struct {
	src  string
	prog *vm.Program
}

// CompileFilter compiles a filter such as
// `evt.type == "open" && fd.name startsWith "/etc"`.
func CompileFilter(src string) (*Filter, error) {
	prog, err := compileFilter(nil, src)
	if err != nil {
		return nil, err
	}
	return &Filter{src: src, prog: prog}, nil
}

// Filter compiles a filter that may also use the ruleset's macros and lists.
func (rs *Ruleset) Filter(src string) (*Filter, error) {
	prog, err := compileFilter(rs.macros, src)
	if err != nil {
		return nil, err
	}
	return &Filter{src: src, prog: prog}, nil
}

// String returns the filter as written.
func (f *Filter) String() string { return f.src }

// Match reports whether ev satisfies the filter.
func (f *Filter) Match(ev *event.Event) (bool, error) {
	out, err := vm.Run(f.prog, NewEnv(ev))
	if err != nil {
		return false, fmt.Errorf("evaluate filter: %w", err)
	}
	b, _ := out.(bool)
	return b, nil
}

// Wants reports whether any enabled rule can match events of type t.
func (rs *Ruleset) Wants(t string) bool { return len(rs.byType[t]) > 0 }

// WantsFailed reports whether any enabled rule can match a failed syscall
// of type t: one that applies to t and whose condition does not exclude
// failures with a top-level "not evt.failed".
func (rs *Ruleset) WantsFailed(t string) bool {
	for _, r := range rs.byType[t] {
		if !r.okOnly {
			return true
		}
	}
	return false
}
