package main

import "github.com/spf13/cobra"

func newCaptureCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "capture", Short: "Work with capture files"}
	cmd.AddCommand(&cobra.Command{Use: "read FILE", Short: "Print the events of a capture file", RunE: notBuilt("capture read")})
	return cmd
}
