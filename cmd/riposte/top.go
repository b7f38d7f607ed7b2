package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/cmd/riposte/assembly/topfeed"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

func newTopCmd() *cobra.Command {
	var (
		configPath string
		data       string
		view       string
		filter     string
		logPath    string
		capture    string
		storeURL   string
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live incident-response console in the terminal",
		Long: `Top shows, live, what happens in the containers of this host and what riposte did about it:
containers (state, CPU, memory, processes, connections, alerts, open incident), procs (the process
tree), connections (new connections, refused and failed ones included), spy-users (commands typed in
interactive shells), files (opens, deletes, renames, chmods, links, truncates) and incidents (actions, approvals
waiting). When riposte serve holds the data directory, top reads the server's stream (authenticated
with the intake token); otherwise it runs the eBPF detector itself (root). With --capture FILE it
replays a capture (capture.start's syscalls.jsonl.gz) instead: [ and ] move a time cursor by 1s,
{ and } by 10s, and the views show what was true then; nothing can be acted on.

Keys: 1-6, tab or the F2 menu switch views; up/down select; enter shows the selected container's processes and
keeps the other views to it (esc: all containers); / filters rows with an expression of the
detector's rule language (proc.name == "nc", evt.errno == "ECONNREFUSED", fd.name startsWith "/etc"),
on the views whose rows carry its fields, or, when the text is not one, a substring; < and > choose the
sort column, i inverts it; a or F8 acts on the selected container or incident: p pause, u unpause,
q quarantine, r release, k kill, s snapshot, c capture, A approve and D deny a held action.
Pause, quarantine, kill and approve ask for y. Actions go through the same guardrails, approvals
and journal as riposte act, with you (the OS user) as the actor; refusals are shown. q quits.`,
		Example: `  sudo riposte top
  sudo riposte top --view spy-users
  sudo riposte top --filter 'container.name startsWith "shop-"'
  riposte top --capture evidence/inc-1/3f2a1b4c5d6e/capture-20260507T210936.123Z/syscalls.jsonl.gz --view spy-users`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := console.ParseView(view)
			if err != nil {
				return withCode(exitBadInput, fmt.Errorf("--view: %w", err))
			}
			if capture != "" {
				if filter != "" {
					return withCode(exitBadInput, fmt.Errorf("--filter: not with --capture (the / key filters a replay)"))
				}
				r, f, err := capfile.Open(capture)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("--capture: %w", err))
				}
				defer f.Close()
				m := console.New(console.Options{View: v, Replay: true, Compile: topfeed.CompileRowFilter})
				if err := console.Run(cmd.Context(), m, &topfeed.Replay{Reader: r, Name: capture}); err != nil {
					return withCode(exitFailed, err)
				}
				return nil
			}
			cfg, err := assembly.LoadConfig(configPath, assembly.Overrides{Data: data, Store: storeURL})
			if err != nil {
				return withCode(exitBadInput, err)
			}
			var logw io.Writer = io.Discard
			if logPath != "" {
				f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("--log: %w", err))
				}
				defer f.Close()
				logw = f
			}
			log := slog.New(slog.NewTextHandler(logw, nil))
			top, err := assembly.NewTop(cfg, filter, log)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			defer top.Close()
			m := console.New(console.Options{View: v, Actor: top.Actor, Title: top.How, Compile: topfeed.CompileRowFilter})
			if err := console.Run(cmd.Context(), m, top.Source); err != nil {
				return withCode(exitFailed, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "config file (riposte.yaml)")
	f.StringVar(&data, "data", "", "data directory (default ./riposte-data)")
	f.StringVar(&view, "view", "containers", "view to start in: containers, procs, connections, spy-users, files or incidents")
	f.StringVar(&filter, "filter", "", "in-process detector only: keep the events that match this expression of the detector's rule language")
	storeFlag(f, &storeURL)
	f.StringVar(&capture, "capture", "", "replay this capture file instead of watching live")
	f.StringVar(&logPath, "log", "", "write the detector's and top's log to this file (the terminal is the console's)")
	return cmd
}
