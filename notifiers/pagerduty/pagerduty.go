package pagerduty

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	pd "github.com/PagerDuty/go-pagerduty"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/internal/delivery"
	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// Action names.
const (
	ActionTrigger = "pagerduty.trigger"
	ActionResolve = "pagerduty.resolve"
)

// Limits of the Events API v2.
const (
	MaxSummary  = 1024 // characters of payload.summary
	maxDedupKey = 255
	maxDetail   = 1024 // characters of one custom_details value
	maxFields   = 100
)

// Deps are the notifier's collaborators; every field is optional.
type Deps struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// HTTPClient; nil: a client with the configured timeout.
	HTTPClient *http.Client
	// LookupEnv reads the routing key's variable; nil: os.LookupEnv.
	LookupEnv secret.LookupEnv
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// PagerDuty sends Events API v2 events. It is safe for concurrent use and
// holds nothing to close.
type PagerDuty struct {
	client *pd.Client
	key    string
	name   string
	log    *slog.Logger
	now    func() time.Time
	redact secret.Redactor
	// throttle is the configured interval, for the assembly.
	throttle time.Duration
}

// New validates cfg and reads the routing key.
func New(cfg Config, deps Deps) (*PagerDuty, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := cfg.routingKey().Load(deps.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("pagerduty: %w", err)
	}
	p := &PagerDuty{key: key, name: cfg.Client, log: deps.Logger, now: deps.Now, redact: secret.NewRedactor(key), throttle: cfg.Throttle}
	if p.name == "" {
		p.name = "riposte"
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.now == nil {
		p.now = time.Now
	}
	hc := deps.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
		if hc.Timeout == 0 {
			hc.Timeout = 10 * time.Second
		}
	}
	endpoint := strings.TrimSuffix(cfg.Endpoint, "/")
	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	p.client = pd.NewClient("", pd.WithV2EventsAPIEndpoint(endpoint))
	p.client.HTTPClient = capturingDoer{hc}
	return p, nil
}

// Throttle is the configured throttle interval of pagerduty.trigger (0:
// none).
func (p *PagerDuty) Throttle() time.Duration { return p.throttle }

// Run implements actions.Runner for pagerduty.trigger and pagerduty.resolve.
// The dedup_key is the incident id, so running a request again updates the
// same PagerDuty alert instead of opening another.
func (p *PagerDuty) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	var (
		ev  pd.V2Event
		err error
	)
	switch req.Action {
	case ActionTrigger:
		ev, err = p.triggerEvent(req)
	case ActionResolve:
		ev, err = p.resolveEvent(req)
	default:
		return actions.Result{}, fmt.Errorf("pagerduty: unknown action %q", req.Action)
	}
	if err != nil {
		return actions.Result{}, err
	}
	res, err := p.send(ctx, ev)
	return res, p.redact.Error(err)
}

func (p *PagerDuty) triggerEvent(req actions.Request) (pd.V2Event, error) {
	dedup, err := dedupKey(req)
	if err != nil {
		return pd.V2Event{}, fmt.Errorf("trigger pagerduty event: %w", err)
	}
	sev := req.Params.String("severity", "")
	if sev == "" {
		sev = Severity(req.Alert.Priority)
	} else if sev = strings.ToLower(strings.TrimSpace(sev)); !validSeverity(sev) {
		return pd.V2Event{}, fmt.Errorf("trigger pagerduty event: severity %q: want critical, error, warning or info", req.Params.String("severity", ""))
	}
	a := req.Alert
	summary := req.Params.String("summary", "")
	if summary == "" {
		summary = Summary(a, req.Container)
	}
	if req.Fold != nil {
		// A throttled update of the same alert (dedup_key): the count
		// first, so that the cut to 1024 characters keeps it.
		summary = "[" + req.Fold.Summary() + "] " + summary
	}
	payload := &pd.V2Payload{
		Summary:  delivery.Truncate(strings.Join(strings.Fields(summary), " "), MaxSummary),
		Source:   source(a, req.Container),
		Severity: sev,
		Class:    a.Rule,
		Details:  details(req),
	}
	if !a.Time.IsZero() {
		payload.Timestamp = a.Time.UTC().Format(time.RFC3339Nano)
	}
	if c := a.Container(); c.Image != "" {
		payload.Component = c.Image
		if c.Tag != "" {
			payload.Component += ":" + c.Tag
		}
	}
	return pd.V2Event{RoutingKey: p.key, Action: "trigger", DedupKey: dedup, Client: p.name, Payload: payload}, nil
}

func (p *PagerDuty) resolveEvent(req actions.Request) (pd.V2Event, error) {
	dedup, err := dedupKey(req)
	if err != nil {
		return pd.V2Event{}, fmt.Errorf("resolve pagerduty event: %w", err)
	}
	return pd.V2Event{RoutingKey: p.key, Action: "resolve", DedupKey: dedup}, nil
}

// dedupKey is the incident id (the alert id without one), hashed when longer
// than PagerDuty accepts.
func dedupKey(req actions.Request) (string, error) {
	k := req.Incident
	if k == "" {
		k = req.Alert.ID
	}
	if k == "" {
		return "", errors.New("no incident id to use as dedup_key")
	}
	if len(k) > maxDedupKey {
		sum := sha256.Sum256([]byte(k))
		k = "riposte-" + hex.EncodeToString(sum[:])
	}
	return k, nil
}

// Severity maps a Falco priority to a PagerDuty severity: Emergency, Alert
// and Critical are critical; Error is error; Warning is warning; the rest
// info.
func Severity(p alert.Priority) string {
	switch {
	case p >= alert.PriorityCritical:
		return "critical"
	case p == alert.PriorityError:
		return "error"
	case p == alert.PriorityWarning:
		return "warning"
	}
	return "info"
}

// Severities lists the severities PagerDuty accepts; pagerduty.trigger's
// severity parameter is checked against them when playbooks load.
func Severities() []string { return []string{"critical", "error", "warning", "info"} }

func validSeverity(s string) bool { return slices.Contains(Severities(), s) }

// falcoPrefix is the "09:14:03.512348123: Notice " Falco puts before its
// output text.
var falcoPrefix = regexp.MustCompile(`^\d{2}:\d{2}:\d{2}\.\d+: [A-Za-z]+ `)

// Summary is the default summary: the alert's output without Falco's time
// and priority prefix, or rule and container.
func Summary(a alert.Alert, container string) string {
	if out := falcoPrefix.ReplaceAllString(strings.TrimSpace(a.Output), ""); out != "" {
		return out
	}
	s := a.Rule
	if s == "" {
		s = "riposte"
	}
	if n := a.Field("container.name"); n != "" {
		s += " in " + n
	} else if container != "" {
		s += " in " + container
	}
	return s
}

// source is "hostname/container", as PD-CEF asks for the affected system.
func source(a alert.Alert, container string) string {
	host := a.Hostname
	name := a.Field("container.name")
	if name == "" && a.InContainer() {
		name = a.Field("container.id")
	}
	if name == "" && container != "" && container != alert.HostContainerID {
		name = container
	}
	switch {
	case host != "" && name != "":
		return host + "/" + name
	case host != "":
		return host
	case name != "":
		return name
	}
	return "riposte"
}

func details(req actions.Request) map[string]any {
	a := req.Alert
	d := map[string]any{"incident": req.Incident}
	if a.Rule != "" {
		d["rule"] = a.Rule
		d["priority"] = a.Priority.String()
		d["alert_id"] = a.ID
		d["output"] = delivery.Truncate(a.Output, 4*maxDetail)
		if a.Source != "" {
			d["source"] = a.Source
		}
		if len(a.Tags) > 0 {
			d["tags"] = a.Tags
		}
		fields := map[string]any{}
		for k, v := range a.OutputFields {
			if len(fields) == maxFields {
				break
			}
			if s, ok := v.(string); ok {
				v = delivery.Truncate(s, maxDetail)
			}
			fields[k] = v
		}
		d["fields"] = fields
	}
	if req.Container != "" {
		d["container"] = req.Container
	}
	if req.Fold != nil {
		d["riposte_update"] = req.Fold.Summary()
		d["riposte_alerts_in_update"] = req.Fold.Alerts
	}
	if len(req.Steps) > 0 {
		steps := make([]string, 0, len(req.Steps))
		for _, s := range req.Steps {
			line := s.Action + ": " + string(s.Status)
			if s.Note != "" {
				line += " (" + s.Note + ")"
			}
			steps = append(steps, delivery.Truncate(line, 300))
		}
		d["riposte_steps"] = steps
	}
	return d
}

// send posts the event and classifies the outcome: 202 done; 429, 5xx and
// network failures retryable (with Retry-After when PagerDuty sends one);
// 400 and other 4xx permanent.
func (p *PagerDuty) send(ctx context.Context, ev pd.V2Event) (actions.Result, error) {
	op := "trigger pagerduty event"
	if ev.Action == "resolve" {
		op = "resolve pagerduty event"
	}
	cp := &capture{}
	resp, err := p.client.ManageEventWithContext(context.WithValue(ctx, captureKey{}, cp), &ev)
	switch {
	case cp.status == http.StatusAccepted:
		res := actions.Result{Detail: map[string]any{"dedup_key": ev.DedupKey}}
		if resp != nil {
			res.Detail["status"], res.Detail["message"] = resp.Status, resp.Message
		}
		res.Note = fmt.Sprintf("PagerDuty event %s accepted (dedup_key %s)", ev.Action, ev.DedupKey)
		return res, nil
	case cp.status == 0:
		if cp.err != nil {
			return actions.Result{}, delivery.Transport(op, cp.err)
		}
		return actions.Result{}, delivery.Transport(op, err)
	}
	return actions.Result{}, p.statusError(op, cp)
}

func (p *PagerDuty) statusError(op string, cp *capture) error {
	var body struct {
		Status  string   `json:"status"`
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	msg := fmt.Sprintf("%s: HTTP %d", op, cp.status)
	if json.Unmarshal(cp.body, &body) == nil && (body.Status != "" || body.Message != "") {
		for _, s := range []string{body.Status, body.Message, strings.Join(body.Errors, "; ")} {
			if s != "" {
				msg += ": " + delivery.Truncate(s, 300)
			}
		}
	} else if s := delivery.Snippet(cp.body, 200); s != "" {
		msg += ": " + s
	}
	err := errors.New(msg)
	if !delivery.RetryableStatus(cp.status) {
		return err
	}
	return delivery.WithRetryAfter(err, delivery.ParseRetryAfter(cp.header.Get("Retry-After"), p.now()))
}

// capture records the raw answer of the Events API: go-pagerduty's client
// turns Events API errors into a REST API error type and drops their body,
// status text and Retry-After.
type capture struct {
	status int
	header http.Header
	body   []byte
	err    error
}

type captureKey struct{}

type capturingDoer struct{ c *http.Client }

func (d capturingDoer) Do(r *http.Request) (*http.Response, error) {
	resp, err := d.c.Do(r)
	cp, _ := r.Context().Value(captureKey{}).(*capture)
	if cp == nil {
		return resp, err
	}
	if err != nil {
		cp.err = err
		return nil, err
	}
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if rerr != nil {
		cp.err = rerr
		return nil, rerr
	}
	cp.status, cp.header, cp.body = resp.StatusCode, resp.Header.Clone(), b
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}
