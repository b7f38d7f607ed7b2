package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/kubernetes"
)

func newActCmd() *cobra.Command {
	var (
		configPath string
		data       string
		storeURL   string
		container  string
		pod        string
		node       string
		incident   string
		with       []string
		dryRun     bool
		output     string
		override   string
	)
	cmd := &cobra.Command{
		Use:   "act ACTION (--container REF | --pod NAMESPACE/NAME | --node NAME) [--with key=value]...",
		Short: "Run one action by hand against a container or a pod",
		Long: `Act runs one action (riposte actions lists them) through the same guardrails and journal as
playbook actions, including the blast-radius budget: a destructive action beyond it is refused
unless --override-blast-radius gives a reason, which is journaled. When riposte serve holds the
data directory, the action goes through its local socket, where the kernel tells the server your
OS user, journaled as the actor (with the socket off: over HTTP(S) with an operator token from
RIPOSTE_OPERATOR_TOKEN, journaled by the token's name); otherwise act opens the store itself.
capture.start without a server runs the detector in this process for the capture's duration (like
tcpdump; root), waits for the capture to end (Ctrl-C ends it early, cleanly) and prints its files.

Exit status: 0 done, 1 the action failed or a guardrail refused it, 2 bad input.`,
		Example: `  riposte act container.pause --container payments-api
  riposte act container.kill --container 3f9a1c2b7d4e --with signal=TERM
  riposte act container.snapshot --container web --with logs=200 --incident inc-20261120-091403-ab12cd
  sudo riposte act capture.start --container web --with duration=30s
  riposte act pod.isolate --pod payments/api-7d9f --with allow_namespaces=kube-system
  riposte act pod.evidence --pod payments/api-7d9f --incident inc-20261120-091403-ab12cd
  riposte act node.uncordon --node worker-3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withCode(exitBadInput, fmt.Errorf("--output: want text or json, got %q", output))
			}
			action := args[0]
			spec, ok := integrations.Catalog().Lookup(action)
			if !ok {
				return withCode(exitBadInput, fmt.Errorf("unknown action %q (riposte actions lists them)", action))
			}
			if spec.Container && container == "" {
				return withCode(exitBadInput, fmt.Errorf("%s needs --container REF (id, short id or name)", action))
			}
			params := map[string]any{}
			// Pod actions name their pod in the pod parameter (--pod);
			// node actions take the pod's node, or the node parameter
			// (--node).
			_, nodeAction := spec.Param("node")
			if node == "" {
				node = withParam(with, "node")
			}
			switch {
			case node != "" && !nodeAction:
				return withCode(exitBadInput, fmt.Errorf("--node: %s does not act on a node", action))
			case node != "":
				params["node"] = node
			}
			if _, podAction := spec.Param("pod"); podAction && (node == "" || pod != "") {
				if w := withParam(with, "pod"); pod == "" {
					pod = w
				} else if w != "" && w != pod {
					return withCode(exitBadInput, fmt.Errorf("--pod %s and --with pod=%s name different pods", pod, w))
				}
				if pod == "" {
					needs := "--pod NAMESPACE/NAME"
					if nodeAction {
						needs += " or --node NAME"
					}
					return withCode(exitBadInput, fmt.Errorf("%s needs %s", action, needs))
				}
				if _, _, err := kubernetes.ParsePod(pod); err != nil {
					return withCode(exitBadInput, fmt.Errorf("--pod: %w", err))
				}
				params["pod"] = pod
			} else if pod != "" && !podAction {
				return withCode(exitBadInput, fmt.Errorf("--pod: %s does not act on a pod", action))
			}
			for _, kv := range with {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return withCode(exitBadInput, fmt.Errorf("--with %q: want key=value", kv))
				}
				p, ok := spec.Param(k)
				if !ok {
					return withCode(exitBadInput, fmt.Errorf("--with %s: %s has no parameter %q", kv, action, k))
				}
				if err := p.Check(v); err != nil {
					return withCode(exitBadInput, fmt.Errorf("--with %s: %w", kv, err))
				}
				params[k] = v
			}
			cfg, err := assembly.LoadConfig(configPath, assembly.Overrides{Data: data, Store: storeURL})
			if err != nil {
				return withCode(exitBadInput, err)
			}
			ctx := cmd.Context()
			if action == capture.ActionStart {
				// A capture recorded here ends cleanly (sealed, journaled)
				// on Ctrl-C.
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			res, how, err := assembly.Act(ctx, cfg, assembly.ActRequest{Action: action, Container: container, Incident: incident,
				With: params, DryRun: dryRun, OverrideBlastRadius: override})
			out := cmd.OutOrStdout()
			if output == "json" {
				doc := map[string]any{"action": action, "container": container, "result": res, "how": how}
				if pod != "" {
					doc["pod"] = pod
				}
				if node != "" {
					doc["node"] = node
				}
				if err != nil {
					doc["error"] = err.Error()
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(doc); jerr != nil {
					return withCode(exitFailed, jerr)
				}
			}
			if err != nil {
				if errors.Is(err, actions.ErrProtected) {
					return withCode(exitFailed, fmt.Errorf("refused by a guardrail (journaled as action.blocked_protected): %w", err))
				}
				if errors.Is(err, engine.ErrOverBudget) {
					return withCode(exitFailed, fmt.Errorf("refused by the blast-radius budget (journaled as %s); --override-blast-radius REASON runs it anyway: %w", store.ActionRefusedBudget, err))
				}
				return withCode(exitFailed, err)
			}
			if output == "text" {
				fmt.Fprintf(out, "%s %s: %s (%s)\n", action, cmp.Or(pod, node, container), orNone(res.Note), how)
				if res.SHA256 != "" {
					fmt.Fprintf(out, "  sha256 %s\n", res.SHA256)
				}
				for _, e := range res.Evidence {
					fmt.Fprintf(out, "  %s  %d bytes  sha256 %s\n", e.Path, e.Size, e.SHA256)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "config file (riposte.yaml)")
	f.StringVar(&data, "data", "", "data directory (default ./riposte-data)")
	storeFlag(f, &storeURL)
	f.StringVar(&container, "container", "", "container id, short id or name")
	f.StringVar(&pod, "pod", "", "NAMESPACE/NAME of the pod (pod.* and node.* actions)")
	f.StringVar(&node, "node", "", "NAME of the node (node.* actions; instead of the pod's node)")
	f.StringVar(&incident, "incident", "", "incident id to file evidence under")
	f.StringArrayVar(&with, "with", nil, "action parameter key=value (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "journal what would happen, execute nothing")
	f.StringVar(&override, "override-blast-radius", "", "run a destructive action beyond the blast-radius budget; the reason is journaled")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// withParam is the value of a --with NAME=VALUE, or "".
func withParam(with []string, name string) string {
	for _, kv := range with {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "done"
	}
	return s
}
