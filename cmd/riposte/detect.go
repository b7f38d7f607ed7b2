package main

import "github.com/spf13/cobra"

func newDetectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "detect",
		Short: "Run the eBPF detector alone and print alerts",
		RunE:  notBuilt("detect"),
	}
}
