package playbooks

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/riposte-sec/riposte/internal/alert"
)

// Env is what `when` and `if` expressions see. Field names are checked when
// a playbook loads, so a typo is a load error.
type Env struct {
	Rule      string         `expr:"rule"`
	Priority  int            `expr:"priority"`
	Source    string         `expr:"source"`
	Tags      []string       `expr:"tags"`
	Hostname  string         `expr:"hostname"`
	Output    string         `expr:"output"`
	Fields    map[string]any `expr:"fields"`
	Container EnvContainer   `expr:"container"`
	Time      time.Time      `expr:"time"`

	// Priority constants, so that `priority >= Critical` reads naturally.
	Emergency     int `expr:"Emergency"`
	Alert         int `expr:"Alert"`
	Critical      int `expr:"Critical"`
	Error         int `expr:"Error"`
	Warning       int `expr:"Warning"`
	Notice        int `expr:"Notice"`
	Informational int `expr:"Informational"`
	Debug         int `expr:"Debug"`
}

// EnvContainer is the alert's container in expressions.
type EnvContainer struct {
	ID    string `expr:"id"`
	Name  string `expr:"name"`
	Image string `expr:"image"`
	Tag   string `expr:"tag"`
}

// NewEnv builds the expression environment of an alert.
func NewEnv(a *alert.Alert) Env {
	c := a.Container()
	return Env{
		Rule: a.Rule, Priority: int(a.Priority), Source: a.Source, Tags: a.Tags, Hostname: a.Hostname,
		Output: a.Output, Fields: a.OutputFields, Time: a.Time,
		Container: EnvContainer{ID: c.ID, Name: c.Name, Image: c.Image, Tag: c.Tag},
		Emergency: int(alert.PriorityEmergency), Alert: int(alert.PriorityAlert), Critical: int(alert.PriorityCritical),
		Error: int(alert.PriorityError), Warning: int(alert.PriorityWarning), Notice: int(alert.PriorityNotice),
		Informational: int(alert.PriorityInformational), Debug: int(alert.PriorityDebug),
	}
}

// compileCondition compiles a boolean expression against Env.
func compileCondition(src string) (*vm.Program, error) {
	return expr.Compile(src, expr.Env(Env{}), expr.AsBool())
}

// runCondition evaluates a compiled condition.
func runCondition(p *vm.Program, env *Env) (bool, error) {
	out, err := expr.Run(p, env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool) // AsBool guarantees the type
	return b, nil
}

// TemplateData is what `with` templates see: {{ .Rule }}, {{ .Priority }},
// {{ .Field "container.name" }}, {{ .Container.Image }}, {{ .Time }}, ...
type TemplateData struct {
	ID        string
	Rule      string
	Priority  string
	Output    string
	Source    string
	Hostname  string
	Tags      []string
	Time      time.Time
	Fields    map[string]any
	Container alert.Container
	alert     *alert.Alert
}

// Field returns an output field as text, "" when absent.
func (d TemplateData) Field(name string) string {
	if d.alert == nil {
		return ""
	}
	return d.alert.Field(name)
}

// NewTemplateData builds the template data of an alert.
func NewTemplateData(a *alert.Alert) TemplateData {
	return TemplateData{
		ID: a.ID, Rule: a.Rule, Priority: a.Priority.String(), Output: a.Output, Source: a.Source,
		Hostname: a.Hostname, Tags: a.Tags, Time: a.Time, Fields: a.OutputFields, Container: a.Container(), alert: a,
	}
}

var templateFuncs = template.FuncMap{
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"join":  strings.Join,
	"default": func(def string, v any) string {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
		if v != nil {
			if _, isString := v.(string); !isString {
				return toString(v)
			}
		}
		return def
	},
	"truncate": func(n int, s string) string {
		r := []rune(s)
		if len(r) <= n {
			return s
		}
		return string(r[:n])
	},
}

// sampleAlert is the data templates are test-executed with at load, so that
// a misspelt field ({{ .Rulee }}) fails the load, not the incident.
var sampleAlert = alert.Alert{
	ID: "00000000-0000-8000-8000-000000000000", Rule: "sample rule", Priority: alert.PriorityWarning,
	Output: "sample output", Source: "syscall", Hostname: "host", Tags: []string{"sample"},
	OutputFields: map[string]any{"container.id": "0123456789ab", "container.name": "sample"},
}

// Condition is a compiled boolean expression over Env, for matchers that
// live outside playbooks (silences) and must read exactly like a
// playbook's `when`. Safe for concurrent use.
type Condition struct{ prog *vm.Program }

// CompileCondition compiles src as a playbook's `when` is compiled.
func CompileCondition(src string) (*Condition, error) {
	p, err := compileCondition(src)
	if err != nil {
		return nil, errors.New(exprError(err))
	}
	return &Condition{prog: p}, nil
}

// Eval evaluates the condition on an alert.
func (c *Condition) Eval(a *alert.Alert) (bool, error) {
	env := NewEnv(a)
	ok, err := runCondition(c.prog, &env)
	if err != nil {
		return false, fmt.Errorf("evaluate condition: %s", firstLine(err.Error()))
	}
	return ok, nil
}
