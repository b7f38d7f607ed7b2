package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
)

func newAgentCmd() *cobra.Command {
	var (
		o       assembly.AgentOptions
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "agent --replica URL [--replica URL]... [--node NAME]",
		Short: "Run a node agent: forward the node's alerts to the replicas and run its container actions",
		Long: `Agent runs on every node of a cluster beside riposte serve replicas. It runs the eBPF detector
(root; --detector=false turns it off) and sends every alert to the replicas' intake (POST /v1/alerts),
trying the --replica URLs in turn. An alert is first written to a spool in --data (fsynced) and removed
only once a replica answered 2xx: a replica outage is retried with backoff, and alerts spooled before a
restart are sent after it. The spool holds --spool-max alerts; beyond that alerts are counted
(riposte_agent_alerts_dropped_total) and logged as dropped. Every alert carries --node as its hostname
(default: the host name); the replicas address this node's container actions by it.

The bearer token (a token of scope agent in the replicas' auth.tokens, bound to this --node by its
node field) comes from --token-file or RIPOSTE_AGENT_TOKEN. For https replicas, --ca-file is trusted besides the system's roots, and
--cert-file/--key-file are presented when a replica requires client certificates. --input FILE|-
forwards Falco JSON alerts, one per line, from a file or stdin as well (Falco's file_output).

The agent also takes the container actions (pause, kill, quarantine, snapshot, capture, containerd's)
that replicas with cluster.route_container_actions address to its node, and runs them with the
docker, containerd and capture sections of its --config, under their guardrails (protected
containers; --dry-run). Each outcome is kept in --data until a replica recorded it; an action
claimed again after the agent died is answered from there, or reported in doubt, never run twice.
Its heartbeats let the replicas list it (GET /v1/agents) and fail the actions of a node whose
agent is gone after cluster.agent_timeout.

SIGTERM or SIGINT stops: what was handed over is spooled, and sent at the next start.`,
		Example: `  sudo riposte agent --replica https://riposte-0:8080 --replica https://riposte-1:8080 \
      --token-file /etc/riposte/agent.token --ca-file /etc/riposte/ca.pem --data /var/lib/riposte-agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.Replicas) == 0 {
				if env := os.Getenv("RIPOSTE_REPLICAS"); env != "" {
					o.Replicas = strings.Split(env, ",")
				} else {
					return withCode(exitBadInput, fmt.Errorf("no replica: pass --replica URL (repeatable) or set RIPOSTE_REPLICAS"))
				}
			}
			if o.SpoolMax < 0 {
				return withCode(exitBadInput, fmt.Errorf("--spool-max must be positive, got %d", o.SpoolMax))
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err := assembly.RunAgent(ctx, o, cmd.InOrStdin(), log, func(node string) {
				fmt.Fprintf(cmd.OutOrStdout(), "riposte agent of node %s forwarding to %s\n", node, strings.Join(o.Replicas, ", "))
			})
			if err != nil {
				return withCode(exitFailed, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Config, "config", "", "config file (riposte.yaml): detector, docker, containerd and capture sections")
	f.StringVar(&o.Data, "data", "", "data directory: alert spool, action ledger, evidence (default ./riposte-data)")
	f.StringVar(&o.Node, "node", "", "this node's name, carried by every alert (default: the host name)")
	f.StringArrayVar(&o.Replicas, "replica", nil, "replica base URL, http(s)://HOST:PORT (repeatable; default $RIPOSTE_REPLICAS, comma-separated)")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the bearer token of scope agent (default $RIPOSTE_AGENT_TOKEN)")
	f.StringVar(&o.CAFile, "ca-file", "", "PEM certificate(s) trusted for the replicas besides the system's roots")
	f.StringVar(&o.CertFile, "cert-file", "", "client certificate for replicas that require one")
	f.StringVar(&o.KeyFile, "key-file", "", "key of --cert-file")
	f.BoolVar(&o.Detector, "detector", true, "run the eBPF detector (root)")
	f.StringVar(&o.Input, "input", "", "also forward Falco JSON alerts, one per line, from FILE or - (stdin)")
	f.IntVar(&o.SpoolMax, "spool-max", 100000, "most alerts spooled on disk while no replica takes them")
	f.StringVar(&o.MetricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (default off)")
	f.BoolVar(&o.DryRun, "dry-run", false, "the node's actions say what they would do and do nothing")
	f.BoolVar(&verbose, "verbose", false, "debug logging on stderr")
	return cmd
}
