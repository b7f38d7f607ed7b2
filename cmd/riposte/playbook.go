package main

import "github.com/spf13/cobra"

func newPlaybookCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "playbook", Short: "Test and lint playbooks offline"}
	cmd.AddCommand(
		&cobra.Command{Use: "test ALERT.json", Short: "Show what the playbooks would do with an alert", RunE: notBuilt("playbook test")},
		&cobra.Command{Use: "lint", Short: "Load playbooks and report every error", RunE: notBuilt("playbook lint")},
	)
	return cmd
}
