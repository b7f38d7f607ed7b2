package actions

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ParamType is the type of an action parameter, checked when a playbook loads.
type ParamType int

// Parameter types.
const (
	String     ParamType = iota // free text; may be a template
	Duration                    // Go duration: 30s, 5m
	Int                         // integer
	Bool                        // true / false
	Bytes                       // size: 1048576, 512KiB, 50MB, 1GiB
	Signal                      // signal name or number: KILL, SIGTERM, 9
	StringList                  // list of strings
)

func (t ParamType) String() string {
	switch t {
	case String:
		return "string"
	case Duration:
		return "duration"
	case Int:
		return "int"
	case Bool:
		return "bool"
	case Bytes:
		return "size"
	case Signal:
		return "signal"
	case StringList:
		return "list of strings"
	}
	return "ParamType(" + strconv.Itoa(int(t)) + ")"
}

// Param describes one `with` key of an action.
type Param struct {
	Name     string
	Type     ParamType
	Required bool
	Default  string // shown by `riposte actions`; "" when none
	// Enum, when set, lists the accepted values (compared after trimming
	// space and lowering case); the playbook loader rejects any other.
	Enum []string
	Help string
}

// Check checks a literal value against the parameter's type and, for an
// enum, against its values. The playbook loader calls it for literals and
// again for templates once they are rendered.
func (p Param) Check(v any) error {
	if err := CheckValue(p.Type, v); err != nil {
		return err
	}
	if len(p.Enum) == 0 {
		return nil
	}
	s := strings.ToLower(strings.TrimSpace(fmt.Sprint(v)))
	for _, e := range p.Enum {
		if s == e {
			return nil
		}
	}
	return fmt.Errorf("want one of %s, got %s", strings.Join(p.Enum, ", "), describe(v))
}

// TypeName is the parameter's type as `riposte actions` shows it: the
// values of an enum ("critical|error|warning|info"), else the type.
func (p Param) TypeName() string {
	if len(p.Enum) > 0 {
		return strings.Join(p.Enum, "|")
	}
	return p.Type.String()
}

// ParamChecker is implemented by a runner whose parameters depend on its
// configuration (a webhook endpoint name). When serve builds the app it
// calls CheckParams for every action of every playbook with the literal
// `with` values (templates are known only per alert), so a name the config
// does not define fails at start, naming the playbook's file and line,
// instead of at delivery.
type ParamChecker interface {
	CheckParams(action string, with Params) error
}

// Spec is what an integration says about one action it implements.
type Spec struct {
	Name string // "container.pause"
	Help string
	// Params are the accepted `with` keys; any other key is a load error.
	Params []Param
	// Privileges the process needs to run the action ("docker API socket").
	Privileges []string
	// Destructive actions change a container's state; they count towards the
	// blast-radius limit and only configured approvers may trigger them from Slack.
	Destructive bool
	// Container actions act on the alert's container and go through the
	// protected-container guardrail.
	Container bool

	// What the engine does with the action besides running it. The engine
	// knows actions only through these flags, never by name.

	// Notification actions are delivered through the durable outbox (retried
	// with backoff), never inline with containment.
	Notification bool
	// Releases: when the action succeeds by hand on an incident, the
	// incident is released (closed); containment was undone.
	Releases bool
	// OnRelease actions are queued, when their integration is configured,
	// each time an incident is released (a page is resolved).
	OnRelease bool
	// NoteParam, when set, makes the action a journal note: the engine
	// records this parameter's rendered value and runs nothing.
	NoteParam string
	// Idempotent actions are harmless to run again whatever the first run
	// did (pausing a paused or frozen container is a no-op). The engine
	// claims them with an urgent write (store.Urgent: answered at commit,
	// before the fsync), so containment does not wait for the disk; a
	// claim lost in a power cut then only means running it once more.
	Idempotent bool
}

// Param returns the parameter called name.
func (s Spec) Param(name string) (Param, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Catalog is the set of actions riposte knows, by name.
type Catalog struct {
	byName map[string]Spec
	names  []string
}

// NewCatalog builds a catalog; a duplicate name is a programming error and
// is reported as such.
func NewCatalog(specs ...Spec) (*Catalog, error) {
	c := &Catalog{byName: make(map[string]Spec, len(specs))}
	for _, s := range specs {
		if _, dup := c.byName[s.Name]; dup {
			return nil, fmt.Errorf("build action catalog: %q declared twice", s.Name)
		}
		c.byName[s.Name] = s
		c.names = append(c.names, s.Name)
	}
	sort.Strings(c.names)
	return c, nil
}

// Lookup returns the spec of an action.
func (c *Catalog) Lookup(name string) (Spec, bool) {
	s, ok := c.byName[name]
	return s, ok
}

// Names returns every action name, sorted.
func (c *Catalog) Names() []string { return append([]string(nil), c.names...) }

// Specs returns every spec, sorted by name.
func (c *Catalog) Specs() []Spec {
	out := make([]Spec, 0, len(c.names))
	for _, n := range c.names {
		out = append(out, c.byName[n])
	}
	return out
}

// CheckValue checks a literal parameter value against its type. Strings that
// contain a template are checked after rendering, not here.
func CheckValue(t ParamType, v any) error {
	switch t {
	case String:
		switch v.(type) {
		case string, int, int64, float64, bool:
			return nil
		}
		return fmt.Errorf("want a string, got %s", describe(v))
	case Duration:
		_, err := AsDuration(v)
		return err
	case Int:
		_, err := AsInt(v)
		return err
	case Bool:
		_, err := AsBool(v)
		return err
	case Bytes:
		_, err := AsBytes(v)
		return err
	case Signal:
		_, err := AsSignal(v)
		return err
	case StringList:
		_, err := AsStringList(v)
		return err
	}
	return fmt.Errorf("unknown parameter type %v", t)
}

// AsDuration converts a parameter value to a duration.
func AsDuration(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("want a duration such as 30s or 5m, got %s", describe(v))
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration such as 30s or 5m, got %q", s)
	}
	return d, nil
}

// AsInt converts a parameter value to an integer.
func AsInt(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return i, nil
		}
		return 0, fmt.Errorf("want an integer, got %q", x)
	}
	return 0, fmt.Errorf("want an integer, got %s", describe(v))
}

// AsBool converts a parameter value to a boolean.
func AsBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, nil
		}
		return false, fmt.Errorf("want true or false, got %q", x)
	}
	return false, fmt.Errorf("want true or false, got %s", describe(v))
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// AsBytes converts a size (a number of bytes or 512KiB, 50MB, 1GiB) to bytes.
func AsBytes(v any) (int64, error) {
	if s, ok := v.(string); ok {
		t := strings.TrimSpace(s)
		for _, u := range sizeUnits {
			if strings.HasSuffix(t, u.suffix) {
				n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), 10, 64)
				if err != nil || n < 0 || n > (1<<62)/u.mult {
					return 0, fmt.Errorf("want a size such as 1048576, 512KiB or 50MB, got %q", s)
				}
				return n * u.mult, nil
			}
		}
	}
	n, err := AsInt(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size such as 1048576, 512KiB or 50MB, got %s", describe(v))
	}
	return n, nil
}

var signals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ABRT": 6, "KILL": 9, "USR1": 10, "USR2": 12,
	"TERM": 15, "CONT": 18, "STOP": 19,
}

// AsSignal converts a signal name (KILL, SIGTERM) or number to the name
// Docker accepts ("KILL").
func AsSignal(v any) (string, error) {
	if n, err := AsInt(v); err == nil {
		for name, num := range signals {
			if int64(num) == n {
				return name, nil
			}
		}
		return "", fmt.Errorf("want a signal such as KILL or TERM, got %d", n)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a signal such as KILL or TERM, got %s", describe(v))
	}
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if _, ok := signals[name]; !ok {
		return "", fmt.Errorf("want a signal such as KILL or TERM, got %q", s)
	}
	return name, nil
}

// AsStringList converts a parameter value to a list of strings; a single
// string is a list of one.
func AsStringList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, got an element %s", describe(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, got %s", describe(v))
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}
