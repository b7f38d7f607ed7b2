package playbooks

import (
	"testing"
	"text/template"
	"time"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/alert"
)

func parseWith(t testing.TB, text string) *template.Template {
	t.Helper()
	tmpl, err := template.New("with.text").Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// TestPlainTemplate: a template of text and the alert's text fields
// renders without text/template to exactly what text/template writes;
// anything else is left to text/template.
func TestPlainTemplate(t *testing.T) {
	a := alert.Alert{
		ID: "a-1", Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Rule: "Terminal shell in container",
		Priority: alert.PriorityWarning, Output: "A shell <was> spawned & \"quoted\"\nsecond line", Source: "syscall",
		Hostname: "node-1", Tags: []string{"container"},
		OutputFields: map[string]any{"container.name": "api-7d9f", "proc.cmdline": "bash -i", "evt.num": int64(42), "ok": true, "f": 1.5, "nil": nil},
	}
	for _, tc := range []struct {
		text  string
		plain bool
	}{
		{`{{ .Rule }}: {{ .Field "proc.cmdline" }} in {{ .Field "container.name" }}`, true},
		{`{{ .Priority }} {{ .Rule }} on {{ .Hostname }}`, true},
		{`{{.ID}}/{{.Source}}: {{.Output}}`, true},
		{`  {{- .Rule -}}  ,  {{ .Field "evt.num" }} {{ .Field "ok" }} {{ .Field "f" }} [{{ .Field "nil" }}] [{{ .Field "absent" }}]`, true},
		{`{{/* a comment */}}{{ .Rule }}`, true},
		{`{{ upper .Rule }}`, false},
		{`{{ .Rule | lower }}`, false},
		{`{{ default "the host" (.Field "container.name") }}`, false},
		{`{{ .Container.ID }}`, false},
		{`{{ .Fields }}`, false},
		{`{{ .Tags }}`, false},
		{`{{ .Time }}`, false},
		{`{{ $r := .Rule }}{{ $r }}`, false},
		{`{{ if .Rule }}x{{ end }}`, false},
		{`{{ .Field .Rule }}`, false},
		{`{{ "text" }}`, false},
		{`{{ define "x" }}y{{ end }}{{ .Rule }}`, false},
	} {
		t.Run(tc.text, func(t *testing.T) {
			tmpl := parseWith(t, tc.text)
			p := compilePlain(tmpl)
			if (p != nil) != tc.plain {
				t.Fatalf("compilePlain: %v, want plain %v", p != nil, tc.plain)
			}
			if p == nil {
				return
			}
			want, err := renderTemplate(tmpl, NewTemplateData(&a))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.render(&a); got != want {
				t.Fatalf("render %q, text/template %q", got, want)
			}
		})
	}
}

// TestPlainTemplateInPlan: a loaded playbook's plain templates are planned
// as text/template renders them (the example playbooks, two alerts).
func TestPlainTemplateInPlan(t *testing.T) {
	set, err := Load(integrations.Catalog(), "../examples/playbooks")
	if err != nil {
		t.Fatal(err)
	}
	plain := 0
	for _, a := range []alert.Alert{sampleAlert, {ID: "h", Rule: "Terminal shell in container", Priority: alert.PriorityNotice, Hostname: "bench",
		Tags: []string{"container", "shell"}, OutputFields: map[string]any{"container.id": "000000000001", "container.name": "bench-1",
			"container.image.repository": "staging/bench", "proc.cmdline": "sh -i", "user.name": "root"}}} {
		for _, plan := range set.Match(&a) {
			for _, pa := range plan.Actions {
				for name, v := range pa.Action.With {
					if v.Template == nil || v.plain == nil {
						continue
					}
					plain++
					want, err := renderTemplate(v.Template, NewTemplateData(&a))
					if err != nil || pa.With[name] != want {
						t.Fatalf("%s with.%s planned %q, text/template %q (%v)", plan.Playbook.Name, name, pa.With[name], want, err)
					}
				}
			}
		}
	}
	if plain == 0 {
		t.Fatal("no plain template planned: the example playbooks have some")
	}
}

// FuzzPlainTemplate: whatever the text around the fields and the values
// of the fields, a plain template renders what text/template renders.
func FuzzPlainTemplate(f *testing.F) {
	f.Add("in ", " on ", "Terminal shell", "bash -i", "node-1")
	f.Add("", "{", "<&>", "\xff", "")
	f.Fuzz(func(t *testing.T, before, between, rule, field, host string) {
		tmpl, err := template.New("with.text").Funcs(templateFuncs).Option("missingkey=error").
			Parse(before + `{{ .Rule }}` + between + `{{ .Field "x" }}{{ .Hostname }}`)
		if err != nil {
			return // the text around made it another template
		}
		p := compilePlain(tmpl)
		if p == nil {
			return
		}
		a := alert.Alert{Rule: rule, Hostname: host, OutputFields: map[string]any{"x": field}}
		want, err := renderTemplate(tmpl, NewTemplateData(&a))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.render(&a); got != want {
			t.Fatalf("render %q, text/template %q", got, want)
		}
	})
}
