package playbooks

import (
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/riposte-sec/riposte/internal/alert"
)

// plainTemplate is a template made only of text and the alert's text
// fields ({{ .Rule }}, {{ .Field "container.name" }}, …), rendered by
// appending them instead of running text/template, whose reflection cost
// more per alert than matching it. It prints what text/template prints:
// each field is a string, printed as is.
type plainTemplate struct {
	parts []plainPart
}

// plainPart is literal text, or a field of the alert: one of
// plainFields, or (field == "Field") the output field named by arg.
type plainPart struct {
	text, field, arg string
}

// plainFields are TemplateData's string fields a plainTemplate reads.
var plainFields = map[string]func(*alert.Alert) string{
	"ID":       func(a *alert.Alert) string { return a.ID },
	"Rule":     func(a *alert.Alert) string { return a.Rule },
	"Priority": func(a *alert.Alert) string { return a.Priority.String() },
	"Output":   func(a *alert.Alert) string { return a.Output },
	"Source":   func(a *alert.Alert) string { return a.Source },
	"Hostname": func(a *alert.Alert) string { return a.Hostname },
}

// compilePlain returns t as a plainTemplate, or nil when t does anything
// else (a function, a pipeline, a variable, a control structure, another
// field): such a template runs through text/template.
func compilePlain(t *template.Template) *plainTemplate {
	if t == nil || t.Tree == nil || t.Tree.Root == nil || len(t.Templates()) > 1 {
		return nil
	}
	var p plainTemplate
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			p.parts = append(p.parts, plainPart{text: string(n.Text)})
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 || len(n.Pipe.Cmds) != 1 {
				return nil
			}
			args := n.Pipe.Cmds[0].Args
			f, ok := args[0].(*parse.FieldNode)
			if !ok || len(f.Ident) != 1 {
				return nil
			}
			switch {
			case len(args) == 1 && plainFields[f.Ident[0]] != nil:
				p.parts = append(p.parts, plainPart{field: f.Ident[0]})
			case len(args) == 2 && f.Ident[0] == "Field":
				s, ok := args[1].(*parse.StringNode)
				if !ok {
					return nil
				}
				p.parts = append(p.parts, plainPart{field: "Field", arg: s.Text})
			default:
				return nil
			}
		default:
			return nil
		}
	}
	return &p
}

// render is what t.Execute writes for a's TemplateData.
func (p *plainTemplate) render(a *alert.Alert) string {
	var b strings.Builder
	for _, part := range p.parts {
		switch part.field {
		case "":
			b.WriteString(part.text)
		case "Field":
			b.WriteString(a.Field(part.arg))
		default:
			b.WriteString(plainFields[part.field](a))
		}
	}
	return b.String()
}
