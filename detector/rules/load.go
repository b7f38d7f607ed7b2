package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/alert"
)

// File is one rules file: its name (used in error messages) and content.
type File struct {
	Name string
	Data []byte
}

// ReadPaths reads rules files: each path is a file or a directory whose
// *.yaml and *.yml files are read in name order.
func ReadPaths(paths ...string) ([]File, error) {
	var files []File
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read rules: %w", err)
		}
		names := []string{p}
		if st.IsDir() {
			names, err = yamlFiles(os.DirFS(p), ".")
			if err != nil {
				return nil, fmt.Errorf("read rules %s: %w", p, err)
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("read rules %s: no .yaml or .yml files", p)
			}
			for i, n := range names {
				names[i] = filepath.Join(p, n)
			}
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				return nil, fmt.Errorf("read rules: %w", err)
			}
			files = append(files, File{Name: n, Data: b})
		}
	}
	return files, nil
}

// ReadFS reads every *.yaml and *.yml file at the top of fsys, in name
// order (the embedded default rules, for instance).
func ReadFS(fsys fs.FS) ([]File, error) {
	names, err := yamlFiles(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	var files []File
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read rules: %w", err)
		}
		files = append(files, File{Name: n, Data: b})
	}
	return files, nil
}

func yamlFiles(fsys fs.FS, dir string) ([]string, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// item kinds.
const (
	kindRule  = "rule"
	kindMacro = "macro"
	kindList  = "list"
)

// item is one parsed rule, macro or list, before compilation.
type item struct {
	kind, name string
	file       string
	line       int

	desc, condition, output string
	condLine, outLine       int
	priority                alert.Priority
	tags                    []string
	enabled                 bool

	items    []string // list: expr literals or names of other lists
	itemLine int

	enforce     Signal // rule: 0 unless marked enforce:
	enforceLine int
}

func (it *item) where() string { return fmt.Sprintf("%s:%d", it.file, it.line) }

// errorf formats an error about the item at a line of its file.
func (it *item) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s %q: %s", it.file, line, it.kind, it.name, fmt.Sprintf(format, args...))
}

var allowedKeys = map[string][]string{
	kindRule:  {"rule", "desc", "condition", "output", "priority", "tags", "enabled", "enforce"},
	kindMacro: {"macro", "condition"},
	kindList:  {"list", "items"},
}

var requiredKeys = map[string][]string{
	kindRule:  {"desc", "condition", "output", "priority"},
	kindMacro: {"condition"},
	kindList:  {"items"},
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile parses one file into items; it returns every error it finds.
func parseFile(f File) ([]*item, []error) {
	var root yaml.Node
	if err := yaml.Unmarshal(f.Data, &root); err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, []error{fmt.Errorf("%s:%s: %s", f.Name, m[1], m[2])}
		}
		return nil, []error{fmt.Errorf("%s: %s", f.Name, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, nil // empty file
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return nil, nil
	}
	if doc.Kind != yaml.SequenceNode {
		return nil, []error{fmt.Errorf("%s:%d: want a list of rule, macro and list items, got %s", f.Name, doc.Line, kindName(doc))}
	}
	var items []*item
	var errs []error
	for _, n := range doc.Content {
		it, ierrs := parseItem(f.Name, n)
		errs = append(errs, ierrs...)
		if it != nil {
			items = append(items, it)
		}
	}
	return items, errs
}

func parseItem(file string, n *yaml.Node) (*item, []error) {
	if n.Kind != yaml.MappingNode {
		return nil, []error{fmt.Errorf("%s:%d: want a rule, macro or list item (a mapping), got %s", file, n.Line, kindName(n))}
	}
	it := &item{file: file, line: n.Line, enabled: true}
	values := map[string]*yaml.Node{}
	var errs []error
	var order []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := values[k.Value]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: duplicate field %q", file, k.Line, k.Value))
			continue
		}
		values[k.Value] = v
		order = append(order, k.Value)
	}
	var kinds []string
	for _, k := range []string{kindRule, kindMacro, kindList} {
		if _, ok := values[k]; ok {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		return nil, append(errs, fmt.Errorf("%s:%d: item has none of the keys rule, macro, list", file, n.Line))
	case 1:
	default:
		return nil, append(errs, fmt.Errorf("%s:%d: item has more than one of the keys rule, macro, list: %s", file, n.Line, strings.Join(kinds, ", ")))
	}
	it.kind = kinds[0]
	nameNode := values[it.kind]
	if nameNode.Kind != yaml.ScalarNode || strings.TrimSpace(nameNode.Value) == "" {
		return nil, append(errs, fmt.Errorf("%s:%d: %s name must be a non-empty string", file, nameNode.Line, it.kind))
	}
	it.name = nameNode.Value
	if it.kind != kindRule && !isIdent(it.name) {
		errs = append(errs, it.errorf(nameNode.Line, "name must be an identifier (letters, digits, _)"))
	}
	if it.kind != kindRule && reservedNames[it.name] {
		errs = append(errs, it.errorf(nameNode.Line, "name is reserved (a field or function of the rule language)"))
	}
	allowed := allowedKeys[it.kind]
	for _, k := range order {
		if !contains(allowed, k) {
			errs = append(errs, it.errorf(keyLine(n, k), "unknown field %q (want one of %s)", k, strings.Join(allowed, ", ")))
		}
	}
	for _, k := range requiredKeys[it.kind] {
		if _, ok := values[k]; !ok {
			errs = append(errs, it.errorf(n.Line, "missing field %q", k))
		}
	}
	str := func(key string) (string, int) {
		v, ok := values[key]
		if !ok {
			return "", 0
		}
		if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!int" && v.Tag != "!!float") {
			errs = append(errs, it.errorf(v.Line, "%s: want a string, got %s", key, kindName(v)))
			return "", v.Line
		}
		if strings.TrimSpace(v.Value) == "" {
			errs = append(errs, it.errorf(v.Line, "%s: must not be empty", key))
		}
		return v.Value, v.Line
	}
	switch it.kind {
	case kindRule:
		it.desc, _ = str("desc")
		it.condition, it.condLine = str("condition")
		it.output, it.outLine = str("output")
		if v, ok := values["priority"]; ok {
			p, err := alert.ParsePriority(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				errs = append(errs, it.errorf(v.Line, "priority: unknown priority %q (want one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)", v.Value))
			}
			it.priority = p
		}
		if v, ok := values["tags"]; ok {
			if err := v.Decode(&it.tags); err != nil || v.Kind != yaml.SequenceNode {
				errs = append(errs, it.errorf(v.Line, "tags: want a list of strings"))
			}
		}
		if v, ok := values["enabled"]; ok {
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				errs = append(errs, it.errorf(v.Line, "enabled: want true or false, got %q", v.Value))
			} else {
				it.enabled = v.Value == "true"
			}
		}
		if v, ok := values["enforce"]; ok {
			it.enforceLine = v.Line
			if err := it.enforce.UnmarshalText([]byte(v.Value)); err != nil || v.Kind != yaml.ScalarNode {
				errs = append(errs, it.errorf(v.Line, "enforce: unknown signal %q (want sigkill or sigstop)", v.Value))
			}
		}
	case kindMacro:
		it.condition, it.condLine = str("condition")
	case kindList:
		v, ok := values["items"]
		if !ok {
			break
		}
		it.itemLine = v.Line
		if v.Kind != yaml.SequenceNode {
			errs = append(errs, it.errorf(v.Line, "items: want a list, got %s", kindName(v)))
			break
		}
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				errs = append(errs, it.errorf(e.Line, "items: want scalars (strings or numbers), got %s", kindName(e)))
				continue
			}
			switch e.Tag {
			case "!!int", "!!float":
				it.items = append(it.items, e.Value)
			case "!!bool":
				it.items = append(it.items, e.Value)
			default:
				if isIdent(e.Value) && e.Style == 0 {
					// A bare identifier may name another list; resolved at compile.
					it.items = append(it.items, "@"+e.Value)
				} else {
					it.items = append(it.items, strconv.Quote(e.Value))
				}
			}
		}
	}
	return it, errs
}

func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return fmt.Sprintf("%q", n.Value)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}

// errorsJoin joins errs (nil when empty).
func errorsJoin(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}
