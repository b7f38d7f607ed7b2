package email_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/email"
	"github.com/riposte-sec/riposte/notifiers/email/smtptest"
)

const password = "s3cret-SMTP-passw0rd!"

func lookup(k string) (string, bool) {
	if k == "SMTP_PASSWORD" {
		return password, true
	}
	return "", false
}

func peer(t *testing.T, opts smtptest.Options) *smtptest.Server {
	t.Helper()
	s, err := smtptest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func config(t *testing.T, p *smtptest.Server) email.Config {
	t.Helper()
	ca, err := p.CAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return email.Config{
		Host: p.Host(), Port: p.Port(), CAFile: ca, From: "riposte <riposte@example.com>", To: []string{"soc@example.com"},
		Username: "riposte", PasswordEnv: "SMTP_PASSWORD", Timeout: 5 * time.Second, HELO: "riposte.test",
	}
}

func newEmail(t *testing.T, cfg email.Config) *email.Email {
	t.Helper()
	e, err := email.New(cfg, email.Deps{LookupEnv: lookup, Now: func() time.Time { return time.Date(2026, 11, 20, 9, 15, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func loadAlert(t *testing.T) alert.Alert {
	t.Helper()
	b, err := os.ReadFile("testdata/falco-shell-in-container.json")
	if err != nil {
		t.Fatal(err)
	}
	as, err := alert.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return as[0]
}

func request(a alert.Alert) actions.Request {
	return actions.Request{Action: email.ActionSend, Alert: a, Incident: "inc-1", Container: "3f9a1c2b7d4e", Key: "alert-1/contain-shell/2",
		Steps: []actions.Step{{Action: "container.snapshot", Status: "succeeded", Note: "snapshot taken", Actor: "playbook:contain-shell",
			Time: time.Date(2026, 11, 20, 9, 14, 4, 0, time.UTC)}}}
}

// parsed is a received mail, decoded.
type parsed struct {
	header mail.Header
	text   string
	html   string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	out := parsed{header: m.Header}
	r := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = part
		if part.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(part)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		ct, cparams, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if cparams["charset"] != "UTF-8" {
			t.Errorf("part %s charset %q", ct, cparams["charset"])
		}
		switch ct {
		case "text/plain":
			out.text = string(b)
		case "text/html":
			out.html = string(b)
		default:
			t.Errorf("unexpected part %s", ct)
		}
	}
	if out.text == "" || out.html == "" {
		t.Fatalf("want a text and an HTML part:\n%s", data)
	}
	return out
}

func TestSendWithSTARTTLSAndPlainAuth(t *testing.T) {
	p := peer(t, smtptest.Options{StartTLS: true, Users: map[string]string{"riposte": password}, RequireAuth: true})
	e := newEmail(t, config(t, p))
	a := loadAlert(t)
	a.OutputFields["proc.cmdline"] = `sh -c "<script>alert(1)</script>"`
	res, err := e.Run(t.Context(), request(a))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	mails := p.Mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails", len(mails))
	}
	m := mails[0]
	if !m.TLS || m.AuthUser != "riposte" || m.AuthMech != "PLAIN" || m.From != "riposte@example.com" || strings.Join(m.To, ",") != "soc@example.com" || m.Helo != "riposte.test" {
		t.Errorf("session: tls=%v auth=%s/%s from=%s to=%v helo=%s", m.TLS, m.AuthUser, m.AuthMech, m.From, m.To, m.Helo)
	}
	pm := parse(t, m.Data)
	h := pm.header
	for k, want := range map[string]string{
		"From":               `"riposte" <riposte@example.com>`,
		"To":                 "<soc@example.com>",
		"Subject":            "[riposte] Notice Terminal shell in container in payments-api",
		"X-Riposte-Incident": "inc-1",
		"Date":               "Fri, 20 Nov 2026 09:15:00 +0000",
		"Mime-Version":       "1.0",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	id := h.Get("Message-Id")
	if !strings.HasPrefix(id, "<riposte.") || !strings.HasSuffix(id, "@example.com>") || res.Detail["message_id"] != strings.Trim(id, "<>") {
		t.Errorf("Message-ID %q, result %v", id, res.Detail)
	}
	for _, want := range []string{
		"Notice: Terminal shell in container",
		"Container: payments-api (3f9a1c2b7d4e)",
		"Image:     staging/payments-api:1.42.0",
		"Host:      staging-node-3",
		"Time:      2026-11-20 09:14:03 UTC",
		`proc.cmdline: sh -c "<script>alert(1)</script>"`,
		"- 09:14:04 container.snapshot: succeeded (snapshot taken) by playbook:contain-shell",
	} {
		if !strings.Contains(pm.text, want) {
			t.Errorf("text part lacks %q:\n%s", want, pm.text)
		}
	}
	for _, want := range []string{
		"<h2>Notice: Terminal shell in container</h2>",
		"<tr><th align=\"left\">Container</th><td>payments-api (<code>3f9a1c2b7d4e</code>)</td></tr>",
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"<li>09:14:04 <b>container.snapshot</b>: succeeded (snapshot taken) by playbook:contain-shell</li>",
	} {
		if !strings.Contains(pm.html, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, pm.html)
		}
	}
	if strings.Contains(pm.html, "<script>") {
		t.Error("alert text reached the HTML unescaped")
	}

	// A retry of the same request carries the same Message-ID.
	if _, err := e.Run(t.Context(), request(a)); err != nil {
		t.Fatal(err)
	}
	if id2 := parse(t, p.Mails()[1].Data).header.Get("Message-Id"); id2 != id {
		t.Errorf("retried Message-ID %q, want %q", id2, id)
	}
}

func TestLoginAuthAndRecipientsParam(t *testing.T) {
	p := peer(t, smtptest.Options{StartTLS: true, Users: map[string]string{"riposte": password}, RequireAuth: true})
	cfg := config(t, p)
	cfg.Auth = email.AuthLogin
	e := newEmail(t, cfg)
	req := request(loadAlert(t))
	req.Params = actions.Params{"to": []any{"a@example.com", "b@example.com"}, "subject": "Shell in payments-api"}
	if _, err := e.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	m := p.Mails()[0]
	if m.AuthMech != "LOGIN" || !m.TLS || strings.Join(m.To, ",") != "a@example.com,b@example.com" {
		t.Errorf("mail %+v", m)
	}
	if s := parse(t, m.Data).header.Get("Subject"); s != "Shell in payments-api" {
		t.Errorf("subject %q", s)
	}
}

func TestImplicitTLS(t *testing.T) {
	p := peer(t, smtptest.Options{ImplicitTLS: true, Users: map[string]string{"riposte": password}, RequireAuth: true})
	cfg := config(t, p)
	cfg.ImplicitTLS = new(bool)
	*cfg.ImplicitTLS = true
	e := newEmail(t, cfg)
	if _, err := e.Run(t.Context(), request(loadAlert(t))); err != nil {
		t.Fatal(err)
	}
	if m := p.Mails()[0]; !m.TLS || m.AuthUser != "riposte" {
		t.Errorf("mail tls=%v auth=%q", m.TLS, m.AuthUser)
	}
}

func TestStartTLSPolicy(t *testing.T) {
	tests := []struct {
		name    string
		server  smtptest.Options
		policy  email.TLSPolicy
		wantTLS bool
		wantErr string
	}{
		{name: "mandatory, offered", server: smtptest.Options{StartTLS: true}, policy: email.StartTLSMandatory, wantTLS: true},
		{name: "mandatory, not offered", server: smtptest.Options{}, policy: email.StartTLSMandatory,
			wantErr: `send email: dial failed: STARTTLS mode set to: "TLSMandatory", but target host does not support STARTTLS`},
		{name: "opportunistic, offered", server: smtptest.Options{StartTLS: true}, policy: email.StartTLSOpportunistic, wantTLS: true},
		{name: "opportunistic, not offered", server: smtptest.Options{}, policy: email.StartTLSOpportunistic, wantTLS: false},
		{name: "none, offered", server: smtptest.Options{StartTLS: true}, policy: email.StartTLSNone, wantTLS: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := peer(t, tt.server)
			cfg := config(t, p)
			cfg.Username, cfg.PasswordEnv = "", ""
			cfg.StartTLS = tt.policy
			e := newEmail(t, cfg)
			_, err := e.Run(t.Context(), request(loadAlert(t)))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || actions.IsRetryable(err) {
					t.Fatalf("error %v, want permanent %q", err, tt.wantErr)
				}
				if len(p.Mails()) != 0 {
					t.Error("mail sent in clear under the mandatory policy")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m := p.Mails()[0]; m.TLS != tt.wantTLS {
				t.Errorf("TLS = %v, want %v", m.TLS, tt.wantTLS)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(*email.Config)
		fail      *smtptest.Failure
		retryable bool
		contains  string
	}{
		{name: "untrusted certificate", mutate: func(c *email.Config) { c.CAFile = "" }, contains: "certificate"},
		{name: "wrong password", mutate: func(c *email.Config) { c.PasswordEnv = "WRONG" }, contains: ""},
		{name: "temporary DATA failure", fail: &smtptest.Failure{Stage: "DATA", Code: 451, Message: "try again later"}, retryable: true, contains: "451"},
		{name: "permanent RCPT failure", fail: &smtptest.Failure{Stage: "RCPT", Code: 550, Message: "no such user"}, contains: "550"},
		{name: "temporary MAIL failure", fail: &smtptest.Failure{Stage: "MAIL", Code: 421, Message: "closing"}, retryable: true, contains: "421"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := peer(t, smtptest.Options{StartTLS: true, Users: map[string]string{"riposte": password}, RequireAuth: true})
			cfg := config(t, p)
			deps := email.Deps{LookupEnv: lookup}
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			if cfg.PasswordEnv == "WRONG" {
				cfg.PasswordEnv = "SMTP_PASSWORD"
				deps.LookupEnv = func(string) (string, bool) { return "not-the-password", true }
			}
			if tt.fail != nil {
				p.FailNext(*tt.fail)
			}
			e, err := email.New(cfg, deps)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Run(t.Context(), request(loadAlert(t)))
			if err == nil {
				t.Fatal("no error")
			}
			if actions.IsRetryable(err) != tt.retryable {
				t.Errorf("%v: retryable %v, want %v", err, actions.IsRetryable(err), tt.retryable)
			}
			if !strings.HasPrefix(err.Error(), "send email: ") || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q", err)
			}
			if len(p.Mails()) != 0 {
				t.Error("mail accepted")
			}
			if tt.name == "wrong password" && p.AuthFailures() != 1 {
				t.Errorf("auth failures %d", p.AuthFailures())
			}
		})
	}
	t.Run("server down", func(t *testing.T) {
		p := peer(t, smtptest.Options{StartTLS: true})
		cfg := config(t, p)
		cfg.Username, cfg.PasswordEnv = "", ""
		p.Close()
		// Not the closed peer's port: another test may bind it again at once.
		// Nothing listens on tcpmux (port 1), so the connection is refused.
		cfg.Host, cfg.Port = "127.0.0.1", 1
		e := newEmail(t, cfg)
		_, err := e.Run(t.Context(), request(loadAlert(t)))
		if !actions.IsRetryable(err) {
			t.Errorf("down: %v, want retryable", err)
		}
	})
	t.Run("no recipient", func(t *testing.T) {
		p := peer(t, smtptest.Options{StartTLS: true})
		cfg := config(t, p)
		cfg.Username, cfg.PasswordEnv, cfg.To = "", "", nil
		_, err := newEmail(t, cfg).Run(t.Context(), request(loadAlert(t)))
		if err == nil || err.Error() != "send email: no recipient: set to in the email config or in the action's with" {
			t.Errorf("no recipient: %v", err)
		}
	})
}

func TestCustomTemplates(t *testing.T) {
	p := peer(t, smtptest.Options{StartTLS: true})
	cfg := config(t, p)
	cfg.Username, cfg.PasswordEnv = "", ""
	dir := t.TempDir()
	cfg.TextTemplateFile = filepath.Join(dir, "body.txt")
	cfg.HTMLTemplateFile = filepath.Join(dir, "body.html")
	if err := os.WriteFile(cfg.TextTemplateFile, []byte("Rule {{.Rule}} on {{.Host}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.HTMLTemplateFile, []byte("<p>{{.Rule}}</p>"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEmail(t, cfg)
	if _, err := e.Run(t.Context(), request(loadAlert(t))); err != nil {
		t.Fatal(err)
	}
	pm := parse(t, p.Mails()[0].Data)
	if strings.TrimSpace(pm.text) != "Rule Terminal shell in container on staging-node-3" || pm.html != "<p>Terminal shell in container</p>" {
		t.Errorf("text %q html %q", pm.text, pm.html)
	}

	if err := os.WriteFile(cfg.TextTemplateFile, []byte("{{.Rule"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := email.New(cfg, email.Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), "email: text_template_file "+cfg.TextTemplateFile+": template: text:1: unclosed action") {
		t.Errorf("bad template: %v", err)
	}
	if err := os.WriteFile(cfg.TextTemplateFile, []byte("{{.NoSuchField}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	e = newEmail(t, cfg)
	if _, err := e.Run(t.Context(), request(loadAlert(t))); err == nil || actions.IsRetryable(err) || !strings.Contains(err.Error(), "render text body") {
		t.Errorf("template execution error: %v", err)
	}
}

func TestValidate(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		cfg  email.Config
		want string
	}{
		{"empty", email.Config{}, "email config: host: missing (the SMTP server)\nfrom: missing"},
		{"bad from and to", email.Config{Host: "smtp", From: "riposte", To: []string{"x@"}},
			"email config: from: \"riposte\" is not an address: mail: missing '@' or angle-addr\nto: \"x@\" is not an address: mail: missing '@' or angle-addr"},
		{"auth without password", email.Config{Host: "smtp", From: "r@x.io", Username: "r"}, "email config: auth: plain needs password_env or password_file"},
		{"auth in clear", email.Config{Host: "smtp", From: "r@x.io", Username: "r", PasswordEnv: "P", StartTLS: email.StartTLSNone},
			"email config: auth: plain would send the password in clear: use starttls: mandatory or implicit_tls: true"},
		{"implicit and opportunistic", email.Config{Host: "smtp", From: "r@x.io", ImplicitTLS: &yes, StartTLS: email.StartTLSOpportunistic},
			"email config: starttls: opportunistic does not apply with implicit_tls: true (the whole session is TLS)"},
		{"password twice", email.Config{Host: "smtp", From: "r@x.io", Username: "r", PasswordEnv: "P", PasswordFile: "/p"},
			"email config: smtp password: set password_env or password_file, not both"},
		{"bad policy", email.Config{Host: "smtp", From: "r@x.io", StartTLS: "sometimes"},
			`email config: starttls: want mandatory, opportunistic or none, got "sometimes"`},
		{"ok", email.Config{Host: "smtp", From: "riposte <r@x.io>", Username: "r", PasswordFile: "/run/secrets/p"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
	var p email.TLSPolicy
	if err := p.UnmarshalText([]byte("Opportunistic")); err != nil || p != email.StartTLSOpportunistic {
		t.Errorf("UnmarshalText: %v %q", err, p)
	}
	_, err := email.New(email.Config{Host: "smtp", From: "r@x.io", Username: "r", PasswordEnv: "UNSET_VAR"}, email.Deps{LookupEnv: lookup})
	if err == nil || err.Error() != "email: smtp password: environment variable UNSET_VAR (password_env) is not set" {
		t.Errorf("unset password variable: %v", err)
	}
}

// kv is a test KV shared by two notifiers, as the store is across a
// restart.
type kv struct{ m map[string][]byte }

func (k *kv) Get(_ context.Context, ns, key string) ([]byte, bool, error) {
	v, ok := k.m[ns+"/"+key]
	return v, ok, nil
}

func (k *kv) Put(_ context.Context, ns, key string, v []byte) error {
	k.m[ns+"/"+key] = v
	return nil
}

// TestLaterMailsReplyToTheFirst: the first mail of an incident starts the
// thread; a later one (a throttled update here, from a notifier built
// anew, as after a restart) replies to it and says how many alerts it
// stands for; another incident starts its own thread.
func TestLaterMailsReplyToTheFirst(t *testing.T) {
	p := peer(t, smtptest.Options{StartTLS: true, Users: map[string]string{"riposte": password}, RequireAuth: true})
	threads := &kv{m: map[string][]byte{}}
	build := func() *email.Email {
		e, err := email.New(config(t, p), email.Deps{LookupEnv: lookup, Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a := loadAlert(t)
	if _, err := build().Run(t.Context(), request(a)); err != nil {
		t.Fatal(err)
	}
	update := request(a)
	update.Key = "alert-38/contain-shell/2"
	update.Fold = &actions.Fold{Alerts: 37, Every: 5 * time.Minute}
	res, err := build().Run(t.Context(), update)
	if err != nil {
		t.Fatal(err)
	}
	other := request(a)
	other.Incident, other.Key = "inc-2", "alert-99/contain-shell/2"
	if _, err := build().Run(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	mails := p.Mails()
	if len(mails) != 3 {
		t.Fatalf("%d mails", len(mails))
	}
	first, second, third := parse(t, mails[0].Data), parse(t, mails[1].Data), parse(t, mails[2].Data)
	root := first.header.Get("Message-Id")
	if first.header.Get("In-Reply-To") != "" || third.header.Get("In-Reply-To") != "" {
		t.Errorf("a first mail replies: %q, %q", first.header.Get("In-Reply-To"), third.header.Get("In-Reply-To"))
	}
	h := second.header
	if h.Get("In-Reply-To") != root || h.Get("References") != root || h.Get("Subject") != "Re: "+first.header.Get("Subject") ||
		h.Get("Message-Id") == root || res.Detail["in_reply_to"] != strings.Trim(root, "<>") {
		t.Errorf("update headers %v (first %s), result %v", h, root, res.Detail)
	}
	if !strings.Contains(second.text, "+37 more in 5 min; the latest is below.") || !strings.Contains(second.html, "37 more in 5 min</b>") {
		t.Errorf("the update does not count:\n%s\n%s", second.text, second.html)
	}
	if strings.Contains(first.text, "more in") {
		t.Errorf("the first mail counts:\n%s", first.text)
	}
}
