package main

import (
	"errors"
	"fmt"
	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/internal/config"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/playbooks"
)

func newPlaybookCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "playbook", Short: "Test and lint playbooks offline"}
	cmd.AddCommand(newPlaybookTestCmd(), newPlaybookLintCmd(), newPlaybookReplayCmd())
	return cmd
}

func loadPlaybooks(paths []string) (*playbooks.Set, error) {
	if len(paths) == 0 {
		return nil, errors.New("no playbooks given: use --playbooks PATH (a file or a directory, repeatable)")
	}
	return playbooks.Load(integrations.Catalog(), paths...)
}

func newPlaybookTestCmd() *cobra.Command {
	var (
		paths  []string
		output string
		expect []string
	)
	cmd := &cobra.Command{
		Use:   "test ALERT.json",
		Short: "Show what the playbooks would do with an alert, offline",
		Long: `Load the playbooks, read the alert (one Falco JSON object, an array or NDJSON; "-" reads stdin)
and print the plan: which playbooks match, in order, with their rendered actions, and for every
playbook that does not match, the first reason. Nothing is executed.

Exit status: 0 done, 1 an --expect was not met, 2 bad input.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withCode(exitBadInput, fmt.Errorf("--output: want text or json, got %q", output))
			}
			set, err := loadPlaybooks(paths)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			data, err := readInput(cmd.InOrStdin(), args[0])
			if err != nil {
				return withCode(exitBadInput, err)
			}
			alerts, err := alert.Decode(data)
			if err != nil {
				return withCode(exitBadInput, fmt.Errorf("%s: %w", args[0], err))
			}
			for _, name := range expect {
				if _, ok := set.Lookup(name); !ok {
					return withCode(exitBadInput, fmt.Errorf("--expect %q: no playbook has that name", name))
				}
			}
			out := cmd.OutOrStdout()
			var unmet []string
			for i, a := range alerts {
				r := set.Test(a)
				if output == "json" {
					err = r.WriteJSON(out)
				} else {
					if i > 0 {
						fmt.Fprintln(out)
					}
					err = r.WriteText(out)
				}
				if err != nil {
					return withCode(exitFailed, err)
				}
				for _, name := range expect {
					if ok, reason := r.Matches(name); !ok {
						unmet = append(unmet, fmt.Sprintf("alert %s: expected playbook %q to match, but %s", a.ID, name, reason))
					}
				}
			}
			if len(unmet) > 0 {
				return withCode(exitFailed, errors.New(strings.Join(unmet, "\n")))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&paths, "playbooks", nil, "playbook file or directory (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringArrayVar(&expect, "expect", nil, "exit 1 unless this playbook matches (repeatable)")
	return cmd
}

func newPlaybookLintCmd() *cobra.Command {
	var (
		paths      []string
		configPath string
	)
	cmd := &cobra.Command{
		Use:   "lint",
		Short: "Load playbooks and report every error (file:line, playbook, field)",
		Long: "Load playbooks and report every error (file:line, playbook, field). With --config, also\n" +
			"check what depends on the configuration (webhook endpoint names, the Slack channel) and take\n" +
			"the config's playbooks when --playbooks is not given; no secret is read, nothing is contacted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg *config.Config
			if configPath != "" {
				c, err := assembly.LoadConfig(configPath, assembly.Overrides{})
				if err != nil {
					return withCode(exitFailed, err)
				}
				if err := c.Unknown(integrations.Sections()); err != nil {
					return withCode(exitFailed, err)
				}
				if len(paths) == 0 {
					paths = c.Playbooks
				}
				cfg = &c
			}
			set, err := loadPlaybooks(paths)
			if err != nil {
				return withCode(exitFailed, err)
			}
			if cfg != nil {
				if err := assembly.CheckParams(set, cfg); err != nil {
					return withCode(exitFailed, fmt.Errorf("the playbooks do not fit %s:\n%w", configPath, err))
				}
			}
			n := 0
			for _, b := range set.Playbooks() {
				n += len(b.Actions)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d playbooks, %d actions\n", len(set.Playbooks()), n)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&paths, "playbooks", nil, "playbook file or directory (repeatable)")
	cmd.Flags().StringVar(&configPath, "config", "", "also check against this config (riposte.yaml)")
	return cmd
}

// readInput reads a file, or stdin for "-".
func readInput(stdin io.Reader, path string) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read alert: %w", err)
	}
	return data, nil
}
