package main

import "github.com/spf13/cobra"

func newJournalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "journal", Short: "Read and verify the incident-response journal"}
	cmd.AddCommand(
		&cobra.Command{Use: "show", Short: "Print journal entries", RunE: notBuilt("journal show")},
		&cobra.Command{Use: "verify", Short: "Check the journal's hash chain", RunE: notBuilt("journal verify")},
	)
	return cmd
}
