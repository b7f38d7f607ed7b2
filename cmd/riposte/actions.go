package main

import "github.com/spf13/cobra"

func newActionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "actions",
		Short: "List every action with its parameters and the privileges it needs",
		RunE:  notBuilt("actions"),
	}
}
