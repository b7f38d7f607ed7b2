package assembly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/notifiers/logonly"
	"github.com/riposte-sec/riposte/playbooks"
)

// Integrations are what the table built from the configuration: runners by
// action name, the engine's ports, HTTP routes and background loops, and
// what must be closed at shutdown.
type Integrations struct {
	Runners map[string]actions.Runner
	// Built are the constructed integrations, by name.
	Built map[string]integrations.Built
	// Docker is the docker integration (always built): the detector and
	// `riposte ci` share its API client.
	Docker    integrations.Docker
	Updates   map[string]engine.StepUpdater
	Approvals map[string]engine.ApprovalRequester
	// Throttle is the configured throttle interval of notification
	// actions, by action name (engine.Deps.Throttle).
	Throttle map[string]time.Duration
	Stream   engine.Streamer
	Routes   map[string]http.Handler
	// Background loops run while serving (Slack Socket Mode), by name.
	Background map[string]func(ctx context.Context) error
	closers    []func() error
}

// Close releases every integration's resources, the last built first.
func (in *Integrations) Close() error {
	var errs []error
	for i := len(in.closers) - 1; i >= 0; i-- {
		errs = append(errs, in.closers[i]())
	}
	in.closers = nil
	return errors.Join(errs...)
}

// BuildIntegrations constructs, in table order, every integration the
// configuration enables: those marked Always and those whose section is
// present; then the log-only fallback for unconfigured notifications when
// notifiers.fallback is "log". A config section no integration owns is an
// error. Actions left without a runner are reported by Missing.
func BuildIntegrations(cfg *config.Config, env *integrations.Env) (in *Integrations, err error) {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Unknown(integrations.Sections()); err != nil {
		return nil, err
	}
	in = &Integrations{Runners: map[string]actions.Runner{}, Built: map[string]integrations.Built{},
		Updates: map[string]engine.StepUpdater{}, Approvals: map[string]engine.ApprovalRequester{}, Throttle: map[string]time.Duration{},
		Routes: map[string]http.Handler{}, Background: map[string]func(context.Context) error{}}
	built := in // a failed return sets in to nil; close what was built
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	base := env.Logger
	defer func() { env.Logger = base }()
	env.ConfigFile = cfg.File
	for _, row := range integrations.Table() {
		section := cfg.Section(row.Section)
		if row.Build == nil || (section == nil && !row.Always) {
			continue
		}
		env.Logger = base.With("integration", row.Name)
		b, err := integrations.BuildOne(env, row, func(out any) error {
			return config.Decode(cfg.File, row.Section, section, out)
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", row.Name, err)
		}
		if b.Close != nil {
			in.closers = append(in.closers, b.Close)
		}
		if b.Runner == nil && b.Stream == nil {
			continue // not available here; Needs says why
		}
		in.Built[row.Name] = b
		if b.Runner != nil {
			for _, s := range row.Specs {
				in.Runners[s.Name] = b.Runner
			}
			if t, ok := b.Runner.(interface{ Throttle() time.Duration }); ok && t.Throttle() > 0 {
				for _, s := range row.Specs {
					if _, ok := s.Param(actions.ParamThrottle); ok && s.Notification {
						in.Throttle[s.Name] = t.Throttle()
					}
				}
			}
		}
		if b.Updates != nil {
			in.Updates[row.Name] = b.Updates
		}
		if b.Approvals != nil {
			in.Approvals[row.Name] = b.Approvals
		}
		if b.Stream != nil {
			in.Stream = b.Stream
		}
		for pattern, h := range b.Routes {
			in.Routes[pattern] = h
		}
		if b.Background != nil {
			in.Background[row.Name] = b.Background
		}
		if d, ok := b.Value.(integrations.Docker); ok {
			in.Docker = d
		}
	}
	if cfg.Notifiers.Fallback == config.FallbackLog {
		l := logonly.New(base.With("integration", "log-only"))
		for _, s := range integrations.Specs() {
			if _, ok := in.Runners[s.Name]; !ok && s.Notification {
				in.Runners[s.Name] = l
			}
		}
	}
	return in, nil
}

// Missing lists the actions the playbooks use that no integration runs,
// with the playbooks that use them: "slack.notify (used by oncall) needs
// notifiers.slack in the config".
func Missing(set *playbooks.Set, runners map[string]actions.Runner) error {
	used := map[string][]string{}
	var order []string
	for _, b := range set.Playbooks() {
		for _, a := range b.Actions {
			if a.Spec.NoteParam != "" {
				continue // the engine writes notes itself
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

// CheckParams judges every action of every playbook whose parameters depend
// on the configuration (Integration.Check: a webhook endpoint name, a Slack
// channel) against the sections present, with the literal `with` values
// (templates are known only per alert). The errors name the playbook's file
// and line. Nothing is built and no secret is read.
func CheckParams(set *playbooks.Set, cfg *config.Config) error {
	checkers := map[string]actions.ParamChecker{}
	var errs []error
	for _, row := range integrations.Table() {
		section := cfg.Section(row.Section)
		if row.Check == nil || section == nil {
			continue
		}
		c, err := row.Check(func(out any) error { return config.Decode(cfg.File, row.Section, section, out) })
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range row.Specs {
			checkers[s.Name] = c
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return set.CheckParams(func(action string, with actions.Params) error {
		if c, ok := checkers[action]; ok {
			return c.CheckParams(action, with)
		}
		return nil
	})
}
