package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/riposte-sec/riposte/detector/event"
)

// reservedNames cannot name a macro or a list: they are the roots of Env,
// the language's keywords and riposte's functions.
var reservedNames = map[string]bool{
	"evt": true, "proc": true, "fd": true, "container": true, "user": true,
	"and": true, "or": true, "not": true, "in": true, "true": true, "false": true, "nil": true,
	"matches": true, "contains": true, "startsWith": true, "endsWith": true, "let": true, "if": true, "else": true,
	"inCIDR": true, "glob": true,
}

// maxExpanded bounds a condition after macro expansion: macros that use
// each other several times grow exponentially.
const maxExpanded = 64 << 10

var errTooLong = fmt.Errorf("condition expands to more than %d bytes", maxExpanded)

// compileOptions are the options every condition and filter compiles with.
func compileOptions() []expr.Option {
	return []expr.Option{
		expr.Env(Env{}),
		expr.AsBool(),
		expr.Function("inCIDR", func(p ...any) (any, error) {
			return inCIDR(p[0].(string), p[1].([]any)), nil
		}, new(func(string, []any) bool)),
		expr.Function("glob", func(p ...any) (any, error) {
			return glob(p[0].(string), p[1].(string)), nil
		}, new(func(string, string) bool)),
	}
}

// Compile loads files into a Ruleset. Macros and lists may be used in any
// file, before or after their definition. All errors are returned, joined,
// each naming file:line, the item and the field.
func Compile(files ...File) (*Ruleset, error) {
	var all []*item
	var errs []error
	for _, f := range files {
		items, ferrs := parseFile(f)
		all = append(all, items...)
		errs = append(errs, ferrs...)
	}
	c := &compiler{macros: map[string]*item{}, lists: map[string]*item{}, fields: buildFields(),
		expandedMacros: map[string]string{}, expandedLists: map[string]string{}}
	rules := map[string]*item{}
	for _, it := range all {
		var seen map[string]*item
		switch it.kind {
		case kindMacro:
			seen = c.macros
		case kindList:
			seen = c.lists
		default:
			seen = rules
		}
		if first, dup := seen[it.name]; dup {
			errs = append(errs, it.errorf(it.line, "duplicate %s, first defined at %s", it.kind, first.where()))
			continue
		}
		if it.kind != kindRule {
			if other := c.macros[it.name]; other != nil && it.kind == kindList {
				errs = append(errs, it.errorf(it.line, "name already used by the macro at %s", other.where()))
				continue
			}
			if other := c.lists[it.name]; other != nil && it.kind == kindMacro {
				errs = append(errs, it.errorf(it.line, "name already used by the list at %s", other.where()))
				continue
			}
		}
		seen[it.name] = it
	}
	// Lists, then macros (each compiled alone so that its errors point at
	// it), then rules, in file order.
	for _, it := range all {
		if it.kind == kindList && c.lists[it.name] == it {
			if _, err := c.list(it, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, it := range all {
		if it.kind == kindMacro && c.macros[it.name] == it {
			src, err := c.macro(it, nil)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := expr.Compile(src, compileOptions()...); err != nil {
				errs = append(errs, it.errorf(it.condLine, "condition: %s", exprMessage(err)))
			}
		}
	}
	rs := &Ruleset{byType: map[string][]*Rule{}, fields: c.fields, macros: c}
	for _, it := range all {
		if it.kind != kindRule || rules[it.name] != it {
			continue
		}
		r, rerrs := c.rule(it)
		errs = append(errs, rerrs...)
		if r != nil {
			rs.rules = append(rs.rules, r)
		}
	}
	if len(errs) == 0 {
		errs = checkOverlap(rs.Enforced())
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	rs.index()
	return rs, nil
}

type compiler struct {
	macros, lists  map[string]*item
	fields         fieldTable
	expandedMacros map[string]string
	expandedLists  map[string]string
}

// list renders a list as an expr array literal, splicing lists it names.
func (c *compiler) list(it *item, stack []string) (string, error) {
	if s, ok := c.expandedLists[it.name]; ok {
		return s, nil
	}
	if contains(stack, it.name) {
		return "", it.errorf(it.itemLine, "cycle: %s -> %s", strings.Join(stack, " -> "), it.name)
	}
	var parts []string
	for _, x := range it.items {
		if name, ok := strings.CutPrefix(x, "@"); ok {
			if other, isList := c.lists[name]; isList {
				s, err := c.list(other, append(stack, it.name))
				if err != nil {
					return "", err
				}
				if inner := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"); inner != "" {
					parts = append(parts, inner)
				}
				continue
			}
			x = fmt.Sprintf("%q", name)
		}
		parts = append(parts, x)
	}
	s := "[" + strings.Join(parts, ", ") + "]"
	c.expandedLists[it.name] = s
	return s, nil
}

// macro returns a macro's condition with every macro and list it names
// expanded.
func (c *compiler) macro(it *item, stack []string) (string, error) {
	if s, ok := c.expandedMacros[it.name]; ok {
		return s, nil
	}
	if contains(stack, it.name) {
		return "", it.errorf(it.condLine, "cycle: %s -> %s", strings.Join(stack, " -> "), it.name)
	}
	s, err := c.expand(it.condition, append(stack, it.name))
	if errors.Is(err, errTooLong) {
		err = it.errorf(it.condLine, "%v", err)
	}
	if err != nil {
		return "", err
	}
	if len(s) > maxExpanded {
		return "", it.errorf(it.condLine, "condition expands to more than %d bytes", maxExpanded)
	}
	c.expandedMacros[it.name] = s
	return s, nil
}

// expand replaces names of macros with their parenthesised expansion and
// names of lists with array literals.
func (c *compiler) expand(src string, stack []string) (string, error) {
	var err error
	total := len(src)
	out := replaceIdents(src, func(name string) (string, bool) {
		if err != nil {
			return "", false
		}
		if total > maxExpanded {
			err = errTooLong
			return "", false
		}
		if m, ok := c.macros[name]; ok {
			s, e := c.macro(m, stack)
			if e != nil {
				err = e
				return "", false
			}
			total += len(s)
			return "(" + s + ")", true
		}
		if l, ok := c.lists[name]; ok {
			s, e := c.list(l, nil)
			if e != nil {
				err = e
				return "", false
			}
			total += len(s)
			return s, true
		}
		return "", false
	})
	return out, err
}

// replaceIdents calls repl for every top-level identifier in src (not a
// member after ".", not inside a string literal) and substitutes what it
// returns when ok.
func replaceIdents(src string, repl func(string) (string, bool)) string {
	var b strings.Builder
	lastSignificant := byte(0)
	for i := 0; i < len(src); {
		ch := src[i]
		switch {
		case ch == '"' || ch == '\'' || ch == '`':
			j := i + 1
			for j < len(src) && src[j] != ch {
				if src[j] == '\\' && ch != '`' {
					j++
				}
				j++
			}
			if j < len(src) {
				j++
			}
			if j > len(src) {
				j = len(src)
			}
			b.WriteString(src[i:j])
			i = j
			lastSignificant = ch
		case ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'):
			j := i + 1
			for j < len(src) && (src[j] == '_' || (src[j] >= 'a' && src[j] <= 'z') || (src[j] >= 'A' && src[j] <= 'Z') || (src[j] >= '0' && src[j] <= '9')) {
				j++
			}
			name := src[i:j]
			if lastSignificant != '.' {
				if s, ok := repl(name); ok {
					name = s
				}
			}
			b.WriteString(name)
			i = j
			lastSignificant = 'a'
		default:
			b.WriteByte(ch)
			if ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' {
				lastSignificant = ch
			}
			i++
		}
	}
	return b.String()
}

func (c *compiler) rule(it *item) (*Rule, []error) {
	var errs []error
	r := &Rule{Name: it.name, Desc: it.desc, Condition: it.condition, Output: it.output,
		Priority: it.priority, Tags: it.tags, Enabled: it.enabled, File: it.file, Line: it.line}
	if it.condition != "" {
		src, err := c.expand(it.condition, nil)
		if errors.Is(err, errTooLong) {
			err = it.errorf(it.condLine, "%v", err)
		}
		if err == nil && len(src) > maxExpanded {
			err = it.errorf(it.condLine, "condition expands to more than %d bytes", maxExpanded)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			prog, err := expr.Compile(src, compileOptions()...)
			if err != nil {
				errs = append(errs, it.errorf(it.condLine, "condition: %s", exprMessage(err)))
			} else {
				r.program = prog
				r.Expanded = src
				types, terr := eventTypes(src)
				if terr != nil {
					errs = append(errs, it.errorf(it.condLine, "condition: %s", terr))
				}
				r.types = types
				if it.enforce != 0 {
					e, eerr := kernelEnforcement(src, it.enforce)
					if eerr != nil {
						errs = append(errs, it.errorf(it.enforceLine, "enforce: %s", eerr))
					}
					r.Enforce = e
				}
				r.okOnly = excludesFailed(src)
			}
		}
	}
	if it.output != "" {
		out, err := c.compileOutput(it.output)
		if err != nil {
			errs = append(errs, it.errorf(it.outLine, "output: %s", err))
		}
		r.out = out
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// exprMessage is the one-line message of an expr compile error, with
// "type rules.Proc has no field nme" said as "unknown field proc.nme".
func exprMessage(err error) string {
	msg := strings.SplitN(err.Error(), "\n", 2)[0]
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fmt.Sprintf("%s (column %d)", fe.Message, fe.Column+1)
	}
	if m := noField.FindStringSubmatch(msg); m != nil {
		if prefix, ok := structPrefixes()[m[1]]; ok {
			msg = strings.Replace(msg, m[0], "unknown field "+prefix+"."+m[2], 1)
		}
	}
	return msg
}

var noField = regexp.MustCompile(`type rules\.(\w+) has no field (\w+)`)

// structPrefixes maps the Go type names of Env's structs to their dotted
// prefix (Proc -> proc, Image -> container.image).
func structPrefixes() map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if tag := f.Tag.Get("expr"); tag != "" && f.Type.Kind() == reflect.Struct {
				name := tag
				if prefix != "" {
					name = prefix + "." + tag
				}
				out[f.Type.Name()] = name
				walk(f.Type, name)
			}
		}
	}
	walk(reflect.TypeOf(Env{}), "")
	return out
}

// eventTypes finds the event types a condition can match: a top-level
// conjunction containing evt.type == "x" or evt.type in ["x", "y"]
// restricts the rule to them, so that it is only evaluated for those
// events. nil means every type. A type that does not exist is an error.
func eventTypes(src string) (map[string]bool, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, nil
	}
	types, _ := typesOf(tree.Node)
	known := map[string]bool{}
	for _, t := range event.Types() {
		known[t] = true
	}
	var bad []string
	for t := range types {
		if !known[t] {
			bad = append(bad, t)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("evt.type %q is not an event type (want one of %s)", bad[0], strings.Join(event.Types(), ", "))
	}
	return types, nil
}

func typesOf(n ast.Node) (map[string]bool, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return nil, false
	}
	switch b.Operator {
	case "and", "&&":
		l, lok := typesOf(b.Left)
		r, rok := typesOf(b.Right)
		switch {
		case lok && rok:
			both := map[string]bool{}
			for t := range l {
				if r[t] {
					both[t] = true
				}
			}
			return both, true
		case lok:
			return l, true
		case rok:
			return r, true
		}
		return nil, false
	case "or", "||":
		l, lok := typesOf(b.Left)
		r, rok := typesOf(b.Right)
		if !lok || !rok {
			return nil, false
		}
		for t := range r {
			l[t] = true
		}
		return l, true
	case "==":
		if isEvtType(b.Left) {
			if s, ok := b.Right.(*ast.StringNode); ok {
				return map[string]bool{s.Value: true}, true
			}
		}
		if isEvtType(b.Right) {
			if s, ok := b.Left.(*ast.StringNode); ok {
				return map[string]bool{s.Value: true}, true
			}
		}
	case "in":
		if !isEvtType(b.Left) {
			return nil, false
		}
		arr, ok := b.Right.(*ast.ArrayNode)
		if !ok {
			return nil, false
		}
		set := map[string]bool{}
		for _, e := range arr.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil, false
			}
			set[s.Value] = true
		}
		return set, true
	}
	return nil, false
}

func isEvtType(n ast.Node) bool { return isEvtField(n, "type") }

func isEvtField(n ast.Node, name string) bool {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	prop, ok2 := m.Property.(*ast.StringNode)
	return ok && ok2 && id.Value == "evt" && prop.Value == name
}

// excludesFailed reports whether a condition cannot match a failed
// syscall: a top-level conjunction contains "not evt.failed" (or
// "evt.failed == false"). The kernel then need not send the failures of
// the rule's event types.
func excludesFailed(src string) bool {
	tree, err := parser.Parse(src)
	if err != nil {
		return false
	}
	var walk func(n ast.Node) bool
	walk = func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryNode:
			switch n.Operator {
			case "and", "&&":
				return walk(n.Left) || walk(n.Right)
			case "==":
				b, ok := n.Right.(*ast.BoolNode)
				return ok && !b.Value && isEvtField(n.Left, "failed")
			}
		case *ast.UnaryNode:
			return (n.Operator == "not" || n.Operator == "!") && isEvtField(n.Node, "failed")
		}
		return false
	}
	return walk(tree.Node)
}

// output is a compiled output: Falco's %field text or a Go template.
type output struct {
	parts  []outPart // %field style
	tmpl   *template.Template
	fields []string // fields the output names
}

type outPart struct {
	text  string
	field string
}

func (c *compiler) compileOutput(src string) (*output, error) {
	src = strings.TrimSpace(src)
	if strings.Contains(src, "{{") {
		t, err := template.New("output").Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("template: %s", strings.TrimPrefix(err.Error(), "template: output:"))
		}
		var sb strings.Builder
		if err := t.Execute(&sb, c.fields.tree(NewEnv(&event.Event{}))); err != nil {
			return nil, fmt.Errorf("template: %s", strings.TrimPrefix(err.Error(), "template: output:"))
		}
		return &output{tmpl: t}, nil
	}
	o := &output{}
	var text strings.Builder
	for i := 0; i < len(src); {
		if src[i] != '%' {
			text.WriteByte(src[i])
			i++
			continue
		}
		j := i + 1
		for j < len(src) && isFieldChar(src[j]) {
			j++
		}
		name := strings.TrimRight(src[i+1:j], ".")
		j = i + 1 + len(name)
		if name == "" {
			text.WriteByte('%')
			i++
			continue
		}
		if _, ok := c.fields[name]; !ok {
			return nil, fmt.Errorf("unknown field %%%s", name)
		}
		o.parts = append(o.parts, outPart{text: text.String()}, outPart{field: name})
		o.fields = append(o.fields, name)
		text.Reset()
		i = j
	}
	if text.Len() > 0 {
		o.parts = append(o.parts, outPart{text: text.String()})
	}
	return o, nil
}

func isFieldChar(c byte) bool {
	return c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// compileFilter compiles a standalone boolean expression over Env,
// expanding the compiler's macros and lists when c is not nil.
func compileFilter(c *compiler, src string) (*vm.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("compile filter: empty expression")
	}
	if c != nil {
		var err error
		if src, err = c.expand(src, nil); err != nil {
			return nil, fmt.Errorf("compile filter: %w", err)
		}
	}
	if len(src) > maxExpanded {
		return nil, fmt.Errorf("compile filter: expression longer than %d bytes", maxExpanded)
	}
	prog, err := expr.Compile(src, compileOptions()...)
	if err != nil {
		return nil, fmt.Errorf("compile filter: %s", exprMessage(err))
	}
	return prog, nil
}
