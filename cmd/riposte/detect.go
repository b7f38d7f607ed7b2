package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/internal/alert"
)

func newDetectCmd() *cobra.Command {
	var (
		rulePaths []string
		output    string
		verbose   bool
		lint      bool
		stats     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "detect",
		Short: "Run the eBPF detector alone and print alerts",
		Long: "Run the eBPF detector alone and print one alert per line on stdout: Falco's JSON shape with --output json, " +
			"Falco's text line otherwise. Without --rules the built-in default rules are used. Needs root and kernel BTF. " +
			"With --check only the rules are loaded and checked. On exit (SIGINT, SIGTERM) the counters (events, filtered in the kernel, " +
			"dropped in the kernel and in the queue, alerts per rule) are printed on stderr as one line, a JSON object with " +
			"--output json; --stats INTERVAL prints them also every INTERVAL.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "json" && output != "text" {
				return withCode(exitBadInput, fmt.Errorf("--output must be json or text, got %q", output))
			}
			if stats < 0 {
				return withCode(exitBadInput, fmt.Errorf("--stats must be a positive interval (10s, 1m) or 0 for none, got %s", stats))
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			deps := detector.Deps{Logger: log}
			if !lint {
				cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
				if err != nil {
					log.Warn("no Docker client: alerts will carry container ids only", "err", err)
				} else {
					defer cli.Close()
					ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
					if _, err := cli.Ping(ctx); err != nil {
						log.Warn("Docker daemon unreachable: alerts will carry container ids only", "err", err)
					} else {
						deps.Docker = cli
					}
					cancel()
				}
			}
			d, err := detector.New(detector.Config{Enabled: true, Rules: rulePaths}, deps)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			if lint {
				fmt.Fprintf(cmd.OutOrStdout(), "%d rules loaded\n", len(d.Rules().Rules()))
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := &alertWriter{w: cmd.OutOrStdout(), json: output == "json"}
			sp := &statsPrinter{w: cmd.ErrOrStderr(), json: output == "json", d: d}
			var periodic sync.WaitGroup
			pctx, pstop := context.WithCancel(ctx)
			if stats > 0 {
				periodic.Go(func() { sp.every(pctx, d.Ready(), stats) })
			}
			runErr := d.Run(ctx, w.write)
			pstop() // Run may fail before Ready: stop waiting for it
			periodic.Wait()
			if runErr != nil {
				return withCode(exitFailed, runErr)
			}
			if err := sp.print(true); err != nil {
				return withCode(exitFailed, err)
			}
			return w.err
		},
	}
	cmd.Flags().StringArrayVar(&rulePaths, "rules", nil, "rules file or directory (repeatable); default: the built-in rules")
	cmd.Flags().StringVar(&output, "output", "text", "alert format: json (one object per line) or text")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "debug logging on stderr")
	cmd.Flags().BoolVar(&lint, "check", false, "load and check the rules, then exit")
	cmd.Flags().DurationVar(&stats, "stats", 0, "also print the counters on stderr every INTERVAL (10s); 0: only on exit")
	return cmd
}

// alertWriter prints alerts, one per line.
type alertWriter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	err  error
}

func (a *alertWriter) write(al alert.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var line []byte
	if a.json {
		b, err := json.Marshal(al)
		if err != nil {
			a.err = fmt.Errorf("write alert: %w", err)
			return
		}
		line = b
	} else {
		line = []byte(al.Output)
	}
	line = append(line, '\n')
	if _, err := a.w.Write(line); err != nil && a.err == nil {
		a.err = fmt.Errorf("write alert: %w", err)
	}
}
