package email

import (
	htmltemplate "html/template"
	"slices"
	texttemplate "text/template"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// TemplateData is what the body templates see.
type TemplateData struct {
	Subject   string
	Incident  string
	HasAlert  bool
	Rule      string
	Priority  string
	Output    string
	Host      string
	Time      time.Time
	Container alert.Container
	// Target is the container the actions were about.
	Target string
	Fields []Field
	Steps  []actions.Step
	Alert  alert.Alert
	// Fold, for a throttled update, counts the alerts it stands for ("+37
	// more in 5 min"); the alert shown is the latest of them. "" otherwise.
	Fold string
}

// Field is one output field.
type Field struct{ Name, Value string }

var funcs = map[string]any{
	"utc": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"hm":  func(t time.Time) string { return t.UTC().Format("15:04:05") },
}

const defaultText = `{{if .HasAlert}}{{.Priority}}: {{.Rule}}{{else}}{{.Subject}}{{end}}
{{- if .Fold}}
{{.Fold}}; the latest is below.
{{- end}}

Incident:  {{.Incident}}
{{- if .Container.Name}}
Container: {{.Container.Name}}{{if .Container.ID}} ({{.Container.ID}}){{end}}
{{- else if .Target}}
Container: {{.Target}}
{{- end}}
{{- if .Container.Image}}
Image:     {{.Container.Image}}{{if .Container.Tag}}:{{.Container.Tag}}{{end}}
{{- end}}
{{- if .Host}}
Host:      {{.Host}}
{{- end}}
{{- if .HasAlert}}
Time:      {{utc .Time}}
{{- end}}
{{if .Output}}
{{.Output}}
{{end}}
{{- if .Fields}}
Details:
{{- range .Fields}}
  {{.Name}}: {{.Value}}
{{- end}}
{{end}}
What riposte did:
{{- range .Steps}}
  - {{hm .Time}} {{.Action}}: {{.Status}}{{if .Note}} ({{.Note}}){{end}}{{if .Actor}} by {{.Actor}}{{end}}
{{- else}}
  nothing yet
{{- end}}
`

const defaultHTML = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Subject}}</title></head>
<body style="font-family: sans-serif">
<h2>{{if .HasAlert}}{{.Priority}}: {{.Rule}}{{else}}{{.Subject}}{{end}}</h2>
{{- if .Fold}}
<p><b>{{.Fold}}</b>; the latest is below.</p>
{{- end}}
<table>
<tr><th align="left">Incident</th><td><code>{{.Incident}}</code></td></tr>
{{- if .Container.Name}}
<tr><th align="left">Container</th><td>{{.Container.Name}}{{if .Container.ID}} (<code>{{.Container.ID}}</code>){{end}}</td></tr>
{{- else if .Target}}
<tr><th align="left">Container</th><td><code>{{.Target}}</code></td></tr>
{{- end}}
{{- if .Container.Image}}
<tr><th align="left">Image</th><td>{{.Container.Image}}{{if .Container.Tag}}:{{.Container.Tag}}{{end}}</td></tr>
{{- end}}
{{- if .Host}}
<tr><th align="left">Host</th><td>{{.Host}}</td></tr>
{{- end}}
{{- if .HasAlert}}
<tr><th align="left">Time</th><td>{{utc .Time}}</td></tr>
{{- end}}
</table>
{{- if .Output}}
<p><code>{{.Output}}</code></p>
{{- end}}
{{- if .Fields}}
<h3>Details</h3>
<table>
{{- range .Fields}}
<tr><th align="left"><code>{{.Name}}</code></th><td><code>{{.Value}}</code></td></tr>
{{- end}}
</table>
{{- end}}
<h3>What riposte did</h3>
<ul>
{{- range .Steps}}
<li>{{hm .Time}} <b>{{.Action}}</b>: {{.Status}}{{if .Note}} ({{.Note}}){{end}}{{if .Actor}} by {{.Actor}}{{end}}</li>
{{- else}}
<li>nothing yet</li>
{{- end}}
</ul>
</body></html>
`

func parseText(name, src string) (*texttemplate.Template, error) {
	return texttemplate.New(name).Funcs(funcs).Option("missingkey=error").Parse(src)
}

func parseHTML(name, src string) (*htmltemplate.Template, error) {
	return htmltemplate.New(name).Funcs(funcs).Option("missingkey=error").Parse(src)
}

// keyFields lead the details, in this order; the other output fields follow
// sorted by name.
var keyFields = []string{"user.name", "proc.name", "proc.cmdline", "proc.pname", "proc.exepath", "fd.name", "evt.type"}

func fieldsOf(a alert.Alert) []Field {
	var out []Field
	seen := map[string]bool{}
	for _, k := range keyFields {
		if v := a.Field(k); v != "" {
			out = append(out, Field{k, v})
			seen[k] = true
		}
	}
	var rest []string
	for k := range a.OutputFields {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		if v := a.Field(k); v != "" {
			out = append(out, Field{k, v})
		}
	}
	return out
}
