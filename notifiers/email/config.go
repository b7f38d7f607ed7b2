package email

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// TLSPolicy says whether STARTTLS is required.
type TLSPolicy string

// STARTTLS policies.
const (
	// StartTLSMandatory refuses to send over a server without STARTTLS (default).
	StartTLSMandatory TLSPolicy = "mandatory"
	// StartTLSOpportunistic uses STARTTLS when the server offers it.
	StartTLSOpportunistic TLSPolicy = "opportunistic"
	// StartTLSNone never starts TLS (local relays only).
	StartTLSNone TLSPolicy = "none"
)

// UnmarshalText accepts mandatory, opportunistic and none.
func (p *TLSPolicy) UnmarshalText(b []byte) error {
	switch v := TLSPolicy(strings.ToLower(strings.TrimSpace(string(b)))); v {
	case StartTLSMandatory, StartTLSOpportunistic, StartTLSNone:
		*p = v
		return nil
	}
	return fmt.Errorf("starttls: want mandatory, opportunistic or none, got %q", string(b))
}

// AuthMechanism is the SMTP AUTH mechanism.
type AuthMechanism string

// Mechanisms.
const (
	AuthNone  AuthMechanism = "none"
	AuthPlain AuthMechanism = "plain"
	AuthLogin AuthMechanism = "login"
)

// UnmarshalText accepts none, plain and login.
func (a *AuthMechanism) UnmarshalText(b []byte) error {
	switch v := AuthMechanism(strings.ToLower(strings.TrimSpace(string(b)))); v {
	case AuthNone, AuthPlain, AuthLogin:
		*a = v
		return nil
	}
	return fmt.Errorf("auth: want none, plain or login, got %q", string(b))
}

// Config is the `notifiers.email` section of riposte.yaml.
//
//	email:
//	  host: smtp.example.com
//	  port: 587
//	  starttls: mandatory          # opportunistic | none
//	  # implicit_tls: true         # SMTPS, usually port 465
//	  auth: plain                  # login | none
//	  username: riposte@example.com
//	  password_file: /run/secrets/smtp-password   # or password_env: SMTP_PASSWORD
//	  from: "riposte <riposte@example.com>"
//	  to: [soc@example.com]
type Config struct {
	Host string `yaml:"host"`
	// Port defaults to 465 with implicit_tls, else 587.
	Port int `yaml:"port"`
	// StartTLS is the STARTTLS policy (default mandatory). Ignored with
	// implicit_tls.
	StartTLS TLSPolicy `yaml:"starttls"`
	// ImplicitTLS speaks TLS from the first byte (SMTPS).
	ImplicitTLS *bool `yaml:"implicit_tls"`
	// CAFile is a PEM bundle trusted in addition to the system roots, for
	// relays with a private CA.
	CAFile string `yaml:"ca_file"`
	// TLSServerName is the name checked in the server certificate (default
	// host).
	TLSServerName string `yaml:"tls_server_name"`
	// Auth defaults to plain when a username is set, else none.
	Auth         AuthMechanism `yaml:"auth"`
	Username     string        `yaml:"username"`
	PasswordEnv  string        `yaml:"password_env"`
	PasswordFile string        `yaml:"password_file"`
	// From and To (default recipients; the action's `to` overrides).
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
	// HELO name (default: the machine's hostname).
	HELO string `yaml:"helo"`
	// TextTemplateFile and HTMLTemplateFile replace the built-in bodies
	// (text/template and html/template; data: TemplateData).
	TextTemplateFile string `yaml:"text_template_file"`
	HTMLTemplateFile string `yaml:"html_template_file"`
	// Timeout bounds the SMTP session (default 30s).
	Timeout time.Duration `yaml:"timeout"`
	// Throttle sends at most one update per incident per interval: the
	// first alert's notification goes out at once, later ones are counted
	// into one update in the same thread, a reply to the first mail (0:
	// every alert). A playbook action's throttle parameter overrides it.
	Throttle time.Duration `yaml:"throttle"`
}

func (c Config) password() secret.Source {
	return secret.Source{What: "smtp password", EnvKey: "password_env", FileKey: "password_file", Env: c.PasswordEnv, File: c.PasswordFile}
}

func (c Config) implicitTLS() bool { return c.ImplicitTLS != nil && *c.ImplicitTLS }

func (c Config) policy() TLSPolicy {
	if c.StartTLS == "" {
		return StartTLSMandatory
	}
	return c.StartTLS
}

func (c Config) auth() AuthMechanism {
	if c.Auth != "" {
		return c.Auth
	}
	if c.Username != "" {
		return AuthPlain
	}
	return AuthNone
}

func (c Config) port() int {
	switch {
	case c.Port != 0:
		return c.Port
	case c.implicitTLS():
		return 465
	}
	return 587
}

// Validate checks the section without reading the password or the files.
func (c Config) Validate() error {
	var errs []error
	if c.Throttle < 0 {
		errs = append(errs, fmt.Errorf("throttle: must not be negative, got %s", c.Throttle))
	}
	if strings.TrimSpace(c.Host) == "" {
		errs = append(errs, errors.New("host: missing (the SMTP server)"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a TCP port", c.Port))
	}
	if c.From == "" {
		errs = append(errs, errors.New("from: missing"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("from: %q is not an address: %v", c.From, err))
	}
	for _, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, fmt.Errorf("to: %q is not an address: %v", to, err))
		}
	}
	var p TLSPolicy
	if c.StartTLS != "" {
		if err := p.UnmarshalText([]byte(c.StartTLS)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.implicitTLS() && c.StartTLS != "" && c.StartTLS != StartTLSMandatory {
		errs = append(errs, fmt.Errorf("starttls: %s does not apply with implicit_tls: true (the whole session is TLS)", c.StartTLS))
	}
	var a AuthMechanism
	if c.Auth != "" {
		if err := a.UnmarshalText([]byte(c.Auth)); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.auth() {
	case AuthPlain, AuthLogin:
		if c.Username == "" {
			errs = append(errs, fmt.Errorf("auth: %s needs username", c.auth()))
		}
		if !c.password().Set() {
			errs = append(errs, fmt.Errorf("auth: %s needs password_env or password_file", c.auth()))
		}
		if c.policy() == StartTLSNone && !c.implicitTLS() {
			errs = append(errs, fmt.Errorf("auth: %s would send the password in clear: use starttls: mandatory or implicit_tls: true", c.auth()))
		}
	case AuthNone:
		if c.password().Set() {
			errs = append(errs, errors.New("password_env/password_file set but auth is none"))
		}
	}
	if err := c.password().Check(); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("email config: %w", err)
	}
	return nil
}
