package slack

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// Config is the `notifiers.slack` section of riposte.yaml. Secrets are named,
// never inlined: each comes from an environment variable (`*_env`) or a file
// (`*_file`).
//
//	slack:
//	  token_env: SLACK_BOT_TOKEN          # xoxb-…, chat:write (+ usergroups:read for group approvers)
//	  signing_secret_file: /run/secrets/slack-signing-secret
//	  channel: "#ir"
//	  approvers: [U024BE7LH, "@oncall", S0614TZR7]
//	  # webhook_url_env: SLACK_WEBHOOK_URL  # fallback without buttons when there is no bot token
//	  # socket_mode: true                    # with app_token_env: SLACK_APP_TOKEN (xapp-…)
type Config struct {
	// Bot token (xoxb-…): chat.postMessage, chat.update and, for group
	// approvers, usergroups.list / usergroups.users.list.
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`

	// Incoming webhook URL: the fallback when there is no bot token. Messages
	// carry no buttons and cannot be updated.
	WebhookURLEnv  string `yaml:"webhook_url_env"`
	WebhookURLFile string `yaml:"webhook_url_file"`

	// Signing secret of the Slack app; required to serve interactions and
	// slash commands over HTTP.
	SigningSecretEnv  string `yaml:"signing_secret_env"`
	SigningSecretFile string `yaml:"signing_secret_file"`

	// SocketMode receives interactions and slash commands over a WebSocket
	// opened by riposte (no public URL needed); needs an app-level token
	// (xapp-…, connections:write).
	SocketMode   *bool  `yaml:"socket_mode"`
	AppTokenEnv  string `yaml:"app_token_env"`
	AppTokenFile string `yaml:"app_token_file"`

	// Channel is the default channel (name or id) of slack.notify.
	Channel string `yaml:"channel"`

	// Approvers may press the containment buttons (Pause, Quarantine, Kill,
	// Release), run the same slash commands and approve held actions when the
	// playbook names no approvers of its own. Entries are Slack user ids
	// (U…, W…), user-group ids (S…) or user-group handles ("@oncall").
	// Empty: nobody may.
	Approvers []string `yaml:"approvers"`

	// GroupCacheTTL is how long user-group membership is cached (default 5m).
	GroupCacheTTL time.Duration `yaml:"group_cache_ttl"`

	// ActionTimeout bounds the work started by one button press or command
	// (default 2m).
	ActionTimeout time.Duration `yaml:"action_timeout"`

	// Timeout bounds one Slack API call (default 10s).
	Timeout time.Duration `yaml:"timeout"`

	// Throttle sends at most one update per incident per interval: the
	// first alert's notification goes out at once, later ones are counted
	// into one update of the same message and thread (0: every alert). A playbook
	// action's throttle parameter overrides it.
	Throttle time.Duration `yaml:"throttle"`
	// APIURL is the Web API base (default https://slack.com/api/); tests and
	// proxies only.
	APIURL string `yaml:"api_url"`
}

const defaultAPIURL = "https://slack.com/api/"

func (c Config) token() secret.Source {
	return secret.Source{What: "slack bot token", EnvKey: "token_env", FileKey: "token_file", Env: c.TokenEnv, File: c.TokenFile}
}

func (c Config) webhookURL() secret.Source {
	return secret.Source{What: "slack webhook URL", EnvKey: "webhook_url_env", FileKey: "webhook_url_file", Env: c.WebhookURLEnv, File: c.WebhookURLFile}
}

func (c Config) signingSecret() secret.Source {
	return secret.Source{What: "slack signing secret", EnvKey: "signing_secret_env", FileKey: "signing_secret_file", Env: c.SigningSecretEnv, File: c.SigningSecretFile}
}

func (c Config) appToken() secret.Source {
	return secret.Source{What: "slack app-level token", EnvKey: "app_token_env", FileKey: "app_token_file", Env: c.AppTokenEnv, File: c.AppTokenFile}
}

func (c Config) socketMode() bool { return c.SocketMode != nil && *c.SocketMode }

var (
	userIDPattern  = regexp.MustCompile(`^[UW][A-Z0-9]{1,20}$`)
	groupIDPattern = regexp.MustCompile(`^S[A-Z0-9]{1,20}$`)
	handlePattern  = regexp.MustCompile(`^@[a-z0-9][a-z0-9._-]{0,79}$`)
)

// CheckApprover reports whether s is a Slack user id, user-group id or
// user-group handle. Playbook loaders use it for `approval.approvers`.
func CheckApprover(s string) error {
	if userIDPattern.MatchString(s) || groupIDPattern.MatchString(s) || handlePattern.MatchString(s) {
		return nil
	}
	return fmt.Errorf("approver %q: want a user id (U…, W…), a user-group id (S…) or a user-group handle (@oncall)", s)
}

// Validate checks the section without reading any secret: which sources are
// set, that no secret is given two ways, the approvers, the durations and the
// API URL. Each problem is reported; New reads the secrets.
func (c Config) Validate() error {
	var errs []error
	if c.Throttle < 0 {
		errs = append(errs, fmt.Errorf("throttle: must not be negative, got %s", c.Throttle))
	}
	for _, s := range []secret.Source{c.token(), c.webhookURL(), c.signingSecret(), c.appToken()} {
		if err := s.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case !c.token().Set() && !c.webhookURL().Set():
		errs = append(errs, errors.New("set token_env or token_file (bot token, with buttons), or webhook_url_env or webhook_url_file (incoming webhook, without buttons)"))
	case c.token().Set() && c.webhookURL().Set():
		errs = append(errs, errors.New("set a bot token or an incoming webhook URL, not both: the webhook is the mode without a bot token"))
	}
	if c.socketMode() {
		if !c.appToken().Set() {
			errs = append(errs, errors.New("socket_mode needs an app-level token: set app_token_env or app_token_file"))
		}
		if !c.token().Set() {
			errs = append(errs, errors.New("socket_mode needs a bot token: set token_env or token_file"))
		}
	} else if c.appToken().Set() {
		errs = append(errs, errors.New("app_token_env/app_token_file are only used with socket_mode: true"))
	}
	if c.signingSecret().Set() && !c.token().Set() {
		errs = append(errs, errors.New("interactivity (signing_secret_*) needs a bot token: set token_env or token_file"))
	}
	for _, a := range c.Approvers {
		if err := CheckApprover(a); err != nil {
			errs = append(errs, fmt.Errorf("approvers: %w", err))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"group_cache_ttl", c.GroupCacheTTL}, {"action_timeout", c.ActionTimeout}, {"timeout", c.Timeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.key, d.v))
		}
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasSuffix(u.Path, "/") {
			errs = append(errs, fmt.Errorf("api_url: want an http(s) URL ending in /, got %q", c.APIURL))
		}
	}
	if c.Channel != "" && strings.TrimSpace(c.Channel) != c.Channel {
		errs = append(errs, fmt.Errorf("channel: surrounding spaces in %q", c.Channel))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("slack config: %w", err)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

var _ actions.ParamChecker = Config{}

// CheckParams checks slack.notify's channel against the configuration, so
// that `riposte playbook lint --config` and serve's start refuse what would
// fail or be ignored at delivery: no channel anywhere with a bot token, or
// a channel with an incoming webhook (which posts to its own channel).
func (c Config) CheckParams(action string, with actions.Params) error {
	if action != ActionNotify {
		return nil
	}
	v, named := with["channel"]
	if c.webhookURL().Set() && !c.token().Set() {
		if named {
			return fmt.Errorf("with.channel: notifiers.slack posts through an incoming webhook, which always posts to its own channel; remove channel %v or configure a bot token", v)
		}
		return nil
	}
	if !named && strings.TrimSpace(c.Channel) == "" {
		return errors.New("no channel: set with.channel or notifiers.slack.channel")
	}
	if s, ok := v.(string); named && ok && strings.TrimSpace(s) == "" {
		return errors.New("with.channel: empty")
	}
	return nil
}
