package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/internal/config"
)

func newCICmd() *cobra.Command {
	var (
		configPath string
		o          assembly.Overrides
		opts       assembly.CIOptions
	)
	cmd := &cobra.Command{
		Use:   "ci [flags] -- CMD ARGS...",
		Short: "Staging guard: watch while CMD runs, contain misbehaving containers or pods, report, fail the job on incidents",
		Long: fmt.Sprintf(`ci starts the eBPF detector and the response engine, runs CMD (no shell: give sh -c yourself if
you need one), and while it runs applies the playbooks: by default the built-in ci-guard playbook, which
snapshots any container that raises an alert of Warning or above, cuts it off the network and pauses it.
When CMD ends it writes a report: a summary on stdout, and with --report PREFIX the files PREFIX.json and
PREFIX.xml (JUnit, one failed test case per incident).

Exit status: CMD's own when there was no incident; %d when there was any, even if CMD passed; 2 when
riposte itself could not start. Offending containers stay quarantined and paused for inspection unless
--release is given. Needs root (eBPF) and the Docker socket.

With --namespace NS, for staging clusters: alerts come in on the HTTP intake (--listen; point Falco's
http_output or Falcosidekick at it, or run riposte's own detector with a config that enables it; the
command finds the URL in $%s), and the built-in ci-guard-pods playbook collects the evidence of
any pod of NS an alert of Warning or above names, isolates it with a NetworkPolicy and labels it. The
kubeconfig is found as kubectl finds it ($KUBECONFIG, ~/.kube/config, in-cluster). The reports name
the pods.`, assembly.ExitIncidents, assembly.CIIntakeEnv),
		Example: `  riposte ci -- make e2e
  riposte ci --report out/riposte --playbooks ci/playbooks -- ./run-staging-tests.sh
  riposte ci --namespace staging-42 --listen 0.0.0.0:8080 --report out/riposte -- ./e2e.sh`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return withCode(exitBadInput, errors.New("put the command after --, as in: riposte ci [flags] -- CMD [ARGS]"))
			}
			if o.Data == "" {
				o.Data = "riposte-ci"
			}
			cfg, err := assembly.LoadConfig(configPath, o)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			switch {
			case configPath != "":
			case opts.Namespace != "":
				// Cluster mode: alerts on the intake, the kubeconfig
				// found as kubectl finds it.
				_ = cfg.SetSection("kubernetes", map[string]any{})
			default:
				enableDetector(&cfg)
			}
			opts.Command = args
			opts.Stdout, opts.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			rep, code, err := assembly.RunCI(cmd.Context(), cfg, opts)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			rep.WriteText(cmd.OutOrStdout())
			if opts.Report != "" {
				files, err := rep.WriteFiles(opts.Report)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("write report: %w", err))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "riposte ci: report in %v\n", files)
			}
			if code != 0 {
				return withCode(code, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "config file (default: detector on, built-in ci-guard playbook, notifications to the log)")
	f.StringArrayVar(&o.Playbooks, "playbooks", nil, "playbook file or directory (repeatable; default: the built-in ci-guard playbook)")
	f.StringVar(&o.Data, "data", "", "data directory for the journal and the evidence (default ./riposte-ci)")
	storeFlag(f, &o.Store)
	f.StringVar(&opts.Namespace, "namespace", "", "cluster mode: contain the pods of this namespace that alerts on the intake name")
	f.StringVar(&o.Listen, "listen", "", "intake address in --namespace mode (default 127.0.0.1:8080)")
	f.StringVar(&opts.Report, "report", "", "write PREFIX.json and PREFIX.xml (JUnit)")
	f.BoolVar(&opts.Release, "release", false, "release contained containers at the end")
	f.DurationVar(&opts.Grace, "grace", 2*time.Second, "keep watching this long after CMD ends")
	return cmd
}

// enableDetector turns the detector on in a config that has no file.
func enableDetector(cfg *config.Config) {
	_ = cfg.Detector.Encode(map[string]any{"enabled": true})
}
