package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/internal/replay"
	"github.com/riposte-sec/riposte/internal/store"
)

func newPlaybookReplayCmd() *cobra.Command {
	var (
		paths    []string
		since    time.Duration
		data     string
		storeURL string
		output   string
	)
	cmd := &cobra.Command{
		Use:   "replay --since DURATION --playbooks PATH... [--data DIR | --store URL]",
		Short: "Show what the given playbooks would have done with the stored alerts of a window",
		Long: `Replay runs the alerts the store received in the last --since through the given playbooks in
dry run (nothing is executed, nothing is written to the store), with the silences that were in
force when each alert was received, and prints, per alert, the actions that would be added or
removed compared with what the journal recorded. An action counts when it was planned and not
skipped by its if, for want of a container, or by a silence; dry runs, guardrails, approvals and
run-time outcomes do not change what counts. The store keeps processed alerts for its duplicate
window (24h by default): older alerts are not replayed.

Exit status: 0 nothing differs, 1 some alert differs (for playbook CI), 2 bad input.`,
		Example: `  riposte playbook replay --since 24h --playbooks ./playbooks
  riposte playbook replay --since 2h --playbooks ./playbooks --store postgres://riposte@db/riposte --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return withCode(exitBadInput, fmt.Errorf("--output: want text or json, got %q", output))
			}
			if since <= 0 {
				return withCode(exitBadInput, errors.New("--since: want a positive duration (24h, 90m)"))
			}
			set, err := loadPlaybooks(paths)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			ctx := cmd.Context()
			var src replay.Source
			if storeURL != "" {
				s, err := assembly.OpenStore(ctx, storeURL, "", store.Options{ReadOnly: true})
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("%w (is --store the servers' database?)", err))
				}
				defer s.Close()
				src = s
			} else {
				s, err := store.Open(store.PathIn(data), store.Options{ReadOnly: true})
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("%w (is --data %s the server's data directory?)", err, data))
				}
				defer s.Close()
				src = s
			}
			rep, err := replay.Run(ctx, src, set, time.Now().Add(-since))
			if err != nil {
				return withCode(exitFailed, err)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return withCode(exitFailed, err)
				}
			} else {
				printReplay(out, rep)
			}
			if rep.Differ > 0 {
				return withCode(exitFailed, fmt.Errorf("%d of %d alerts would be handled otherwise", rep.Differ, rep.Alerts))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&paths, "playbooks", nil, "playbook file or directory (repeatable)")
	f.DurationVar(&since, "since", 24*time.Hour, "replay the alerts received in this last span")
	f.StringVar(&data, "data", "riposte-data", "data directory")
	storeFlag(f, &storeURL)
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printReplay(out io.Writer, rep replay.Report) {
	for _, r := range rep.Results {
		if !r.Differs() {
			continue
		}
		where := r.Container
		if where == "" {
			where = "host"
		}
		fmt.Fprintf(out, "%s  %s  %s in %s", r.ReceivedAt.Local().Format(time.DateTime), r.Alert, r.Rule, where)
		if r.Silence != "" {
			fmt.Fprintf(out, "  (silenced by %s)", r.Silence)
		}
		fmt.Fprintln(out)
		for _, a := range r.Added {
			fmt.Fprintf(out, "  + %s\n", a)
		}
		for _, a := range r.Removed {
			fmt.Fprintf(out, "  - %s\n", a)
		}
	}
	fmt.Fprintf(out, "%d alerts since %s replayed, %d would be handled otherwise\n", rep.Alerts, rep.Since.Local().Format(time.DateTime), rep.Differ)
}
