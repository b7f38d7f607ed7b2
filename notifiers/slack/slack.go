package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/internal/delivery"
	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// Action names and the step vocabulary this package adds.
const (
	// ActionNotify posts (or updates) the incident message.
	ActionNotify = "slack.notify"
	// ActionAcknowledge is what Dispatcher.Act receives for the Acknowledge
	// button: nothing to run, a fact to journal.
	ActionAcknowledge = "incident.acknowledge"
	// ActionMute is what Dispatcher.Act receives for the Mute 1h button
	// (approvers only): silence the incident's rule in its container for
	// MuteFor, notifications only.
	ActionMute = "incident.mute"
	// ActionApproval is the step recorded on the incident message when an
	// approver decides.
	ActionApproval = "approval"

	// MuteFor is how long the Mute button silences.
	MuteFor = time.Hour

	StatusSucceeded = actions.StatusSucceeded
	StatusFailed    = actions.StatusFailed
	StatusApproved  = actions.StatusApproved
	StatusRejected  = actions.StatusRejected
)

// ErrNoMessage is returned (wrapped) by Update when the incident has no Slack
// message yet; it wraps actions.ErrNotFound.
var ErrNoMessage = fmt.Errorf("incident has no slack message: %w", actions.ErrNotFound)

// Deps are the notifier's collaborators. Every field is optional.
type Deps struct {
	// Logger receives warnings and debug lines; never a secret. Nil: discard.
	Logger *slog.Logger
	// HTTPClient talks to Slack (Web API, response_url, incoming webhook).
	// Nil: a client with the configured timeout.
	HTTPClient *http.Client
	// Threads keeps channel + ts per incident. Nil: in memory (lost on
	// restart: the next notify of an open incident then posts anew).
	Threads Threads
	// Dispatcher runs what buttons and slash commands ask. Nil: every
	// request is answered with "riposte cannot act from Slack here".
	Dispatcher Dispatcher
	// Replays remembers the signed requests served, so that a replay is
	// refused. Nil: in memory (a restart forgets: give the store).
	Replays Replays
	// LookupEnv reads secrets from the environment. Nil: os.LookupEnv.
	LookupEnv secret.LookupEnv
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// Slack posts incident messages, keeps them up to date, and serves the
// interactivity endpoints (buttons, approvals, slash commands) over HTTP or
// Socket Mode. It is safe for concurrent use; Close waits for the work that
// button presses and commands started.
type Slack struct {
	cfg        Config
	log        *slog.Logger
	api        *slack.Client // nil in incoming-webhook mode
	apiURL     string
	webhookURL string
	signing    string
	appToken   string
	http       *http.Client
	threads    Threads
	dispatch   Dispatcher
	now        func() time.Time
	redact     secret.Redactor
	locks      keyedMutex
	groups     *groupCache
	replays    Replays

	bgMu   sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New builds the notifier: it validates cfg and reads its secrets.
func New(cfg Config, deps Deps) (*Slack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Slack{
		cfg:      cfg,
		log:      deps.Logger,
		http:     deps.HTTPClient,
		threads:  deps.Threads,
		dispatch: deps.Dispatcher,
		now:      deps.Now,
		apiURL:   cfg.APIURL,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.http == nil {
		s.http = &http.Client{Timeout: orDefault(cfg.Timeout, 10*time.Second)}
	}
	if s.threads == nil {
		s.threads = &MemoryThreads{}
	}
	if s.dispatch == nil {
		s.dispatch = noDispatcher{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.apiURL == "" {
		s.apiURL = defaultAPIURL
	}
	var errs []error
	load := func(src secret.Source) string {
		if !src.Set() {
			return ""
		}
		v, err := src.Load(deps.LookupEnv)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	token := load(cfg.token())
	s.webhookURL = load(cfg.webhookURL())
	s.signing = load(cfg.signingSecret())
	s.appToken = load(cfg.appToken())
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	s.redact = secret.NewRedactor(token, s.webhookURL, s.signing, s.appToken)
	if token != "" {
		opts := []slack.Option{slack.OptionAPIURL(s.apiURL), slack.OptionHTTPClient(s.http)}
		if s.appToken != "" {
			opts = append(opts, slack.OptionAppLevelToken(s.appToken))
		}
		s.api = slack.New(token, opts...)
	}
	s.groups = &groupCache{api: s.api, ttl: orDefault(cfg.GroupCacheTTL, 5*time.Minute), now: s.now}
	s.replays = deps.Replays
	if s.replays == nil {
		s.replays = &memoryReplays{now: s.now}
	}
	return s, nil
}

// Throttle is the configured throttle interval of slack.notify (0: none).
func (s *Slack) Throttle() time.Duration { return s.cfg.Throttle }

// Buttons reports whether messages carry response buttons (bot token mode).
func (s *Slack) Buttons() bool { return s.api != nil }

// Interactive reports whether the HTTP interactivity endpoints can verify
// requests (a signing secret is configured).
func (s *Slack) Interactive() bool { return s.api != nil && s.signing != "" }

// Run implements actions.Runner for slack.notify. Running the same request
// again is safe: an incident that already has a message gets that message
// updated, and a request key already delivered gets no second thread reply.
func (s *Slack) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	if req.Action != ActionNotify {
		return actions.Result{}, fmt.Errorf("slack: unknown action %q", req.Action)
	}
	var (
		res actions.Result
		err error
	)
	if s.api == nil {
		res, err = s.notifyWebhook(ctx, req)
	} else {
		res, err = s.notify(ctx, req)
	}
	return res, s.redact.Error(err)
}

func (s *Slack) notify(ctx context.Context, req actions.Request) (actions.Result, error) {
	channel := req.Params.String("channel", s.cfg.Channel)
	if req.Incident == "" {
		// No incident, nothing to thread: one message per request.
		c := newCard(req, true)
		c.addSteps(req.Steps)
		m, err := s.post(ctx, channel, c)
		if err != nil {
			return actions.Result{}, err
		}
		return posted(m), nil
	}
	unlock := s.locks.lock(req.Incident)
	defer unlock()
	c, ok, err := s.load(ctx, req.Incident)
	if err != nil {
		return actions.Result{}, err
	}
	if !ok {
		c = newCard(req, true)
		if req.Fold != nil {
			c.Alerts = max(c.Alerts, req.Fold.Alerts)
		}
		c.addSteps(req.Steps)
		m, err := s.post(ctx, channel, c)
		if err != nil {
			return actions.Result{}, err
		}
		c.Messages = []msgRef{m}
		c.markDelivered(req.Key)
		s.save(ctx, req.Incident, c)
		return posted(m), nil
	}
	return s.notifyAgain(ctx, req, channel, c)
}

func posted(m msgRef) actions.Result {
	return actions.Result{Note: "posted to " + m.Channel, Detail: map[string]any{"channel": m.Channel, "ts": m.TS}}
}

// notifyAgain handles a notify for an incident that has messages: the card
// takes the new alert and steps, every message of the incident is updated,
// and the message in the requested channel (posted now if the incident had
// none there) gets one reply per request.
func (s *Slack) notifyAgain(ctx context.Context, req actions.Request, channel string, c card) (actions.Result, error) {
	newAlert := c.absorbAlert(req)
	if newAlert && req.Fold != nil {
		c.Alerts += req.Fold.Alerts - 1 // the update stands for them all
	}
	c.addSteps(req.Steps)
	already := c.delivered(req.Key)
	target := c.message(channel)
	if target < 0 {
		// First message of this incident in that channel; it shows
		// everything, so no reply is owed for this request.
		m, err := s.post(ctx, channel, c)
		if err != nil {
			return actions.Result{}, err
		}
		c.Messages = append(c.Messages, m)
		c.markDelivered(req.Key)
		s.save(ctx, req.Incident, c)
		if err := s.updateAll(ctx, &c, len(c.Messages)-1); err != nil {
			return actions.Result{}, err
		}
		s.save(ctx, req.Incident, c)
		return posted(m), nil
	}
	want := c.Messages[target]
	if err := s.updateAll(ctx, &c, -1); err != nil {
		return actions.Result{}, err
	}
	target = c.message(want.Channel)
	note := "updated the message in " + want.Channel
	if target < 0 {
		// Someone deleted it: post it again.
		m, err := s.post(ctx, want.Channel, c)
		if err != nil {
			return actions.Result{}, err
		}
		m.Requested = want.Requested
		c.Messages = append(c.Messages, m)
		c.markDelivered(req.Key)
		s.save(ctx, req.Incident, c)
		return actions.Result{Note: "posted again to " + m.Channel + " (the message was deleted)",
			Detail: map[string]any{"channel": m.Channel, "ts": m.TS}}, nil
	}
	m := c.Messages[target]
	c.markDelivered(req.Key)
	s.save(ctx, req.Incident, c)
	if !already {
		reply := ""
		switch {
		case req.Fold != nil:
			reply = replyForFold(*req.Fold, req.Alert)
		case newAlert && c.Alerts > 1:
			reply = replyForAlert(req.Alert)
		case req.Params.String("text", "") != "":
			reply = escape(req.Params.String("text", ""))
		}
		if reply != "" {
			if err := s.reply(ctx, m, reply); err != nil {
				return actions.Result{}, err
			}
			note += " and replied in its thread"
		}
	}
	return actions.Result{Note: note, Detail: map[string]any{"channel": m.Channel, "ts": m.TS, "updated": true}}, nil
}

// load returns the card of an incident; ok is false when it has none (or
// its state is unreadable, which is logged: a new message is better than
// none).
func (s *Slack) load(ctx context.Context, incident string) (card, bool, error) {
	th, ok, err := s.threads.Get(ctx, incident)
	if err != nil {
		return card{}, false, actions.Retryable(fmt.Errorf("slack: load message of incident %s: %w", incident, err))
	}
	if !ok {
		return card{}, false, nil
	}
	c, err := decodeCard(th.State)
	if err != nil {
		s.log.WarnContext(ctx, "slack message state unreadable; posting a new message", "incident", incident, "err", err)
		return card{}, false, nil
	}
	if len(c.Messages) == 0 && th.Channel != "" {
		c.Messages = []msgRef{{Channel: th.Channel, TS: th.TS}}
	}
	return c, true, nil
}

// updateAll re-renders every message of the card but skip (-1: none).
// Deleted messages are dropped from the card; any other failure is returned
// before anything is recorded, so that a retry updates them all again.
func (s *Slack) updateAll(ctx context.Context, c *card, skip int) error {
	kept := c.Messages[:0:0]
	for i, m := range c.Messages {
		if i == skip {
			kept = append(kept, m)
			continue
		}
		err := s.update(ctx, m, *c)
		switch {
		case messageGone(err):
			s.log.InfoContext(ctx, "slack message deleted by someone; no longer updated", "incident", c.Incident, "channel", m.Channel, "ts", m.TS)
		case err != nil:
			return err
		default:
			kept = append(kept, m)
		}
	}
	c.Messages = kept
	return nil
}

// save records the card; a failure is logged, not returned: the message is
// out, and an error would make the outbox post it a second time.
func (s *Slack) save(ctx context.Context, incident string, c card) {
	var th Thread
	if len(c.Messages) > 0 {
		th.Channel, th.TS = c.Messages[0].Channel, c.Messages[0].TS
	}
	th.State = c.encode()
	if err := s.threads.Put(ctx, incident, th); err != nil {
		s.log.ErrorContext(ctx, "slack: could not record the message of an incident; later steps will post a new message",
			"incident", incident, "channel", th.Channel, "ts", th.TS, "err", err)
	}
}

func (s *Slack) post(ctx context.Context, channel string, c card) (msgRef, error) {
	if channel == "" {
		return msgRef{}, errors.New("notify slack: no channel: set channel in the slack config or in the action's with")
	}
	ch, ts, err := s.api.PostMessageContext(ctx, channel,
		slack.MsgOptionText(escape(c.fallbackText()), false),
		slack.MsgOptionBlocks(c.blocks()...),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl())
	if err != nil {
		return msgRef{}, s.classify("post slack message", err)
	}
	return msgRef{Requested: channel, Channel: ch, TS: ts}, nil
}

func (s *Slack) update(ctx context.Context, m msgRef, c card) error {
	_, _, _, err := s.api.UpdateMessageContext(ctx, m.Channel, m.TS,
		slack.MsgOptionText(escape(c.fallbackText()), false),
		slack.MsgOptionBlocks(c.blocks()...))
	if err != nil {
		return s.classify("update slack message", err)
	}
	return nil
}

func (s *Slack) reply(ctx context.Context, m msgRef, text string) error {
	_, _, err := s.api.PostMessageContext(ctx, m.Channel,
		slack.MsgOptionTS(m.TS),
		slack.MsgOptionText(text, false),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl())
	if err != nil {
		return s.classify("reply in slack thread", err)
	}
	return nil
}

// Update reports later steps (who did what) on the incident's messages:
// each is re-rendered with the steps, and one reply in each thread lists
// the new ones. Steps already shown are ignored, so repeating a call is
// harmless. It returns an error wrapping ErrNoMessage when the incident has
// no message.
//
// Dispatcher.Act must not call Update for the command it runs: the button
// handler reports that step itself.
func (s *Slack) Update(ctx context.Context, incident string, steps ...actions.Step) error {
	if s.api == nil {
		return fmt.Errorf("update slack message of incident %s: %w", incident, ErrNoMessage)
	}
	unlock := s.locks.lock(incident)
	defer unlock()
	c, ok, err := s.load(ctx, incident)
	if err != nil {
		return err
	}
	if !ok || len(c.Messages) == 0 {
		return fmt.Errorf("update slack message of incident %s: %w", incident, ErrNoMessage)
	}
	added := c.addSteps(steps)
	if len(added) == 0 {
		return nil
	}
	if err := s.updateAll(ctx, &c, -1); err != nil {
		return s.redact.Error(fmt.Errorf("incident %s: %w", incident, err))
	}
	s.save(ctx, incident, c)
	if len(c.Messages) == 0 {
		return fmt.Errorf("update slack message of incident %s: %w", incident, ErrNoMessage)
	}
	lines := make([]string, 0, len(added))
	for _, st := range added {
		lines = append(lines, stepLine(st))
	}
	for _, m := range c.Messages {
		if err := s.reply(ctx, m, fitLines(lines, maxSection)); err != nil {
			return s.redact.Error(fmt.Errorf("incident %s: %w", incident, err))
		}
	}
	return nil
}

// notifyWebhook posts through the incoming webhook: no buttons, no thread.
func (s *Slack) notifyWebhook(ctx context.Context, req actions.Request) (actions.Result, error) {
	c := newCard(req, false)
	if req.Fold != nil {
		// Nothing to update here: a throttled update is a new message
		// that counts what it stands for.
		c.Alerts = max(c.Alerts, req.Fold.Alerts)
	}
	c.addSteps(req.Steps)
	blocks := slack.Blocks{BlockSet: c.blocks()}
	msg := slack.WebhookMessage{
		Text:        escape(c.fallbackText()),
		Blocks:      &blocks,
		UnfurlLinks: new(bool),
		UnfurlMedia: new(bool),
	}
	if err := s.postJSON(ctx, "post slack webhook", s.webhookURL, msg); err != nil {
		return actions.Result{}, err
	}
	return actions.Result{Note: "posted through the incoming webhook"}, nil
}

// classify turns a slack-go error into a retryable or permanent one, keeping
// Slack's Retry-After.
func (s *Slack) classify(op string, err error) error {
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	switch {
	case errors.As(err, &rl):
		return delivery.WithRetryAfter(fmt.Errorf("%s: rate limited by slack", op), rl.RetryAfter)
	case errors.As(err, &sc):
		e := fmt.Errorf("%s: slack answered HTTP %d", op, sc.Code)
		if delivery.RetryableStatus(sc.Code) {
			return actions.Retryable(e)
		}
		return e
	case errors.As(err, &se):
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org":
			return actions.Retryable(fmt.Errorf("%s: slack error %w", op, se))
		case "channel_not_found", "message_not_found", "thread_not_found", "user_not_found", "no_such_subteam":
			return fmt.Errorf("%s: slack error %w (%w)", op, se, actions.ErrNotFound)
		}
		return fmt.Errorf("%s: slack error %w", op, se)
	}
	return delivery.Transport(op, err)
}

// messageGone reports a chat.update refused because the message was deleted.
func messageGone(err error) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && se.Err == "message_not_found"
}

// Close stops accepting button presses and commands and waits for the work
// they started (each bounded by action_timeout).
func (s *Slack) Close() error {
	s.bgMu.Lock()
	s.closed = true
	s.bgMu.Unlock()
	s.wg.Wait()
	return nil
}

// spawn runs f in the background with its own deadline, so that the HTTP
// handler can answer Slack within its 3-second limit.
func (s *Slack) spawn(f func(ctx context.Context)) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), orDefault(s.cfg.ActionTimeout, 2*time.Minute))
		defer cancel()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("slack: panic while handling an interaction", "panic", fmt.Sprint(r))
			}
		}()
		f(ctx)
	}()
	return true
}
