package main

import "github.com/spf13/cobra"

func newCICmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ci -- CMD ARGS...",
		Short: "Staging guard: watch while CMD runs, contain misbehaving containers, report, fail the job on incidents",
		RunE:  notBuilt("ci"),
	}
}
