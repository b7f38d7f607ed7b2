package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/internal/delivery"
	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// ActionPost is the action this notifier implements.
const ActionPost = "webhook.post"

// Deps are the notifier's collaborators; every field is optional.
type Deps struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// HTTPClient; nil: a client with the configured timeout. Redirects are
	// never followed (a copy of the client is used).
	HTTPClient *http.Client
	// LookupEnv reads the variables; nil: os.LookupEnv.
	LookupEnv secret.LookupEnv
	// Now is the clock (signature timestamp); nil: time.Now.
	Now func() time.Time
}

// Webhook posts JSON to named endpoints. It is safe for concurrent use and
// holds nothing to close.
type Webhook struct {
	cfg       Config
	endpoints map[string]endpoint
	names     []string
	http      *http.Client
	log       *slog.Logger
	now       func() time.Time
	redact    secret.Redactor
}

type endpoint struct {
	name    string
	url     string
	secret  []byte
	bearer  string
	headers map[string]string
}

// Body is what riposte posts.
type Body struct {
	Version  int    `json:"version"`
	Incident string `json:"incident,omitempty"`
	// Key identifies the action (alert, playbook, index); the same key is
	// sent in Idempotency-Key, so a receiver can drop a retried delivery.
	Key       string         `json:"key,omitempty"`
	Action    string         `json:"action"`
	Actor     string         `json:"actor,omitempty"`
	Container string         `json:"container,omitempty"`
	Alert     *alert.Alert   `json:"alert,omitempty"`
	Steps     []actions.Step `json:"steps"`
	// Update, for a throttled update, says how many alerts of the incident
	// it stands for; Alert is the latest of them.
	Update *Update `json:"update,omitempty"`
}

// Update is what a throttled post stands for.
type Update struct {
	Alerts  int    `json:"alerts"`
	Summary string `json:"summary"` // "+37 more in 5 min"
}

// Throttle is the configured throttle interval of webhook.post (0: none).
func (w *Webhook) Throttle() time.Duration { return w.cfg.Throttle }

// New validates cfg and reads the URLs and secrets.
func New(cfg Config, deps Deps) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Webhook{cfg: cfg, endpoints: map[string]endpoint{}, log: deps.Logger, now: deps.Now}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if w.now == nil {
		w.now = time.Now
	}
	hc := http.Client{Timeout: cfg.Timeout}
	if deps.HTTPClient != nil {
		hc = *deps.HTTPClient
	}
	if hc.Timeout == 0 {
		hc.Timeout = 10 * time.Second
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	w.http = &hc

	var secrets []string
	var loadErrs []error
	load := func(s secret.Source) string {
		if !s.Set() {
			return ""
		}
		v, err := s.Load(deps.LookupEnv)
		if err != nil {
			loadErrs = append(loadErrs, err)
		}
		return v
	}
	for _, e := range cfg.Endpoints {
		ep := endpoint{name: e.Name, url: e.URL, headers: e.Headers}
		if ep.url == "" {
			ep.url = load(e.url())
			if ep.url != "" {
				if err := checkURL(ep.url); err != nil {
					loadErrs = append(loadErrs, fmt.Errorf("webhook %q URL from %s: %w", e.Name, firstOf(e.URLEnv, e.URLFile), err))
				}
			}
		}
		ep.secret = []byte(load(e.secret()))
		ep.bearer = load(e.bearer())
		secrets = append(secrets, ep.url, string(ep.secret), ep.bearer)
		w.endpoints[e.Name] = ep
		w.names = append(w.names, e.Name)
	}
	if err := errors.Join(loadErrs...); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	w.redact = secret.NewRedactor(secrets...)
	return w, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Run implements actions.Runner for webhook.post: 2xx is done; 408, 429
// (with its Retry-After) and 5xx are retryable; other statuses, redirects
// included, are permanent.
func (w *Webhook) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	if req.Action != ActionPost {
		return actions.Result{}, fmt.Errorf("webhook: unknown action %q", req.Action)
	}
	res, err := w.post(ctx, req)
	return res, w.redact.Error(err)
}

func (w *Webhook) endpoint(name string) (endpoint, error) {
	if name == "" {
		if e, ok := w.endpoints["default"]; ok {
			return e, nil
		}
		if len(w.names) == 1 {
			return w.endpoints[w.names[0]], nil
		}
		return endpoint{}, fmt.Errorf("post webhook: no endpoint named: set endpoint (one of %s)", strings.Join(w.names, ", "))
	}
	e, ok := w.endpoints[name]
	if !ok {
		return endpoint{}, fmt.Errorf("post webhook: no endpoint %q (configured: %s)", name, strings.Join(w.names, ", "))
	}
	return e, nil
}

func (w *Webhook) post(ctx context.Context, req actions.Request) (actions.Result, error) {
	ep, err := w.endpoint(req.Params.String("endpoint", ""))
	if err != nil {
		return actions.Result{}, err
	}
	op := fmt.Sprintf("post webhook %q", ep.name)
	body := Body{Version: 1, Incident: req.Incident, Key: req.Key, Action: req.Action, Actor: req.Actor, Container: req.Container, Steps: req.Steps}
	if body.Steps == nil {
		body.Steps = []actions.Step{}
	}
	if req.Fold != nil {
		body.Update = &Update{Alerts: req.Fold.Alerts, Summary: req.Fold.Summary()}
	}
	if req.Alert.Rule != "" {
		a := req.Alert
		body.Alert = &a
	}
	b, err := json.Marshal(body)
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s: encode: %w", op, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(b))
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s: invalid URL", op)
	}
	for k, v := range ep.headers {
		hr.Header.Set(k, v)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "riposte-webhook/1")
	if req.Key != "" {
		hr.Header.Set("Idempotency-Key", req.Key)
	}
	if ep.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+ep.bearer)
	}
	if len(ep.secret) > 0 {
		hr.Header.Set(SignatureHeader, Sign(ep.secret, w.now(), b))
	}
	resp, err := w.http.Do(hr)
	if err != nil {
		return actions.Result{}, delivery.Transport(op, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode/100 == 2:
		return actions.Result{
			Note:   fmt.Sprintf("posted to webhook %s (HTTP %d)", ep.name, resp.StatusCode),
			Detail: map[string]any{"endpoint": ep.name, "status": resp.StatusCode},
		}, nil
	case resp.StatusCode/100 == 3:
		return actions.Result{}, fmt.Errorf("%s: HTTP %d redirect not followed (configure the final URL)", op, resp.StatusCode)
	}
	return actions.Result{}, delivery.FromStatus(op, resp, data, w.now())
}

// Endpoints returns the configured endpoint names.
func (w *Webhook) Endpoints() []string { return slices.Clone(w.names) }

var _ actions.ParamChecker = (*Webhook)(nil)

// CheckParams checks a playbook's literal endpoint against the configured
// endpoints (Config.CheckParams).
func (w *Webhook) CheckParams(action string, with actions.Params) error {
	return w.cfg.CheckParams(action, with)
}
