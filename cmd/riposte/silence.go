package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
)

// silenceFlags are the flags every silence subcommand shares.
type silenceFlags struct {
	configPath, data, storeURL, output string
}

func (f *silenceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.configPath, "config", "", "config file (riposte.yaml)")
	fl.StringVar(&f.data, "data", "", "data directory (default ./riposte-data)")
	storeFlag(fl, &f.storeURL)
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
}

// run sends op to the server (or the store) and prints the answer.
func (f *silenceFlags) run(cmd *cobra.Command, op assembly.SilenceOp) error {
	if f.output != "text" && f.output != "json" {
		return withCode(exitBadInput, fmt.Errorf("--output: want text or json, got %q", f.output))
	}
	cfg, err := assembly.LoadConfig(f.configPath, assembly.Overrides{Data: f.data, Store: f.storeURL})
	if err != nil {
		return withCode(exitBadInput, err)
	}
	resp, how, err := assembly.Silence(cmd.Context(), cfg, op)
	if err != nil {
		if errors.Is(err, assembly.ErrSilenceRefused) {
			return withCode(exitBadInput, err)
		}
		return withCode(exitFailed, err)
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		var doc any = resp.Silence
		if op.Kind == assembly.SilenceList {
			doc = resp.Silences
			if resp.Silences == nil {
				doc = []store.Silence{}
			}
		}
		return enc.Encode(doc)
	}
	if op.Kind == assembly.SilenceList {
		printSilences(out, resp.Silences, time.Now())
		return nil
	}
	s := resp.Silence
	verb := map[assembly.SilenceOpKind]string{assembly.SilenceAdd: "created", assembly.SilenceExpire: "expired",
		assembly.SilenceDelete: "deleted", assembly.SilenceApprove: "approved"}[op.Kind]
	fmt.Fprintf(out, "silence %s %s (%s)\n", s.ID, verb, how)
	fmt.Fprintf(out, "  %s, scope %s, %s to %s\n", describeMatcher(s.Matcher), s.Scope, s.StartsAt.Local().Format(time.DateTime), s.EndsAt.Local().Format(time.DateTime))
	if s.State == store.SilenceStatePending {
		fmt.Fprintf(out, "  pending: scope all mutes containment too; another operator approves it with: riposte silence approve %s\n", s.ID)
	}
	return nil
}

func printSilences(out io.Writer, list []store.Silence, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(out, "no silences")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSCOPE\tMATCHER\tENDS\tBY\tCOMMENT")
	for _, s := range list {
		state := string(s.State)
		switch {
		case s.State == store.SilenceStateActive && s.StartsAt.After(now):
			state = "scheduled"
		case s.State == store.SilenceStateActive && !s.EndsAt.After(now):
			state = "ended"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, state, s.Scope, describeMatcher(s.Matcher),
			s.EndsAt.Local().Format(time.DateTime), s.CreatedBy, s.Comment)
	}
	tw.Flush()
}

// describeMatcher is a matcher on one line: rule="Read*" namespace=ops.
func describeMatcher(m store.SilenceMatcher) string {
	var parts []string
	add := func(name string, list []string) {
		for _, v := range list {
			parts = append(parts, fmt.Sprintf("%s=%q", name, v))
		}
	}
	add("rule", m.Rules)
	if m.Priority != "" {
		parts = append(parts, "priority"+m.Priority)
	}
	add("tag", m.Tags)
	add("container", m.Containers)
	add("image", m.Images)
	add("pod", m.Pods)
	add("namespace", m.Namespaces)
	if m.When != "" {
		parts = append(parts, fmt.Sprintf("when=%q", m.When))
	}
	return strings.Join(parts, " ")
}

func newSilenceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "silence add|list|expire|approve|delete",
		Short: "Mute the actions of matching alerts for a time",
		Long: `A silence mutes, for a time, the actions of the alerts it matches: with scope notify (the
default) their notifications (Slack, PagerDuty, email, webhook), while containment still runs;
with scope all every action. Silenced alerts are still stored, grouped into incidents and
journaled with the silence that matched (alert.silenced), their muted actions as action.skipped,
reason silenced. A silence of scope all waits for another operator's approval (riposte silence
approve ID). Creating, approving, expiring and deleting a silence, and its natural end, are
journaled.

Like riposte act, these commands go through the running server (its local socket, or over
HTTP(S) with an operator token from RIPOSTE_OPERATOR_TOKEN), else to the store directly.`,
	}
	cmd.AddCommand(newSilenceAddCmd(), newSilenceListCmd(),
		newSilenceEndCmd(assembly.SilenceExpire, "End a silence now (its history stays: it applied until now)"),
		newSilenceEndCmd(assembly.SilenceDelete, "Withdraw a silence: as if it had never been (playbook replay ignores it)"),
		newSilenceEndCmd(assembly.SilenceApprove, "Approve a silence of scope all (another person than its creator)"))
	return cmd
}

func newSilenceAddCmd() *cobra.Command {
	var (
		f        silenceFlags
		m        store.SilenceMatcher
		forD     time.Duration
		until    string
		start    string
		scope    string
		comment  string
		priority string
	)
	cmd := &cobra.Command{
		Use:   "add (--rule GLOB | --priority CMP | --tag T | --container GLOB | --image GLOB | --pod GLOB | --namespace GLOB | --when EXPR)... (--for DURATION | --until TIME)",
		Short: "Create a silence",
		Example: `  riposte silence add --rule 'Read sensitive file*' --for 1h --comment 'backup job'
  riposte silence add --namespace staging --image 'registry/batch:*' --for 8h --comment 'load test'
  riposte silence add --rule 'Terminal shell*' --container 'debug-*' --scope all --for 30m --comment 'debugging'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &silence.Request{Matcher: m, Scope: store.SilenceScope(scope), Comment: comment}
			req.Matcher.Priority = priority
			if forD != 0 {
				req.Duration = forD.String()
			}
			for _, t := range []struct {
				flag, v string
				dst     *time.Time
			}{{"--until", until, &req.EndsAt}, {"--start", start, &req.StartsAt}} {
				if t.v == "" {
					continue
				}
				at, err := time.Parse(time.RFC3339, t.v)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("%s: want an RFC 3339 time (2026-01-02T15:04:05Z): %w", t.flag, err))
				}
				*t.dst = at
			}
			// The server checks again; checking here names the flags.
			if _, err := req.Silence(time.Now(), "cli"); err != nil {
				return withCode(exitBadInput, err)
			}
			return f.run(cmd, assembly.SilenceOp{Kind: assembly.SilenceAdd, Request: req})
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringArrayVar(&m.Rules, "rule", nil, "rule name glob (repeatable: any of)")
	fl.StringVar(&priority, "priority", "", `priority comparison, as in playbooks (">=warning")`)
	fl.StringArrayVar(&m.Tags, "tag", nil, "tag the alert must have (repeatable: all of)")
	fl.StringArrayVar(&m.Containers, "container", nil, "container name or id glob (repeatable: any of)")
	fl.StringArrayVar(&m.Images, "image", nil, "image repository glob, or repository:tag glob (repeatable: any of)")
	fl.StringArrayVar(&m.Pods, "pod", nil, "Kubernetes pod name glob (repeatable: any of)")
	fl.StringArrayVar(&m.Namespaces, "namespace", nil, "Kubernetes namespace glob (repeatable: any of)")
	fl.StringVar(&m.When, "when", "", "expr-lang condition, as a playbook's match.when")
	fl.DurationVar(&forD, "for", 0, "how long from the start (1h, 30m)")
	fl.StringVar(&until, "until", "", "end time, RFC 3339 (instead of --for)")
	fl.StringVar(&start, "start", "", "start time, RFC 3339 (default now)")
	fl.StringVar(&scope, "scope", "notify", "notify: mute notifications, containment still runs; all: mute every action (needs another operator's approval)")
	fl.StringVar(&comment, "comment", "", "why (journaled)")
	return cmd
}

func newSilenceListCmd() *cobra.Command {
	var f silenceFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the silences in force or to come (--all: every silence ever made)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, assembly.SilenceOp{Kind: assembly.SilenceList, All: all})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "also ended, expired and deleted silences")
	return cmd
}

func newSilenceEndCmd(kind assembly.SilenceOpKind, short string) *cobra.Command {
	var f silenceFlags
	cmd := &cobra.Command{
		Use:   string(kind) + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, assembly.SilenceOp{Kind: kind, ID: args[0]})
		},
	}
	f.register(cmd)
	return cmd
}
