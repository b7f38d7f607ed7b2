package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// Config is the `notifiers.webhook` section of riposte.yaml.
//
//	webhook:
//	  endpoints:
//	    - name: soar
//	      url_env: SOAR_WEBHOOK_URL         # or url_file, or url (when the URL itself is not a secret)
//	      secret_file: /run/secrets/soar-hmac   # optional: X-Riposte-Signature
//	      # bearer_token_env: SOAR_TOKEN        # optional: Authorization: Bearer
type Config struct {
	Endpoints []Endpoint `yaml:"endpoints"`
	// Timeout bounds one POST (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// Throttle sends at most one post per incident per interval: the first
	// alert's at once, later ones counted into one update (Body.Update)
	// (0: every alert). A playbook action's throttle parameter overrides it.
	Throttle time.Duration `yaml:"throttle"`
}

// Endpoint is one named receiver.
type Endpoint struct {
	// Name is what `webhook.post` names in `endpoint:`.
	Name string `yaml:"name"`
	// The URL: inline, or from an environment variable or a file when it
	// embeds a credential.
	URL     string `yaml:"url"`
	URLEnv  string `yaml:"url_env"`
	URLFile string `yaml:"url_file"`
	// HMAC-SHA256 signing secret; when set, every request carries
	// X-Riposte-Signature (see Sign).
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
	// Bearer token sent as Authorization: Bearer.
	BearerTokenEnv  string `yaml:"bearer_token_env"`
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Headers are fixed extra headers (not for secrets).
	Headers map[string]string `yaml:"headers"`
}

func (e Endpoint) url() secret.Source {
	return secret.Source{What: fmt.Sprintf("webhook %q URL", e.Name), EnvKey: "url_env", FileKey: "url_file", Env: e.URLEnv, File: e.URLFile}
}

func (e Endpoint) secret() secret.Source {
	return secret.Source{What: fmt.Sprintf("webhook %q signing secret", e.Name), EnvKey: "secret_env", FileKey: "secret_file", Env: e.SecretEnv, File: e.SecretFile}
}

func (e Endpoint) bearer() secret.Source {
	return secret.Source{What: fmt.Sprintf("webhook %q bearer token", e.Name), EnvKey: "bearer_token_env", FileKey: "bearer_token_file", Env: e.BearerTokenEnv, File: e.BearerTokenFile}
}

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	headerPattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// reservedHeaders are set by riposte.
var reservedHeaders = []string{"Authorization", "Content-Type", "Content-Length", "Host", "Idempotency-Key", "User-Agent", SignatureHeader}

// Validate checks the section without reading any secret.
func (c Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("endpoints: none configured"))
	}
	seen := map[string]bool{}
	for i, e := range c.Endpoints {
		where := fmt.Sprintf("endpoints[%d]", i)
		if e.Name != "" {
			where = fmt.Sprintf("endpoints[%d] (%s)", i, e.Name)
		}
		switch {
		case e.Name == "":
			errs = append(errs, fmt.Errorf("%s: name: missing", where))
		case !namePattern.MatchString(e.Name):
			errs = append(errs, fmt.Errorf("%s: name: want lowercase letters, digits, - and _", where))
		case seen[e.Name]:
			errs = append(errs, fmt.Errorf("%s: name: used twice", where))
		}
		seen[e.Name] = true
		n := 0
		for _, v := range []string{e.URL, e.URLEnv, e.URLFile} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Errorf("%s: set exactly one of url, url_env and url_file", where))
		}
		if e.URL != "" {
			if err := checkURL(e.URL); err != nil {
				errs = append(errs, fmt.Errorf("%s: url: %w", where, err))
			}
		}
		for _, s := range []secret.Source{e.secret(), e.bearer()} {
			if err := s.Check(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
		for k := range e.Headers {
			if !headerPattern.MatchString(k) {
				errs = append(errs, fmt.Errorf("%s: headers: %q is not a header name", where, k))
				continue
			}
			for _, r := range reservedHeaders {
				if strings.EqualFold(k, r) {
					errs = append(errs, fmt.Errorf("%s: headers: %s is set by riposte", where, http.CanonicalHeaderKey(k)))
				}
			}
		}
	}
	if c.Throttle < 0 {
		errs = append(errs, fmt.Errorf("throttle: must not be negative, got %s", c.Throttle))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook config: %w", err)
	}
	return nil
}

// checkURL accepts absolute http(s) URLs. The URL is not echoed: it may
// hold a credential.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want an absolute http(s) URL")
	}
	return nil
}

var _ actions.ParamChecker = Config{}

// CheckParams checks a playbook's literal endpoint against the configured
// endpoints, so that a misspelt name fails `riposte playbook lint --config`
// and serve's start, not the delivery.
func (c Config) CheckParams(action string, with actions.Params) error {
	if action != ActionPost {
		return nil
	}
	var names []string
	has := map[string]bool{}
	for _, e := range c.Endpoints {
		names = append(names, e.Name)
		has[e.Name] = true
	}
	configured := strings.Join(names, ", ")
	v, ok := with["endpoint"]
	if !ok {
		if !has["default"] && len(names) != 1 {
			return fmt.Errorf("no endpoint named and none is called default: set with.endpoint (one of %s)", configured)
		}
		return nil
	}
	name, ok := v.(string)
	if !ok {
		return fmt.Errorf("with.endpoint: want an endpoint name, got %v", v)
	}
	if !has[name] {
		return fmt.Errorf("with.endpoint: no webhook endpoint %q in the config (configured: %s)", name, configured)
	}
	return nil
}
