package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
)

func newServeCmd() *cobra.Command {
	var (
		configPath string
		o          assembly.Overrides
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP server and the response engine (and the detector when enabled)",
		Long: `Serve takes alerts on POST /v1/alerts (and POST / for Falco's http_output), stores them
durably, matches playbooks and runs their actions, journaling every step in <data>/riposte.db,
or with --store postgres://... (or store.url, or RIPOSTE_STORE) in a PostgreSQL database that
several serve replicas share (cluster mode; evidence stays in each replica's --data).

Flags override the config file. The intake token comes from --token, the config's
auth.token_env/token_file, RIPOSTE_TOKEN, or <data>/token (generated on first start, mode 0600);
it posts alerts and nothing else. Named tokens with scopes (intake, operator, read-only) come
from auth.tokens; SIGHUP reads them, auth.socket_users and the TLS files again. riposte act reaches the server
through the local socket <data>/riposte.sock, whose peer's OS user is the journaled actor.
SIGTERM or SIGINT drains: no new alerts, in-flight requests and alerts finish, then exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := assembly.LoadConfig(configPath, o)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			log := assembly.NewLogger(cfg, cmd.ErrOrStderr())
			token, where := o.Token, "--token"
			switch {
			case token != "":
			case cfg.Auth.TokenEnv == "" && cfg.Auth.TokenFile == "" && cfg.HasIntakeTokens():
				// Named intake tokens replace the generated one.
				where = "auth.tokens"
			default:
				var generated bool
				token, where, generated, err = cfg.Token()
				if err != nil {
					return withCode(exitBadInput, err)
				}
				if generated {
					where += " (generated)"
				}
			}
			a, err := assembly.Build(cfg, log)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			defer a.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			scheme := "http"
			if cfg.TLS.Enabled() {
				scheme = "https"
			}
			err = a.Serve(ctx, token, func(addr string) {
				fmt.Fprintf(cmd.OutOrStdout(), "riposte serving on %s://%s (intake token: %s; data: %s)\n", scheme, addr, where, cfg.Data)
			})
			if err != nil {
				return withCode(exitFailed, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "config file (riposte.yaml)")
	f.StringVar(&o.Listen, "listen", "", "HTTP listen address (default 127.0.0.1:8080)")
	f.StringVar(&o.Data, "data", "", "data directory: SQLite store and evidence (default ./riposte-data)")
	storeFlag(f, &o.Store)
	f.StringArrayVar(&o.Playbooks, "playbooks", nil, "playbook file or directory (repeatable; replaces the config's list)")
	f.StringVar(&o.Token, "token", os.Getenv("RIPOSTE_TOKEN"), "intake bearer token (default $RIPOSTE_TOKEN)")
	f.BoolVar(&o.DryRun, "dry-run", false, "plan and journal everything, execute nothing")
	return cmd
}
