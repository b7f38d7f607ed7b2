package integrations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/notifiers/email"
	"github.com/riposte-sec/riposte/notifiers/pagerduty"
	"github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/stream/outputs"
	"github.com/riposte-sec/riposte/notifiers/webhook"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/containerd"
	"github.com/riposte-sec/riposte/responders/docker"
	"github.com/riposte-sec/riposte/responders/kubernetes"
)

// Integration is one row of the table: everything riposte knows about one
// responder, notifier or output.
type Integration struct {
	// Name identifies the integration ("slack"); the engine addresses step
	// updates and approval requests by it.
	Name string
	// Section is where its config lives ("notifiers.slack"); "" when it has
	// none.
	Section string
	// Always builds it without its section (its defaults work: docker);
	// otherwise it is built only when the config has the section.
	Always bool
	// Needs says what else enables it, when that is more than its section
	// ("enable the detector …"); shown for an action nothing runs.
	Needs string
	// Specs are the actions it implements, with their typed parameters and
	// behaviour flags.
	Specs []actions.Spec
	// Build constructs it from its section (decode fills the package's
	// Config strictly, errors naming file:line). A zero Built (no runner, no
	// stream) means it is not available here (Needs says why). nil: the
	// engine implements the actions itself (journal.note).
	Build func(env *Env, decode func(out any) error) (Built, error)
	// Check, when set, judges playbook parameters that depend on the
	// configuration (a webhook endpoint name, a Slack channel) from the
	// section alone: no secret is read, nothing is contacted, so that
	// `riposte playbook lint --config` runs anywhere.
	Check func(decode func(out any) error) (actions.ParamChecker, error)
}

// Built is a constructed integration and what it offers the assembly.
type Built struct {
	// Runner runs the integration's actions.
	Runner actions.Runner
	// Close releases what it holds; nil when nothing.
	Close func() error
	// Updates reports later steps on the messages already sent about an
	// incident; Approvals asks humans to approve held actions.
	Updates   Updater
	Approvals Approver
	// Stream sends alerts and journal entries out (syslog, files, programs).
	Stream Streamer
	// Routes are HTTP handlers that authenticate their requests themselves
	// (Slack signs its requests), by pattern.
	Routes map[string]http.Handler
	// Background runs until ctx ends (Slack Socket Mode).
	Background func(ctx context.Context) error
	// Value is the integration's own handle, for the integrations built
	// after it (capture uses docker's).
	Value any
}

// Updater, Approver and Streamer are the engine's ports (engine.StepUpdater,
// engine.ApprovalRequester, engine.Streamer), declared here by their
// methods so that the table does not depend on the engine.
type (
	Updater interface {
		Update(ctx context.Context, incident string, steps ...actions.Step) error
	}
	Approver interface {
		RequestApproval(ctx context.Context, ap store.Approval, req actions.Request) error
	}
	Streamer interface {
		AlertMessages(a *alert.Alert, incident string) ([]store.Message, error)
		EntryMessages(e store.Entry) ([]store.Message, error)
		Kind() string
		Deliver(ctx context.Context, m store.Message) (detail map[string]any, err error)
		Journal(detail map[string]any) bool
	}
)

// Env is what integrations are built with. Build sees the integrations
// built before it (table order) through Value.
type Env struct {
	Logger *slog.Logger
	// ConfigFile is the configuration's file name, for errors ("" when
	// built from defaults).
	ConfigFile string
	// Data is riposte's data directory (evidence, responder state).
	Data string
	// KV keeps small state (Slack messages per incident) in the store.
	KV KV
	// Replays remembers signed Slack requests across restarts.
	Replays slack.Replays
	// Dispatcher runs what Slack buttons and commands ask (the engine).
	Dispatcher slack.Dispatcher
	// Events returns the detector's event stream, starting the detector if
	// the config enables it; nil when it is off.
	Events func() (capture.Events, error)
	// CaptureFinished journals a background capture's end.
	CaptureFinished func(capture.Finished)

	built map[string]Built
}

// KV is the store's key/value table.
type KV interface {
	Get(ctx context.Context, ns, key string) ([]byte, bool, error)
	Put(ctx context.Context, ns, key string, value []byte) error
}

// Value returns what an integration built before the caller offers
// (Built.Value); nil when it was not built.
func (e *Env) Value(name string) any {
	return e.built[name].Value
}

// The detector feeds captures: its events and its loss counters.
var (
	_ capture.Events      = (*detector.Detector)(nil)
	_ capture.LossCounter = (*detector.Detector)(nil)
)

// Docker is the docker integration's Value: the responder and its API
// client, which the detector and captures share.
type Docker struct {
	*docker.Responder
	Client *client.Client
}

// Containerd is the containerd integration's Value: the responder, which
// also describes containerd's containers to the detector (Resolve).
type Containerd struct {
	*containerd.Responder
}

var _ containers.Resolver = Containerd{}

// Resolve describes a container Docker does not know from containerd's
// record: name and pod labels from its labels, image, the task's pid.
func (c Containerd) Resolve(ctx context.Context, id string) (containers.Info, error) {
	f, ok, err := c.Lookup(ctx, id)
	if err != nil || !ok {
		return containers.Info{}, err
	}
	repo, tag, digest := containers.SplitImage(f.Image)
	return containers.Info{ID: f.ID, Name: f.Name, Image: repo, Tag: tag, Digest: digest, Labels: f.Labels,
		Pid: f.Pid, Running: f.Running, Known: true, Runtime: "containerd"}, nil
}

// JournalNote is the action the engine implements itself: a note in the
// IR journal.
var JournalNote = actions.Spec{
	Name: "journal.note", Help: "Write a note into the IR journal.", NoteParam: "text",
	Params: []actions.Param{{Name: "text", Type: actions.String, Required: true, Help: "note (template)"}},
}

// Table lists every integration riposte has, in build order. Adding an
// integration is one row here (CONTRIBUTING.md).
func Table() []Integration {
	return []Integration{
		{Name: "docker", Section: "docker", Always: true, Specs: docker.Specs(), Build: buildDocker},
		// Before capture, which starts the detector: the detector asks
		// containerd about the containers Docker does not know.
		{Name: "containerd", Section: "containerd", Specs: containerd.Specs(), Build: buildContainerd},
		{Name: "capture", Section: "capture", Always: true, Specs: capture.Specs(), Build: buildCapture,
			Needs: "enable the detector (detector.enabled: true); captures need its event stream"},
		{Name: "kubernetes", Section: "kubernetes", Specs: kubernetes.Specs(), Build: buildKubernetes},
		{Name: "slack", Section: "notifiers.slack", Specs: slack.Specs(), Build: buildSlack, Check: configCheck[slack.Config]},
		{Name: "pagerduty", Section: "notifiers.pagerduty", Specs: pagerduty.Specs(), Build: simple(func(c pagerduty.Config, l *slog.Logger) (actions.Runner, error) {
			return pagerduty.New(c, pagerduty.Deps{Logger: l})
		})},
		{Name: "email", Section: "notifiers.email", Specs: email.Specs(), Build: buildEmail},
		{Name: "webhook", Section: "notifiers.webhook", Specs: webhook.Specs(), Build: simple(func(c webhook.Config, l *slog.Logger) (actions.Runner, error) {
			return webhook.New(c, webhook.Deps{Logger: l})
		}), Check: configCheck[webhook.Config]},
		{Name: "stream", Section: "stream", Build: buildStream},
		{Name: "journal", Always: true, Specs: []actions.Spec{JournalNote}},
	}
}

// Specs lists every action riposte implements.
func Specs() []actions.Spec {
	var all []actions.Spec
	for _, in := range Table() {
		all = append(all, in.Specs...)
	}
	return all
}

// Catalog returns the catalog of every action riposte implements.
func Catalog() *actions.Catalog {
	c, err := actions.NewCatalog(Specs()...)
	if err != nil {
		// The table is fixed at compile time; a duplicate is a bug that the
		// table's test catches.
		panic(err)
	}
	return c
}

// Sections lists the config sections integrations own ("docker",
// "notifiers.slack"), for config.Unknown.
func Sections() []string {
	var s []string
	for _, in := range Table() {
		if in.Section != "" {
			s = append(s, in.Section)
		}
	}
	return s
}

// Owner returns the integration that implements an action.
func Owner(action string) (Integration, bool) {
	for _, in := range Table() {
		for _, s := range in.Specs {
			if s.Name == action {
				return in, true
			}
		}
	}
	return Integration{}, false
}

// HowToConfigure says what enables an action that has no runner.
func HowToConfigure(action string) string {
	in, ok := Owner(action)
	switch {
	case !ok:
		return "no integration implements it"
	case in.Needs != "":
		return in.Needs
	case in.Section != "":
		return "add a " + in.Section + " section to the config"
	}
	return "it is built in"
}

// simple builds an integration that needs only its config and a logger
// and holds nothing to close.
func simple[C any](build func(c C, log *slog.Logger) (actions.Runner, error)) func(*Env, func(any) error) (Built, error) {
	return func(env *Env, decode func(any) error) (Built, error) {
		var c C
		if err := decode(&c); err != nil {
			return Built{}, err
		}
		r, err := build(c, env.Logger)
		if err != nil {
			return Built{}, err
		}
		return Built{Runner: r}, nil
	}
}

// configCheck decodes a section whose Config judges parameters itself.
func configCheck[C actions.ParamChecker](decode func(any) error) (actions.ParamChecker, error) {
	var c C
	if err := decode(&c); err != nil {
		return nil, err
	}
	return c, nil
}

func buildDocker(env *Env, decode func(any) error) (Built, error) {
	var c docker.Config
	if err := decode(&c); err != nil {
		return Built{}, err
	}
	if c.DataDir == "" {
		c.DataDir = env.Data
	}
	cli, err := docker.NewClient(c)
	if err != nil {
		return Built{}, err
	}
	d, err := docker.New(c, docker.Deps{Docker: cli, Events: cli, Logger: env.Logger})
	if err != nil {
		cli.Close()
		return Built{}, err
	}
	closeAll := func() error { return errors.Join(d.Close(), cli.Close()) }
	return Built{Runner: d, Close: closeAll, Value: Docker{Responder: d, Client: cli}}, nil
}

func buildCapture(env *Env, decode func(any) error) (Built, error) {
	var c capture.Config
	if err := decode(&c); err != nil {
		return Built{}, err
	}
	if env.Events == nil {
		return Built{}, nil
	}
	events, err := env.Events()
	if err != nil || events == nil {
		return Built{}, err
	}
	d, ok := env.Value("docker").(Docker)
	if !ok {
		return Built{}, fmt.Errorf("needs the docker integration")
	}
	if c.EvidenceDir == "" {
		c.EvidenceDir = d.Config().EvidenceDir // snapshots and captures share the incident folder
	}
	cp, err := capture.New(c, capture.Deps{Events: events, Docker: d.Client, Guard: d.Responder, Logger: env.Logger, OnFinish: env.CaptureFinished})
	if err != nil {
		return Built{}, err
	}
	return Built{Runner: cp, Close: cp.Close, Value: cp}, nil
}

func buildKubernetes(env *Env, decode func(any) error) (Built, error) {
	var c kubernetes.Config
	if err := decode(&c); err != nil {
		return Built{}, err
	}
	deps := kubernetes.Deps{Logger: env.Logger}
	if d, ok := env.Value("docker").(Docker); ok {
		deps.EvidenceDir = d.Config().EvidenceDir // one incident's evidence in one folder
	}
	k, err := kubernetes.New(c, deps)
	if err != nil {
		return Built{}, err
	}
	return Built{Runner: k, Value: k}, nil
}

func buildContainerd(env *Env, decode func(any) error) (Built, error) {
	var c containerd.Config
	if err := decode(&c); err != nil {
		return Built{}, err
	}
	if c.DataDir == "" {
		c.DataDir = env.Data
	}
	cli, err := containerd.NewClient(c)
	if err != nil {
		return Built{}, err
	}
	r, err := containerd.New(c, containerd.Deps{Client: cli, Logger: env.Logger})
	if err != nil {
		cli.Close()
		return Built{}, err
	}
	return Built{Runner: r, Close: cli.Close, Value: Containerd{r}}, nil
}

func buildSlack(env *Env, decode func(any) error) (Built, error) {
	var c slack.Config
	if err := decode(&c); err != nil {
		return Built{}, err
	}
	s, err := slack.New(c, slack.Deps{Logger: env.Logger, Threads: slackThreads{env.KV}, Dispatcher: env.Dispatcher, Replays: env.Replays})
	if err != nil {
		return Built{}, err
	}
	b := Built{Runner: s, Close: s.Close, Updates: s, Value: s}
	if s.Interactive() {
		b.Approvals = slackApprovals{s}
		// Slack signs these requests; the handlers verify the signature.
		b.Routes = map[string]http.Handler{
			"POST /v1/slack/interactions": s.InteractionsHandler(),
			"POST /v1/slack/commands":     s.CommandsHandler(),
		}
	}
	if c.SocketMode != nil && *c.SocketMode {
		b.Background = s.RunSocketMode
	}
	return b, nil
}

func buildEmail(env *Env, decode func(any) error) (Built, error) {
	var c email.Config
	if err := decode(&c); err != nil {
		return Built{}, err
	}
	deps := email.Deps{Logger: env.Logger}
	if env.KV != nil {
		deps.Threads = env.KV // later mails of an incident reply to its first
	}
	e, err := email.New(c, deps)
	if err != nil {
		return Built{}, err
	}
	return Built{Runner: e}, nil
}

func buildStream(env *Env, decode func(any) error) (Built, error) {
	var c outputs.Config
	if err := decode(&c); err != nil {
		return Built{}, err
	}
	if err := c.Validate(); err != nil {
		return Built{}, fmt.Errorf("%s: %w", env.ConfigFile, err)
	}
	set, err := outputs.New(c, outputs.Deps{Logger: env.Logger})
	if err != nil {
		return Built{}, err
	}
	return Built{Stream: streamer{set}, Close: set.Close}, nil
}

// BuildOne builds one row into env, so that the rows after it see its
// Value.
func BuildOne(env *Env, row Integration, decode func(out any) error) (Built, error) {
	b, err := row.Build(env, decode)
	if err != nil {
		return Built{}, err
	}
	if env.built == nil {
		env.built = map[string]Built{}
	}
	env.built[row.Name] = b
	return b, nil
}
