package main

import "github.com/spf13/cobra"

func newActCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "act ACTION",
		Short: "Run one action by hand against a container",
		RunE:  notBuilt("act"),
	}
}
