package playbooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/glob"
)

// LoadError is one problem in a playbook file.
type LoadError struct {
	File     string
	Line     int
	Playbook string // "" when the playbook has no name yet
	Field    string // "match.priority", "actions[2].with.grace"; "" for the whole item
	Msg      string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Playbook != "" {
		b.WriteString("playbook " + strconv.Quote(e.Playbook) + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Source is one playbook file's content.
type Source struct {
	Name string // file name used in errors
	Data []byte
}

// Load reads playbooks from files and directories (every *.yaml and *.yml
// below a directory, in lexical order) and validates them against the
// catalog of known actions. Every problem is reported, joined.
func Load(catalog *actions.Catalog, paths ...string) (*Set, error) {
	var srcs []Source
	var errs []error
	for _, p := range paths {
		files, err := yamlFiles(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("read playbooks: %w", err))
				continue
			}
			srcs = append(srcs, Source{Name: f, Data: data})
		}
	}
	set, err := Parse(catalog, srcs...)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

func yamlFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read playbooks: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read playbooks in %s: %w", path, err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("read playbooks: no *.yaml or *.yml file in %s", path)
	}
	return files, nil
}

// Parse loads playbooks from in-memory sources, in order.
func Parse(catalog *actions.Catalog, srcs ...Source) (*Set, error) {
	l := &loader{catalog: catalog, names: map[string]string{}}
	for _, src := range srcs {
		l.file(src)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return newSet(l.books), nil
}

type loader struct {
	catalog *actions.Catalog
	books   []*Playbook
	names   map[string]string // name -> file:line of first definition
	errs    []error
	// current item, for errors
	curFile string
	book    string
}

func (l *loader) errorf(line int, field, format string, args ...any) {
	l.errs = append(l.errs, &LoadError{File: l.curFile, Line: line, Playbook: l.book, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) file(src Source) {
	l.curFile, l.book = src.Name, ""
	dec := yaml.NewDecoder(bytes.NewReader(src.Data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return
		}
		if err != nil {
			msg := err.Error()
			if m := yamlLine.FindStringSubmatch(msg); m != nil {
				line, _ := strconv.Atoi(m[1])
				l.errorf(line, "", "invalid YAML: %s", m[2])
			} else {
				l.errorf(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
			}
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.SequenceNode {
			l.errorf(root.Line, "", "want a list of playbooks (- playbook: name ...), got %s", kind(root))
			continue
		}
		for _, item := range root.Content {
			l.playbook(item)
		}
	}
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// fields checks a mapping's keys and returns key -> (key node, value node).
func (l *loader) fields(n *yaml.Node, where string, allowed ...string) map[string][2]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, where, "want a mapping, got %s", kind(n))
		return nil
	}
	out := make(map[string][2]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := k.Value
		if where != "" {
			field = where + "." + k.Value
		}
		if !contains(allowed, k.Value) {
			l.errorf(k.Line, field, "unknown field (want one of %s)", strings.Join(allowed, ", "))
			continue
		}
		if prev, dup := out[k.Value]; dup {
			l.errorf(k.Line, field, "defined twice (first at line %d)", prev[0].Line)
			continue
		}
		out[k.Value] = [2]*yaml.Node{k, v}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *loader) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n.Line, field, "want a string, got %s", kind(n))
		return "", false
	}
	return n.Value, true
}

func (l *loader) strList(n *yaml.Node, field string) ([]string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}, true
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n.Line, field, "want a list of strings, got %s", kind(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, e := range n.Content {
		s, good := l.str(e, fmt.Sprintf("%s[%d]", field, i))
		if good && strings.TrimSpace(s) == "" {
			l.errorf(e.Line, fmt.Sprintf("%s[%d]", field, i), "empty string")
			good = false
		}
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func (l *loader) boolean(n *yaml.Node, field string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		l.errorf(n.Line, field, "want true or false, got %s", kind(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		l.errorf(n.Line, field, "want true or false, got %s", kind(n))
		return false, false
	}
	return b, true
}

var playbookFields = []string{"playbook", "description", "order", "match", "continue", "dry_run", "approval", "actions"}

func (l *loader) playbook(n *yaml.Node) {
	l.book = ""
	// Name first, so that every error below can say which playbook.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := n.Content[i], n.Content[i+1]; k.Value == "playbook" && v.Kind == yaml.ScalarNode {
				l.book = strings.TrimSpace(v.Value)
			}
		}
	}
	f := l.fields(n, "", playbookFields...)
	if f == nil {
		return
	}
	pb := &Playbook{File: l.curFile, Line: n.Line, Continue: true, position: len(l.books)}
	if kv, ok := f["playbook"]; ok {
		if name, ok := l.str(kv[1], "playbook"); ok {
			pb.Name = strings.TrimSpace(name)
		}
	}
	if pb.Name == "" {
		l.errorf(n.Line, "playbook", "missing name (playbook: <unique name>)")
	} else {
		where := fmt.Sprintf("%s:%d", l.curFile, n.Line)
		if first, dup := l.names[pb.Name]; dup {
			l.errorf(n.Line, "playbook", "name used twice (first at %s)", first)
		} else {
			l.names[pb.Name] = where
		}
	}
	if kv, ok := f["description"]; ok {
		pb.Description, _ = l.str(kv[1], "description")
	}
	if kv, ok := f["order"]; ok {
		if kv[1].Kind != yaml.ScalarNode || kv[1].Tag != "!!int" {
			l.errorf(kv[1].Line, "order", "want an integer, got %s", kind(kv[1]))
		} else if err := kv[1].Decode(&pb.Order); err != nil {
			l.errorf(kv[1].Line, "order", "want an integer, got %s", kind(kv[1]))
		}
	}
	if kv, ok := f["continue"]; ok {
		pb.Continue, _ = l.boolean(kv[1], "continue")
	}
	if kv, ok := f["dry_run"]; ok {
		pb.DryRun, _ = l.boolean(kv[1], "dry_run")
	}
	if kv, ok := f["match"]; ok {
		l.match(kv[1], &pb.Match)
	}
	// approval before actions: a gated action needs it.
	if kv, ok := f["approval"]; ok {
		pb.Approval = l.approval(kv[0].Line, kv[1])
	}
	kv, ok := f["actions"]
	if !ok {
		l.errorf(n.Line, "actions", "missing (a playbook needs at least one action)")
	} else {
		l.actions(kv[1], pb)
	}
	l.books = append(l.books, pb)
}

func (l *loader) match(n *yaml.Node, m *Match) {
	f := l.fields(n, "match", "rules", "priority", "tags", "sources", "when")
	if f == nil {
		return
	}
	if kv, ok := f["rules"]; ok {
		if rules, ok := l.strList(kv[1], "match.rules"); ok {
			m.Rules = rules
			for _, r := range rules {
				if glob.Has(r) {
					m.globbed = append(m.globbed, r)
				} else {
					m.exact = append(m.exact, r)
				}
			}
		}
	}
	if kv, ok := f["priority"]; ok {
		if s, ok := l.str(kv[1], "match.priority"); ok {
			pm, err := ParsePriorityMatch(s)
			if err != nil {
				l.errorf(kv[1].Line, "match.priority", "%v", err)
			} else {
				m.Priority = &pm
			}
		}
	}
	if kv, ok := f["tags"]; ok {
		m.Tags, _ = l.strList(kv[1], "match.tags")
	}
	if kv, ok := f["sources"]; ok {
		m.Sources, _ = l.strList(kv[1], "match.sources")
	}
	if kv, ok := f["when"]; ok {
		if s, ok := l.str(kv[1], "match.when"); ok {
			prog, err := compileCondition(s)
			if err != nil {
				l.errorf(kv[1].Line, "match.when", "%s", exprError(err))
			} else {
				m.When, m.when = s, prog
			}
		}
	}
}

// exprError keeps expr's first line; its caret drawing spans lines.
func exprError(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return "invalid expression: " + msg
}

func (l *loader) approval(line int, n *yaml.Node) *Approval {
	f := l.fields(n, "approval", "approvers", "timeout", "on_timeout")
	if f == nil {
		return nil
	}
	a := &Approval{Timeout: 10 * time.Minute, OnTimeout: TimeoutAbort}
	if kv, ok := f["approvers"]; ok {
		a.Approvers, _ = l.strList(kv[1], "approval.approvers")
	}
	if len(a.Approvers) == 0 {
		l.errorf(line, "approval.approvers", "missing (Slack user ids or @groups who may approve)")
	}
	if kv, ok := f["timeout"]; ok {
		if s, ok := l.str(kv[1], "approval.timeout"); ok {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				l.errorf(kv[1].Line, "approval.timeout", "want a positive duration such as 10m, got %q", s)
			} else {
				a.Timeout = d
			}
		}
	}
	if kv, ok := f["on_timeout"]; ok {
		if s, ok := l.str(kv[1], "approval.on_timeout"); ok {
			switch OnTimeout(s) {
			case TimeoutAbort, TimeoutProceed:
				a.OnTimeout = OnTimeout(s)
			default:
				l.errorf(kv[1].Line, "approval.on_timeout", "want abort or proceed, got %q", s)
			}
		}
	}
	return a
}

func (l *loader) actions(n *yaml.Node, pb *Playbook) {
	if n.Kind != yaml.SequenceNode {
		l.errorf(n.Line, "actions", "want a list of actions (- do: name), got %s", kind(n))
		return
	}
	if len(n.Content) == 0 {
		l.errorf(n.Line, "actions", "empty (a playbook needs at least one action)")
	}
	for i, item := range n.Content {
		where := fmt.Sprintf("actions[%d]", i)
		f := l.fields(item, where, "do", "with", "if", "gated", "on_error")
		if f == nil {
			continue
		}
		a := Action{Line: item.Line, OnError: ErrorStop, With: map[string]Value{}}
		kv, ok := f["do"]
		if !ok {
			l.errorf(item.Line, where+".do", "missing (the action to run)")
			continue
		}
		if a.Do, ok = l.str(kv[1], where+".do"); !ok {
			continue
		}
		spec, known := l.catalog.Lookup(a.Do)
		if !known {
			l.errorf(kv[1].Line, where+".do", "unknown action %q (known: %s)", a.Do, strings.Join(l.catalog.Names(), ", "))
			continue
		}
		a.Spec = spec
		given := map[string]bool{}
		if kv, ok := f["with"]; ok {
			l.with(kv[1], where+".with", spec, a.With)
			if kv[1].Kind == yaml.MappingNode {
				for i := 0; i < len(kv[1].Content); i += 2 {
					given[kv[1].Content[i].Value] = true
				}
			}
		}
		for _, p := range spec.Params {
			if p.Required && !given[p.Name] {
				l.errorf(item.Line, where+".with."+p.Name, "missing (required by %s)", a.Do)
			}
		}
		if kv, ok := f["if"]; ok {
			if s, ok := l.str(kv[1], where+".if"); ok {
				prog, err := compileCondition(s)
				if err != nil {
					l.errorf(kv[1].Line, where+".if", "%s", exprError(err))
				} else {
					a.If, a.cond = s, prog
				}
			}
		}
		if kv, ok := f["gated"]; ok {
			a.Gated, _ = l.boolean(kv[1], where+".gated")
			if a.Gated && pb.Approval == nil {
				l.errorf(kv[1].Line, where+".gated", "the playbook has no approval section, so nobody could approve this action")
			}
		}
		if kv, ok := f["on_error"]; ok {
			if s, ok := l.str(kv[1], where+".on_error"); ok {
				switch OnError(s) {
				case ErrorStop, ErrorContinue:
					a.OnError = OnError(s)
				default:
					l.errorf(kv[1].Line, where+".on_error", "want stop or continue, got %q", s)
				}
			}
		}
		pb.Actions = append(pb.Actions, a)
	}
}

func (l *loader) with(n *yaml.Node, where string, spec actions.Spec, out map[string]Value) {
	names := make([]string, 0, len(spec.Params))
	for _, p := range spec.Params {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		if n.Kind == yaml.MappingNode && len(n.Content) > 0 {
			l.errorf(n.Line, where, "%s takes no parameters", spec.Name)
		}
		return
	}
	f := l.fields(n, where, names...)
	for name, kv := range f {
		field := where + "." + name
		p, _ := spec.Param(name)
		var v any
		if err := kv[1].Decode(&v); err != nil {
			l.errorf(kv[1].Line, field, "%v", err)
			continue
		}
		if s, ok := v.(string); ok && strings.Contains(s, "{{") {
			t, err := template.New(field).Funcs(templateFuncs).Option("missingkey=error").Parse(s)
			if err != nil {
				l.errorf(kv[1].Line, field, "invalid template: %s", templateError(err))
				continue
			}
			if _, err := renderTemplate(t, NewTemplateData(&sampleAlert)); err != nil {
				l.errorf(kv[1].Line, field, "invalid template: %s", templateError(err))
				continue
			}
			out[name] = Value{Literal: s, Template: t, plain: compilePlain(t)}
			continue
		}
		if err := p.Check(v); err != nil {
			l.errorf(kv[1].Line, field, "%v", err)
			continue
		}
		out[name] = Value{Literal: v}
	}
}

// templateError drops text/template's "template: name:1:2: " prefix; the
// LoadError already says where.
func templateError(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "template: ") {
		parts := strings.SplitN(msg, ": ", 3)
		if len(parts) == 3 {
			return parts[2]
		}
	}
	return msg
}
