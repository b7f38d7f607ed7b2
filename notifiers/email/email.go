package email

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	htmltemplate "html/template"
	texttemplate "text/template"

	gomail "github.com/wneessen/go-mail"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/internal/delivery"
	"github.com/riposte-sec/riposte/notifiers/internal/secret"
)

// ActionSend is the action this notifier implements.
const ActionSend = "email.send"

// Deps are the notifier's collaborators; every field is optional.
type Deps struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// LookupEnv reads the password's variable; nil: os.LookupEnv.
	LookupEnv secret.LookupEnv
	// Now is the clock (Date header); nil: time.Now.
	Now func() time.Time
	// Threads remembers the first mail of each incident, so that later
	// ones reply to it. Nil: in memory (a restart starts new threads).
	Threads KV
}

// KV is a small key/value table (the store's).
type KV interface {
	Get(ctx context.Context, ns, key string) (value []byte, ok bool, err error)
	Put(ctx context.Context, ns, key string, value []byte) error
}

// threadNS is the KV namespace of the first mail's Message-ID per incident.
const threadNS = "email.thread"

// memoryKV is the in-memory KV used when none is given.
type memoryKV struct {
	mu sync.Mutex
	m  map[string]string
}

func (m *memoryKV) Get(_ context.Context, ns, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[ns+"\x00"+key]
	return []byte(v), ok, nil
}

func (m *memoryKV) Put(_ context.Context, ns, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]string{}
	}
	m.m[ns+"\x00"+key] = string(value)
	return nil
}

// Email sends mail over SMTP with go-mail. It is safe for concurrent use:
// each Run opens its own SMTP session and closes it. Nothing to close.
type Email struct {
	cfg      Config
	password string
	tls      *tls.Config
	text     *texttemplate.Template
	html     *htmltemplate.Template
	log      *slog.Logger
	now      func() time.Time
	redact   secret.Redactor
	threads  KV
}

// New validates cfg, reads the password, the CA file and the templates.
func New(cfg Config, deps Deps) (*Email, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Email{cfg: cfg, log: deps.Logger, now: deps.Now, threads: deps.Threads}
	if e.threads == nil {
		e.threads = &memoryKV{}
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.now == nil {
		e.now = time.Now
	}
	var errs []error
	if cfg.password().Set() {
		pw, err := cfg.password().Load(deps.LookupEnv)
		if err != nil {
			errs = append(errs, err)
		}
		e.password = pw
	}
	e.redact = secret.NewRedactor(e.password)
	tc, err := tlsConfig(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	e.tls = tc
	if e.text, err = loadText(cfg.TextTemplateFile); err != nil {
		errs = append(errs, err)
	}
	if e.html, err = loadHTML(cfg.HTMLTemplateFile); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	return e, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{ServerName: cfg.TLSServerName, MinVersion: tls.VersionTLS12}
	if tc.ServerName == "" {
		tc.ServerName = cfg.Host
	}
	if cfg.CAFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", cfg.CAFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

func loadText(path string) (*texttemplate.Template, error) {
	src := defaultText
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("text_template_file: %w", err)
		}
		src = string(b)
	}
	t, err := parseText("text", src)
	if err != nil {
		return nil, fmt.Errorf("text_template_file %s: %w", path, err)
	}
	return t, nil
}

func loadHTML(path string) (*htmltemplate.Template, error) {
	src := defaultHTML
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("html_template_file: %w", err)
		}
		src = string(b)
	}
	t, err := parseHTML("html", src)
	if err != nil {
		return nil, fmt.Errorf("html_template_file %s: %w", path, err)
	}
	return t, nil
}

// Throttle is the configured throttle interval of email.send (0: none).
func (e *Email) Throttle() time.Duration { return e.cfg.Throttle }

// Run implements actions.Runner for email.send. The Message-ID derives from
// the request key, so a mail sent twice by a retry is recognisably the same.
func (e *Email) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	if req.Action != ActionSend {
		return actions.Result{}, fmt.Errorf("email: unknown action %q", req.Action)
	}
	res, err := e.send(ctx, req)
	return res, e.redact.Error(err)
}

func (e *Email) send(ctx context.Context, req actions.Request) (actions.Result, error) {
	to := e.cfg.To
	if v, ok := req.Params["to"]; ok {
		l, err := actions.AsStringList(v)
		if err != nil {
			return actions.Result{}, fmt.Errorf("send email: parameter to: %w", err)
		}
		to = l
	}
	if len(to) == 0 {
		return actions.Result{}, errors.New("send email: no recipient: set to in the email config or in the action's with")
	}
	data := e.data(req)
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(e.cfg.From); err != nil {
		return actions.Result{}, fmt.Errorf("send email: from: %w", err)
	}
	if err := msg.To(to...); err != nil {
		return actions.Result{}, fmt.Errorf("send email: to: %w", err)
	}
	id := messageID(req, e.cfg.From)
	root, threaded, err := e.thread(ctx, req.Incident)
	if err != nil {
		return actions.Result{}, err
	}
	threaded = threaded && root != id
	if threaded {
		// A later mail about the incident replies to its first one.
		msg.Subject("Re: " + data.Subject)
		msg.SetGenHeader(gomail.HeaderInReplyTo, "<"+root+">")
		msg.SetGenHeader(gomail.HeaderReferences, "<"+root+">")
	} else {
		msg.Subject(data.Subject)
	}
	msg.SetDateWithValue(e.now())
	msg.SetMessageIDWithValue(id)
	msg.SetUserAgent("riposte")
	if req.Incident != "" {
		msg.SetGenHeader("X-Riposte-Incident", req.Incident)
	}
	if err := msg.SetBodyTextTemplate(e.text, data); err != nil {
		return actions.Result{}, fmt.Errorf("send email: render text body: %w", err)
	}
	if err := msg.AddAlternativeHTMLTemplate(e.html, data); err != nil {
		return actions.Result{}, fmt.Errorf("send email: render HTML body: %w", err)
	}
	client, err := gomail.NewClient(e.cfg.Host, e.options()...)
	if err != nil {
		return actions.Result{}, fmt.Errorf("send email: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return actions.Result{}, classify(err)
	}
	if req.Incident != "" && root == "" {
		// Logged, not returned: the mail is out, and an error would send
		// it again.
		if err := e.threads.Put(ctx, threadNS, req.Incident, []byte(id)); err != nil {
			e.log.ErrorContext(ctx, "email: could not record the first mail of an incident; later mails start a new thread",
				"incident", req.Incident, "err", err)
		}
	}
	res := actions.Result{
		Note:   fmt.Sprintf("mailed %s", strings.Join(to, ", ")),
		Detail: map[string]any{"to": to, "message_id": strings.Trim(msg.GetGenHeader(gomail.HeaderMessageID)[0], "<>")},
	}
	if threaded {
		res.Detail["in_reply_to"] = root
	}
	return res, nil
}

// thread returns the Message-ID of the first mail about an incident; ""
// when there is none yet (or no incident).
func (e *Email) thread(ctx context.Context, incident string) (string, bool, error) {
	if incident == "" {
		return "", false, nil
	}
	v, ok, err := e.threads.Get(ctx, threadNS, incident)
	if err != nil {
		return "", false, actions.Retryable(fmt.Errorf("send email: read the thread of incident %s: %w", incident, err))
	}
	return string(v), ok && len(v) > 0, nil
}

func (e *Email) options() []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(e.cfg.port()),
		gomail.WithTLSConfig(e.tls),
		gomail.WithTimeout(orDefault(e.cfg.Timeout, 30*time.Second)),
	}
	if e.cfg.implicitTLS() {
		opts = append(opts, gomail.WithSSL())
	} else {
		switch e.cfg.policy() {
		case StartTLSMandatory:
			opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		case StartTLSOpportunistic:
			opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
		case StartTLSNone:
			opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		}
	}
	switch e.cfg.auth() {
	case AuthPlain:
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(e.cfg.Username), gomail.WithPassword(e.password))
	case AuthLogin:
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthLogin), gomail.WithUsername(e.cfg.Username), gomail.WithPassword(e.password))
	default:
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthNoAuth))
	}
	if e.cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(e.cfg.HELO))
	}
	return opts
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (e *Email) data(req actions.Request) TemplateData {
	a := req.Alert
	d := TemplateData{Incident: req.Incident, Target: req.Container, Steps: req.Steps, Alert: a}
	if req.Fold != nil {
		d.Fold = req.Fold.Summary()
	}
	if a.Rule != "" {
		d.HasAlert = true
		d.Rule, d.Priority, d.Output, d.Host, d.Time = a.Rule, a.Priority.String(), a.Output, a.Hostname, a.Time
		d.Container = a.Container()
		d.Fields = fieldsOf(a)
	}
	subject := req.Params.String("subject", "")
	if subject == "" {
		subject = "[riposte] " + d.Priority + " " + d.Rule
		if !d.HasAlert {
			subject = "[riposte] incident " + req.Incident
		}
		if n := d.Container.Name; n != "" {
			subject += " in " + n
		}
	}
	d.Subject = delivery.Truncate(strings.Join(strings.Fields(subject), " "), 250)
	return d
}

// messageID is stable per request key: <riposte.<hash>@<from domain>>.
func messageID(req actions.Request, from string) string {
	key := req.Key
	if key == "" {
		key = req.Incident + "|" + req.Alert.ID + "|" + fmt.Sprint(time.Now().UnixNano())
	}
	sum := sha256.Sum256([]byte(key))
	domain := "riposte.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	return "riposte." + hex.EncodeToString(sum[:12]) + "@" + domain
}

// classify: SMTP 4xx and network failures are retryable; 5xx, TLS and
// authentication refusals and missing STARTTLS are permanent.
func classify(err error) error {
	wrapped := fmt.Errorf("send email: %w", err)
	var se *gomail.SendError
	if errors.As(err, &se) {
		if se.IsTemp() {
			return actions.Retryable(wrapped)
		}
		return wrapped
	}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		if tp.Code >= 400 && tp.Code < 500 {
			return actions.Retryable(wrapped)
		}
		return wrapped
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || delivery.Canceled(err) {
		return actions.Retryable(wrapped)
	}
	return wrapped
}
