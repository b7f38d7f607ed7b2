package pagerduty

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// Config is the `notifiers.pagerduty` section of riposte.yaml.
//
//	pagerduty:
//	  routing_key_file: /run/secrets/pagerduty-routing-key   # or routing_key_env: PD_ROUTING_KEY
type Config struct {
	// Integration (routing) key of an Events API v2 integration: 32
	// characters, from an environment variable or a file.
	RoutingKeyEnv  string `yaml:"routing_key_env"`
	RoutingKeyFile string `yaml:"routing_key_file"`
	// Endpoint is the Events API base URL (default
	// https://events.pagerduty.com); tests and proxies only.
	Endpoint string `yaml:"endpoint"`
	// Client names the sender in PagerDuty (default "riposte").
	Client string `yaml:"client"`
	// Throttle sends at most one update per incident per interval: the
	// first alert's notification goes out at once, later ones are counted
	// into one update of the same PagerDuty alert (same dedup_key) (0: every alert). A playbook
	// action's throttle parameter overrides it.
	Throttle time.Duration `yaml:"throttle"`
	// Timeout bounds one request (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

const defaultEndpoint = "https://events.pagerduty.com"

func (c Config) routingKey() secret.Source {
	return secret.Source{What: "pagerduty routing key", EnvKey: "routing_key_env", FileKey: "routing_key_file", Env: c.RoutingKeyEnv, File: c.RoutingKeyFile}
}

// Validate checks the section without reading the routing key.
func (c Config) Validate() error {
	var errs []error
	if c.Throttle < 0 {
		errs = append(errs, fmt.Errorf("throttle: must not be negative, got %s", c.Throttle))
	}
	if !c.routingKey().Set() {
		errs = append(errs, errors.New("set routing_key_env or routing_key_file (Events API v2 integration key)"))
	} else if err := c.routingKey().Check(); err != nil {
		errs = append(errs, err)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("endpoint: want a base URL such as https://events.pagerduty.com, got %q", c.Endpoint))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pagerduty config: %w", err)
	}
	return nil
}
