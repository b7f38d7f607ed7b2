package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/actions"
)

func newActionsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "actions [ACTION|GLOB]...",
		Short: "List every action with its parameters and the privileges it needs",
		Long: `List every action a playbook, Slack or 'riposte act' can run: its parameters (type, default,
whether required), whether it is destructive (counts toward the blast-radius limit, only approvers
may trigger it from Slack) and the privileges riposte needs to run it.

With no argument, one table of every action. With action names or globs ("container.*"), a
description of each matching action, help text included. --output json prints
{"actions":[{name, help, destructive, container, params:[{name, type, required, default, help}], privileges}]}.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withCode(exitBadInput, fmt.Errorf("--output: want text or json, got %q", output))
			}
			specs, err := selectSpecs(integrations.Catalog().Specs(), args)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			out := cmd.OutOrStdout()
			switch {
			case output == "json":
				err = writeActionsJSON(out, specs)
			case len(args) > 0:
				err = describeActions(out, specs)
			default:
				err = writeActionsTable(out, specs)
			}
			if err != nil {
				return withCode(exitFailed, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// selectSpecs keeps the specs matching any of patterns (all when none); a
// pattern that matches nothing is an error.
func selectSpecs(all []actions.Spec, patterns []string) ([]actions.Spec, error) {
	if len(patterns) == 0 {
		return all, nil
	}
	keep := make([]bool, len(all))
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", p, err)
		}
		found := false
		for i, s := range all {
			if ok, _ := path.Match(p, s.Name); ok {
				keep[i], found = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("no action matches %q (riposte actions lists them all)", p)
		}
	}
	var out []actions.Spec
	for i, s := range all {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out, nil
}

type actionJSON struct {
	Name        string      `json:"name"`
	Help        string      `json:"help"`
	Destructive bool        `json:"destructive"`
	Idempotent  bool        `json:"idempotent"`
	Container   bool        `json:"container"`
	Params      []paramJSON `json:"params"`
	Privileges  []string    `json:"privileges"`
}

type paramJSON struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Required bool     `json:"required"`
	Default  string   `json:"default,omitempty"`
	Enum     []string `json:"enum,omitempty"`
	Help     string   `json:"help"`
}

func writeActionsJSON(w io.Writer, specs []actions.Spec) error {
	doc := struct {
		Actions []actionJSON `json:"actions"`
	}{Actions: []actionJSON{}}
	for _, s := range specs {
		a := actionJSON{Name: s.Name, Help: s.Help, Destructive: s.Destructive, Idempotent: s.Idempotent, Container: s.Container,
			Params: []paramJSON{}, Privileges: s.Privileges}
		if a.Privileges == nil {
			a.Privileges = []string{}
		}
		for _, p := range s.Params {
			a.Params = append(a.Params, paramJSON{Name: p.Name, Type: p.Type.String(), Required: p.Required, Default: p.Default, Enum: p.Enum, Help: p.Help})
		}
		doc.Actions = append(doc.Actions, a)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func paramDefault(p actions.Param) string {
	switch {
	case p.Required:
		return "(required)"
	case p.Default == "":
		return "-"
	}
	return p.Default
}

// writeActionsTable prints one row per parameter and privilege, the action's
// own columns on its first row only.
func writeActionsTable(w io.Writer, specs []actions.Spec) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tDESTRUCTIVE\tPARAMETER\tTYPE\tDEFAULT\tPRIVILEGES")
	for _, s := range specs {
		rows := max(len(s.Params), len(s.Privileges), 1)
		for i := range rows {
			var name, destructive, param, typ, def, priv string
			if i == 0 {
				name, destructive = s.Name, yesNo(s.Destructive)
			}
			if i < len(s.Params) {
				p := s.Params[i]
				param, typ, def = p.Name, p.TypeName(), paramDefault(p)
			} else if i == 0 {
				param, typ, def = "-", "", ""
			}
			if i < len(s.Privileges) {
				priv = s.Privileges[i]
			} else if i == 0 {
				priv = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, destructive, param, typ, def, priv)
		}
	}
	return tw.Flush()
}

func describeActions(w io.Writer, specs []actions.Spec) error {
	var b strings.Builder
	for i, s := range specs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s\n  %s\n", s.Name, s.Help)
		if s.Destructive {
			b.WriteString("  destructive: yes (counts toward the blast-radius limit; from Slack, approvers only)\n")
		} else {
			b.WriteString("  destructive: no\n")
		}
		if s.Idempotent {
			b.WriteString("  idempotent: yes (running it again is a no-op, so its claim does not wait for the disk)\n")
		}
		if s.Container {
			b.WriteString("  target: the alert's container, or --container; protected containers are refused\n")
		}
		if len(s.Params) == 0 {
			b.WriteString("  parameters: none\n")
		} else {
			b.WriteString("  parameters:\n")
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			for _, p := range s.Params {
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", p.Name, p.TypeName(), paramDefault(p), p.Help)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if len(s.Privileges) == 0 {
			b.WriteString("  privileges: none\n")
		} else {
			b.WriteString("  privileges:\n")
			for _, p := range s.Privileges {
				fmt.Fprintf(&b, "    %s\n", p)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
