package assembly

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/docker/docker/client"
	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/notifiers/email"
	"github.com/riposte-sec/riposte/notifiers/logonly"
	"github.com/riposte-sec/riposte/notifiers/pagerduty"
	"github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/webhook"
	"github.com/riposte-sec/riposte/playbooks"
	"github.com/riposte-sec/riposte/responders/docker"
	"github.com/riposte-sec/riposte/responders/kubernetes"
)

// IntegrationDeps are what integrations are built with.
type IntegrationDeps struct {
	Logger *slog.Logger
	// Data is riposte's data directory (evidence, responder state).
	Data string
	// SlackThreads keeps Slack messages per incident (the store).
	SlackThreads slack.Threads
	// SlackDispatcher runs what Slack buttons and commands ask (the engine).
	SlackDispatcher slack.Dispatcher
	// SlackReplays remembers signed Slack requests across restarts (the
	// store), so that a captured one is refused.
	SlackReplays slack.Replays
}

// Integrations are the runners built from the configuration, by action
// name, and what must be closed at shutdown.
type Integrations struct {
	Runners map[string]actions.Runner
	Docker  *docker.Responder
	// DockerClient is the Docker API client the responder uses; the
	// detector shares it for enrichment.
	DockerClient *client.Client
	// Slack is set when notifiers.slack is configured; SlackSocketMode
	// when it takes interactions over Socket Mode instead of HTTP.
	Slack           *slack.Slack
	SlackSocketMode bool
	closers         []func() error
}

// Close releases every integration's resources.
func (in *Integrations) Close() error {
	var errs []error
	for i := len(in.closers) - 1; i >= 0; i-- {
		errs = append(errs, in.closers[i]())
	}
	in.closers = nil
	return errors.Join(errs...)
}

func (in *Integrations) register(r actions.Runner, specs []actions.Spec) {
	for _, s := range specs {
		in.Runners[s.Name] = r
	}
}

// BuildIntegrations constructs every integration the configuration
// enables: the Docker responder always, each notifier whose section is
// present, and the log-only fallback for the others when
// notifiers.fallback is "log". Actions left without a runner are reported
// by Missing.
func BuildIntegrations(cfg *config.Config, deps IntegrationDeps) (in *Integrations, err error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	in = &Integrations{Runners: map[string]actions.Runner{}}
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	var dcfg docker.Config
	if err := config.Decode(cfg.File, "docker", &cfg.Docker, &dcfg); err != nil {
		return nil, err
	}
	if dcfg.DataDir == "" {
		dcfg.DataDir = deps.Data
	}
	cli, err := docker.NewClient(dcfg)
	if err != nil {
		return nil, fmt.Errorf("docker responder: %w", err)
	}
	in.closers = append(in.closers, cli.Close)
	in.DockerClient = cli
	d, err := docker.New(dcfg, docker.Deps{Docker: cli, Logger: deps.Logger.With("integration", "docker")})
	if err != nil {
		return nil, fmt.Errorf("docker responder: %w", err)
	}
	in.Docker = d
	in.register(d, docker.Specs())

	if present(&cfg.Kubernetes) {
		var c kubernetes.Config
		if err := config.Decode(cfg.File, "kubernetes", &cfg.Kubernetes, &c); err != nil {
			return nil, err
		}
		k, err := kubernetes.New(c, kubernetes.Deps{Logger: deps.Logger.With("integration", "kubernetes")})
		if err != nil {
			return nil, fmt.Errorf("kubernetes responder: %w", err)
		}
		in.register(k, kubernetes.Specs())
	}

	n := &cfg.Notifiers
	if present(&n.Slack) {
		var c slack.Config
		if err := config.Decode(cfg.File, "notifiers.slack", &n.Slack, &c); err != nil {
			return nil, err
		}
		s, err := slack.New(c, slack.Deps{Logger: deps.Logger.With("integration", "slack"), Threads: deps.SlackThreads, Dispatcher: deps.SlackDispatcher,
			Replays: deps.SlackReplays})
		if err != nil {
			return nil, fmt.Errorf("slack notifier: %w", err)
		}
		in.closers = append(in.closers, s.Close)
		in.Slack = s
		in.SlackSocketMode = c.SocketMode != nil && *c.SocketMode
		in.register(s, slack.Specs())
	}
	if present(&n.PagerDuty) {
		var c pagerduty.Config
		if err := config.Decode(cfg.File, "notifiers.pagerduty", &n.PagerDuty, &c); err != nil {
			return nil, err
		}
		p, err := pagerduty.New(c, pagerduty.Deps{Logger: deps.Logger.With("integration", "pagerduty")})
		if err != nil {
			return nil, fmt.Errorf("pagerduty notifier: %w", err)
		}
		in.register(p, pagerduty.Specs())
	}
	if present(&n.Email) {
		var c email.Config
		if err := config.Decode(cfg.File, "notifiers.email", &n.Email, &c); err != nil {
			return nil, err
		}
		e, err := email.New(c, email.Deps{Logger: deps.Logger.With("integration", "email")})
		if err != nil {
			return nil, fmt.Errorf("email notifier: %w", err)
		}
		in.register(e, email.Specs())
	}
	if present(&n.Webhook) {
		var c webhook.Config
		if err := config.Decode(cfg.File, "notifiers.webhook", &n.Webhook, &c); err != nil {
			return nil, err
		}
		w, err := webhook.New(c, webhook.Deps{Logger: deps.Logger.With("integration", "webhook")})
		if err != nil {
			return nil, fmt.Errorf("webhook notifier: %w", err)
		}
		in.register(w, webhook.Specs())
	}
	if n.Fallback == config.FallbackLog {
		l := logonly.New(deps.Logger.With("integration", "log-only"))
		for _, s := range integrations.Specs() {
			if _, ok := in.Runners[s.Name]; !ok && integrations.IsNotification(s.Name) {
				in.Runners[s.Name] = l
			}
		}
	}
	return in, nil
}

// present reports whether a config section was given (and is not null).
func present(n *yaml.Node) bool {
	return n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Missing lists the actions the playbooks use that no integration runs,
// with the playbooks that use them: "slack.notify (used by oncall) needs
// notifiers.slack in the config".
func Missing(set *playbooks.Set, runners map[string]actions.Runner) error {
	used := map[string][]string{}
	var order []string
	for _, b := range set.Playbooks() {
		for _, a := range b.Actions {
			if a.Do == integrations.JournalNote.Name {
				continue
			}
			if _, ok := runners[a.Do]; ok {
				continue
			}
			if _, seen := used[a.Do]; !seen {
				order = append(order, a.Do)
			}
			if l := used[a.Do]; len(l) == 0 || l[len(l)-1] != b.Name {
				used[a.Do] = append(l, b.Name)
			}
		}
	}
	var errs []error
	for _, name := range order {
		errs = append(errs, fmt.Errorf("%s (used by %s) is not configured: %s", name, strings.Join(used[name], ", "), integrations.HowToConfigure(name)))
	}
	return errors.Join(errs...)
}

// CheckParams asks every runner that judges parameters by its configuration
// (actions.ParamChecker: a webhook endpoint name) about every action of
// every playbook; the errors name the playbook's file and line.
func CheckParams(set *playbooks.Set, runners map[string]actions.Runner) error {
	return set.CheckParams(func(action string, with actions.Params) error {
		if c, ok := runners[action].(actions.ParamChecker); ok {
			return c.CheckParams(action, with)
		}
		return nil
	})
}
