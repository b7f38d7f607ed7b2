package main

import "github.com/spf13/cobra"

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP server and the response engine (and the detector when enabled)",
		RunE:  notBuilt("serve"),
	}
}
