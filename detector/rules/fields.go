package rules

import (
	"reflect"
	"sort"
	"strings"
)

// field is one leaf of Env, by its dotted name.
type field struct {
	name  string
	index []int
}

// fieldTable lists every leaf field of Env ("proc.name", "fd.sip", ...).
type fieldTable map[string]field

func buildFields() fieldTable {
	t := fieldTable{}
	var walk func(typ reflect.Type, prefix string, index []int)
	walk = func(typ reflect.Type, prefix string, index []int) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := f.Tag.Get("expr")
			if tag == "" {
				continue
			}
			name := tag
			if prefix != "" {
				name = prefix + "." + tag
			}
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, name, idx)
				continue
			}
			t[name] = field{name: name, index: idx}
		}
	}
	walk(reflect.TypeOf(Env{}), "", nil)
	return t
}

// FieldNames lists every field a condition, filter or output can use.
func FieldNames() []string {
	t := buildFields()
	out := make([]string, 0, len(t))
	for n := range t {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (t fieldTable) value(env *Env, name string) any {
	f, ok := t[name]
	if !ok {
		return nil
	}
	return reflect.ValueOf(env).Elem().FieldByIndex(f.index).Interface()
}

// tree returns env as nested maps keyed by the dotted names' parts, for Go
// templates: {{ .proc.name }}.
func (t fieldTable) tree(env *Env) map[string]any {
	root := map[string]any{}
	for name := range t {
		parts := strings.Split(name, ".")
		m := root
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = t.value(env, name)
	}
	return root
}
