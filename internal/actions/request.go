package actions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// Params are the rendered `with` values of one action: strings (templates
// already rendered), integers, booleans and lists as YAML gave them.
type Params map[string]any

// String returns a string parameter, or def when absent.
func (p Params) String(name, def string) string {
	v, ok := p[name]
	if !ok || v == nil {
		return def
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Duration returns a duration parameter, or def when absent.
func (p Params) Duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := p[name]
	if !ok {
		return def, nil
	}
	d, err := AsDuration(v)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: %w", name, err)
	}
	return d, nil
}

// Int returns an integer parameter, or def when absent.
func (p Params) Int(name string, def int64) (int64, error) {
	v, ok := p[name]
	if !ok {
		return def, nil
	}
	n, err := AsInt(v)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: %w", name, err)
	}
	return n, nil
}

// Bool returns a boolean parameter, or def when absent.
func (p Params) Bool(name string, def bool) (bool, error) {
	v, ok := p[name]
	if !ok {
		return def, nil
	}
	b, err := AsBool(v)
	if err != nil {
		return false, fmt.Errorf("parameter %s: %w", name, err)
	}
	return b, nil
}

// Bytes returns a size parameter in bytes, or def when absent.
func (p Params) Bytes(name string, def int64) (int64, error) {
	v, ok := p[name]
	if !ok {
		return def, nil
	}
	n, err := AsBytes(v)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: %w", name, err)
	}
	return n, nil
}

// Request is one action to run, as the engine (or `riposte act`, or a Slack
// button) hands it to the integration that implements it.
type Request struct {
	Action string // "container.pause"
	Params Params
	// Alert that caused the action; zero for a hand-run action without one.
	Alert alert.Alert
	// Incident groups alerts by container and rule; evidence lands under it.
	Incident string
	// Container is the target container reference (id, short id or name);
	// "" when the action has no container.
	Container string
	// Actor is who asked: "playbook:<name>", "slack:<user id> (<name>)",
	// "cli:<os user>".
	Actor string
	// Key identifies the action for idempotency: alert id, playbook and index.
	Key string
	// Steps are what riposte already did for this alert, oldest first, so a
	// notifier can say it ("snapshot taken, container paused").
	Steps []Step
	// Fold, when set, makes the request a throttled update: it stands for
	// several alerts of its incident, Alert being the latest of them. A
	// notifier updates what it sent about the incident with the count and
	// that sample instead of sending anew.
	Fold *Fold
}

// ContainerRef is the container req is about, as given: its Container,
// else the alert's container.id, else its container.name. A host alert or
// one naming no container is an error. Each responder checks the form of
// the reference it accepts.
func (r Request) ContainerRef() (string, error) {
	if r.Container != "" {
		return r.Container, nil
	}
	c := r.Alert.Container()
	switch {
	case c.ID == alert.HostContainerID:
		return "", errors.New("the alert is about the host, not a container")
	case c.ID != "":
		return c.ID, nil
	case c.Name != "":
		return c.Name, nil
	}
	return "", errors.New("no container given, and the alert names none (container.id, container.name)")
}

// ParamThrottle is the `with` key that sets a notification's throttle
// interval (0: every alert is sent), overriding its notifier's config.
const ParamThrottle = "throttle"

// ThrottleParam describes ParamThrottle for the specs of notifications that
// can be throttled.
var ThrottleParam = Param{Name: ParamThrottle, Type: Duration, Default: "throttle from config (0)",
	Help: "send at most one update per incident per interval; later alerts are counted into it (0: every alert)"}

// Fold is what a throttled update stands for.
type Fold struct {
	// Alerts is how many alerts of the incident the update stands for,
	// the latest (the request's Alert) included.
	Alerts int `json:"alerts"`
	// Every is the throttle interval.
	Every time.Duration `json:"every"`
}

// Summary is the update's one-line count: "+37 more in 5 min".
func (f Fold) Summary() string {
	return fmt.Sprintf("+%d more in %s", f.Alerts, HumanDuration(f.Every))
}

// HumanDuration writes whole minutes and hours the way people say them
// ("5 min", "1 h"), anything else as Go does ("90s", "1m30s").
func HumanDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}

// Step is one action already taken, as notifiers report it.
type Step struct {
	Action string    `json:"action"`
	Status Status    `json:"status"`
	Note   string    `json:"note,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	Time   time.Time `json:"time"`
}

// Status is what became of an action, as steps, metrics and notifications
// report it.
type Status string

// Action statuses.
const (
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	// StatusQueued: a notification is durably in the outbox.
	StatusQueued  Status = "queued"
	StatusSkipped Status = "skipped"
	StatusDryRun  Status = "skipped_dry_run"
	// StatusProtected: a guardrail refused (protected target).
	StatusProtected Status = "blocked_protected"
	StatusHeld      Status = "held_for_approval"
	// StatusOverBudget: a hand-run destructive action beyond the
	// blast-radius budget, refused.
	StatusOverBudget Status = "refused_blast_radius"
	// StatusDone: the idempotency key says the action already ran.
	StatusDone Status = "already_done"
	// StatusApproved and StatusRejected report a human's answer to an
	// approval request.
	StatusApproved Status = "approved"
	StatusRejected Status = "rejected"
)

// Evidence is one file an action wrote, with its content hash.
type Evidence struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Result is what an action did.
type Result struct {
	// Note is a one-line human summary ("paused", "already paused").
	Note string `json:"note,omitempty"`
	// SHA256 is the hash recorded in the journal entry, when the action
	// produced evidence (for a snapshot: the manifest's hash).
	SHA256 string `json:"sha256,omitempty"`
	// Evidence lists the files written.
	Evidence []Evidence `json:"evidence,omitempty"`
	// Detail is extra structured data for the journal (networks
	// disconnected, message ts, ...).
	Detail map[string]any `json:"detail,omitempty"`
}

// Runner runs actions. Implementations must honour ctx's deadline and be
// safe for concurrent use.
type Runner interface {
	Run(ctx context.Context, req Request) (Result, error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, req Request) (Result, error)

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, req Request) (Result, error) { return f(ctx, req) }

// ErrProtected is returned (wrapped) when a guardrail refuses to act on a
// protected container. The engine journals it as action.blocked_protected.
var ErrProtected = errors.New("container is protected")

// ErrNotFound is returned (wrapped) when the target does not exist.
var ErrNotFound = errors.New("not found")

type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// Retryable marks err as worth retrying (daemon unreachable, 429, 5xx).
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryable{err}
}

// IsRetryable reports whether err, or an error it wraps, was marked with
// Retryable. Unmarked errors are permanent.
func IsRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}
