package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
	"github.com/riposte-sec/riposte/responders/capture/capview"
)

func newCaptureCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "capture", Short: "Work with capture files"}
	cmd.AddCommand(newCaptureReadCmd())
	return cmd
}

func newCaptureReadCmd() *cobra.Command {
	var filter, output, view string
	cmd := &cobra.Command{
		Use:   "read FILE",
		Short: "Print the events of a capture file",
		Long: "Print the events of a capture file (syscalls.jsonl.gz of a capture.start directory), one line each like sysdig, " +
			"or one JSON event per line with --output json. --filter keeps the events matching an expression in the detection " +
			"rules' language, e.g. 'evt.type == \"open\" && fd.name startsWith \"/etc\"'. --view prints an incident-response view " +
			"instead: procs (process tree with command lines), connections (connect and accept with addresses), spy-users " +
			"(commands run from interactive shells) or files (files opened, with flags, and chmod, symlink, link, unlink, rename, truncate). An incomplete file (riposte stopped " +
			"while writing it) is printed up to where it ends, with a warning. Exit status 2 for a bad file, flag or filter.",
		Example: "  riposte capture read /var/lib/riposte/evidence/inc-1/3f2a1b4c5d6e/capture-20260507T210936.123Z/syscalls.jsonl.gz --view spy-users\n" +
			"  riposte capture read syscalls.jsonl.gz --filter 'evt.type == \"connect\"' --output json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := capview.ParseOutput(output)
			if err != nil {
				return withCode(exitBadInput, fmt.Errorf("--output: %w", err))
			}
			v, err := capview.ParseView(view)
			if err != nil {
				return withCode(exitBadInput, fmt.Errorf("--view: %w", err))
			}
			opts := capview.Options{Output: out, View: v}
			if filter != "" {
				if opts.Filter, err = rules.CompileFilter(filter); err != nil {
					return withCode(exitBadInput, fmt.Errorf("--filter: %w", err))
				}
			}
			r, f, err := capfile.Open(args[0])
			if err != nil {
				return withCode(exitBadInput, err)
			}
			defer f.Close()
			_, err = capview.Render(cmd.OutOrStdout(), r, opts)
			switch {
			case err == nil:
				if tr := r.Trailer(); tr != nil && tr.Lost.Total() > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "riposte: warning: the detector lost %d events while this capture ran (detector-wide count; some may be this container's)\n", tr.Lost.Total())
				}
				return nil
			case errors.Is(err, capfile.ErrIncomplete):
				fmt.Fprintf(cmd.ErrOrStderr(), "riposte: warning: %s: %v\n", args[0], err)
				return nil
			}
			return withCode(exitBadInput, fmt.Errorf("%s: %w", args[0], err))
		},
	}
	cmd.Flags().StringVar(&filter, "filter", "", "keep the events matching this expression (detection rule language)")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	cmd.Flags().StringVar(&view, "view", "", "procs, connections, spy-users or files (default: the events)")
	return cmd
}
