package webhook_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/webhook"
)

const hmacSecret = "whsec-riposte-test-0123456789"

type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook receiver that verifies the signature as a real one
// would and answers with the queued statuses (then 202).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []received
	statuses []int
	headers  []map[string]string
	secret   []byte
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{secret: []byte(secret)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.secret) > 0 {
			if err := webhook.Verify(req.Header.Get(webhook.SignatureHeader), body, r.secret, 5*time.Minute, time.Now()); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
		}
		status := http.StatusAccepted
		if len(r.statuses) > 0 {
			status = r.statuses[0]
			for k, v := range r.headers[0] {
				w.Header().Set(k, v)
			}
			r.statuses, r.headers = r.statuses[1:], r.headers[1:]
		}
		if status/100 == 2 {
			r.got = append(r.got, received{req.Header.Clone(), body})
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) answer(status int, header map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
	r.headers = append(r.headers, header)
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func lookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
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

func request(t *testing.T, endpoint string) actions.Request {
	req := actions.Request{Action: webhook.ActionPost, Alert: loadAlert(t), Incident: "inc-1", Container: "3f9a1c2b7d4e", Actor: "playbook:contain-shell",
		Key: "6f1c2a9e/contain-shell/3", Params: actions.Params{},
		Steps: []actions.Step{{Action: "container.pause", Status: "succeeded", Note: "paused", Time: time.Date(2026, 11, 20, 9, 14, 5, 0, time.UTC)}}}
	if endpoint != "" {
		req.Params["endpoint"] = endpoint
	}
	return req
}

func TestPostSignedJSON(t *testing.T) {
	r := newReceiver(t, hmacSecret)
	w, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{
		Name: "soar", URLEnv: "SOAR_URL", SecretEnv: "SOAR_SECRET", BearerTokenEnv: "SOAR_TOKEN", Headers: map[string]string{"X-Tenant": "blue"},
	}}}, webhook.Deps{LookupEnv: lookup(map[string]string{"SOAR_URL": r.URL + "/hooks/riposte?token=abc123def456", "SOAR_SECRET": hmacSecret, "SOAR_TOKEN": "bearer-token-0123456789"})})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Run(t.Context(), request(t, "soar"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Note != "posted to webhook soar (HTTP 202)" || res.Detail["status"] != 202 {
		t.Errorf("result %+v", res)
	}
	got := r.received()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	h := got[0].header
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Idempotency-Key": "6f1c2a9e/contain-shell/3", "User-Agent": "riposte-webhook/1",
		"Authorization": "Bearer bearer-token-0123456789", "X-Tenant": "blue",
	} {
		if h.Get(k) != want {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), want)
		}
	}
	if !strings.HasPrefix(h.Get(webhook.SignatureHeader), "t=") || !strings.Contains(h.Get(webhook.SignatureHeader), ",v1=") {
		t.Errorf("signature header %q", h.Get(webhook.SignatureHeader))
	}
	var body struct {
		Version   int             `json:"version"`
		Incident  string          `json:"incident"`
		Key       string          `json:"key"`
		Action    string          `json:"action"`
		Actor     string          `json:"actor"`
		Container string          `json:"container"`
		Alert     json.RawMessage `json:"alert"`
		Steps     []actions.Step  `json:"steps"`
	}
	dec := json.NewDecoder(strings.NewReader(string(got[0].body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %s: %v", got[0].body, err)
	}
	if body.Version != 1 || body.Incident != "inc-1" || body.Action != "webhook.post" || body.Actor != "playbook:contain-shell" || body.Container != "3f9a1c2b7d4e" ||
		len(body.Steps) != 1 || body.Steps[0].Action != "container.pause" || body.Steps[0].Note != "paused" {
		t.Errorf("body %+v", body)
	}
	// The alert travels in Falco's shape: a receiver decodes it as one.
	as, err := alert.Decode(body.Alert)
	if err != nil || as[0].ID != "6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41" || as[0].Field("proc.cmdline") != "sh -i" || as[0].Priority != alert.PriorityNotice {
		t.Errorf("alert %s: %v", body.Alert, err)
	}
}

func TestSignAndVerify(t *testing.T) {
	at := time.Unix(1763629200, 0)
	body := []byte(`{"version":1}`)
	h := webhook.Sign([]byte("k"), at, body)
	// Computed independently: printf '1763629200.{"version":1}' | openssl dgst -sha256 -hmac k
	if want := "t=1763629200,v1=adc7b12bcb735edde18e0dede3114938eb34047aee30b4a23cfd13a90beb6399"; h != want {
		t.Errorf("Sign = %s, want %s", h, want)
	}
	tests := []struct {
		name   string
		header string
		body   []byte
		secret string
		now    time.Time
		want   string
	}{
		{"good", h, body, "k", at.Add(time.Minute), ""},
		{"tampered body", h, []byte(`{"version":2}`), "k", at, "verify webhook signature: signature does not match"},
		{"wrong secret", h, body, "other", at, "verify webhook signature: signature does not match"},
		{"too old", h, body, "k", at.Add(6 * time.Minute), "verify webhook signature: timestamp 6m0s away from now (tolerance 5m0s)"},
		{"no v1", "t=1763629200", body, "k", at, "verify webhook signature: t or v1 missing"},
		{"garbage", "hello", body, "k", at, "verify webhook signature: malformed header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(tt.header, tt.body, []byte(tt.secret), 5*time.Minute, tt.now)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Verify = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusClassification(t *testing.T) {
	tests := []struct {
		status     int
		header     map[string]string
		retryable  bool
		retryAfter time.Duration
		msg        string
	}{
		{status: 200}, {status: 204},
		{status: 400, msg: `post webhook "soc": HTTP 400 Bad Request: Bad Request`},
		{status: 401, msg: `post webhook "soc": HTTP 401 Unauthorized: Unauthorized`},
		{status: 404, msg: `post webhook "soc": HTTP 404 Not Found: Not Found`},
		{status: 301, header: map[string]string{"Location": "http://127.0.0.1:1/elsewhere"}, msg: `post webhook "soc": HTTP 301 redirect not followed (configure the final URL)`},
		{status: 408, retryable: true, msg: `post webhook "soc": HTTP 408 Request Timeout: Request Timeout`},
		{status: 429, header: map[string]string{"Retry-After": "12"}, retryable: true, retryAfter: 12 * time.Second,
			msg: `post webhook "soc": HTTP 429 Too Many Requests: Too Many Requests (retry after 12s)`},
		{status: 500, retryable: true, msg: `post webhook "soc": HTTP 500 Internal Server Error: Internal Server Error`},
		{status: 503, header: map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}, retryable: true, retryAfter: 89 * time.Second},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			r := newReceiver(t, "")
			r.answer(tt.status, tt.header)
			w, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{Name: "soc", URL: r.URL}}}, webhook.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Run(t.Context(), request(t, ""))
			if tt.status/100 == 2 {
				if err != nil {
					t.Fatalf("%d: %v", tt.status, err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("error %q, want %q", err, tt.msg)
			}
			if actions.IsRetryable(err) != tt.retryable {
				t.Errorf("retryable %v, want %v", actions.IsRetryable(err), tt.retryable)
			}
			var ra interface{ RetryAfter() time.Duration }
			hasRA := errors.As(err, &ra)
			if hasRA != (tt.retryAfter > 0) || (hasRA && (ra.RetryAfter() < tt.retryAfter || ra.RetryAfter() > tt.retryAfter+2*time.Second)) {
				t.Errorf("retry after: %v", err)
			}
		})
	}
	t.Run("receiver down", func(t *testing.T) {
		r := newReceiver(t, "")
		url := r.URL + "/in?api_key=topsecretkey42"
		r.Close()
		w, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{Name: "soc", URLFile: writeFile(t, url+"\n")}}}, webhook.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Run(t.Context(), request(t, "soc"))
		if !actions.IsRetryable(err) || strings.Contains(err.Error(), "topsecretkey42") || !strings.HasPrefix(err.Error(), `post webhook "soc": `) {
			t.Errorf("down: %v", err)
		}
	})
	t.Run("receiver too slow", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
		defer slow.Close()
		w, err := webhook.New(webhook.Config{Timeout: 50 * time.Millisecond, Endpoints: []webhook.Endpoint{{Name: "soc", URL: slow.URL}}}, webhook.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Run(t.Context(), request(t, "")); !actions.IsRetryable(err) {
			t.Errorf("timeout: %v, want retryable", err)
		}
	})
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := t.TempDir() + "/url"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEndpointSelection(t *testing.T) {
	a, b := newReceiver(t, ""), newReceiver(t, "")
	w, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{Name: "default", URL: a.URL}, {Name: "soar", URL: b.URL}}}, webhook.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(t.Context(), request(t, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(t.Context(), request(t, "soar")); err != nil {
		t.Fatal(err)
	}
	if len(a.received()) != 1 || len(b.received()) != 1 {
		t.Errorf("deliveries: default %d, soar %d", len(a.received()), len(b.received()))
	}
	_, err = w.Run(t.Context(), request(t, "siem"))
	if err == nil || actions.IsRetryable(err) || err.Error() != `post webhook: no endpoint "siem" (configured: default, soar)` {
		t.Errorf("unknown endpoint: %v", err)
	}
	if got := strings.Join(w.Endpoints(), ","); got != "default,soar" {
		t.Errorf("Endpoints %s", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  webhook.Config
		want string
	}{
		{"none", webhook.Config{}, "webhook config: endpoints: none configured"},
		{"no url", webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a"}}}, "webhook config: endpoints[0] (a): set exactly one of url, url_env and url_file"},
		{"two urls", webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a", URL: "https://x", URLEnv: "X"}}}, "webhook config: endpoints[0] (a): set exactly one of url, url_env and url_file"},
		{"bad url", webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a", URL: "ftp://x/secret"}}}, "webhook config: endpoints[0] (a): url: want an absolute http(s) URL"},
		{"duplicate and bad names", webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a", URL: "https://x"}, {Name: "a", URL: "https://y"}, {Name: "B C", URL: "https://z"}, {URL: "https://w"}}},
			"webhook config: endpoints[1] (a): name: used twice\nendpoints[2] (B C): name: want lowercase letters, digits, - and _\nendpoints[3]: name: missing"},
		{"secret twice", webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a", URL: "https://x", SecretEnv: "S", SecretFile: "/s"}}},
			`webhook config: endpoints[0] (a): webhook "a" signing secret: set secret_env or secret_file, not both`},
		{"reserved header", webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a", URL: "https://x", Headers: map[string]string{"authorization": "x"}}}},
			"webhook config: endpoints[0] (a): headers: Authorization is set by riposte"},
		{"ok", webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a", URLEnv: "A", SecretFile: "/s"}}}, ""},
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
	_, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{Name: "a", URLEnv: "HOOK_URL"}}}, webhook.Deps{LookupEnv: lookup(map[string]string{"HOOK_URL": "not a url with secret"})})
	if err == nil || err.Error() != `webhook: webhook "a" URL from HOOK_URL: want an absolute http(s) URL` {
		t.Errorf("bad URL from env: %v", err)
	}
}

// TestCheckParams: serve asks the notifier about each playbook's literal
// endpoint before any alert arrives.
func TestCheckParams(t *testing.T) {
	two, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{Name: "default", URL: "http://127.0.0.1:9/a"}, {Name: "soar", URL: "http://127.0.0.1:9/b"}}}, webhook.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	noDefault, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{Name: "soar", URL: "http://127.0.0.1:9/b"}, {Name: "siem", URL: "http://127.0.0.1:9/c"}}}, webhook.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		w      *webhook.Webhook
		action string
		with   actions.Params
		want   string
	}{
		{"named, configured", two, webhook.ActionPost, actions.Params{"endpoint": "soar"}, ""},
		{"unnamed, default exists", two, webhook.ActionPost, actions.Params{}, ""},
		{"named, unknown", two, webhook.ActionPost, actions.Params{"endpoint": "siem"}, `with.endpoint: no webhook endpoint "siem" in the config (configured: default, soar)`},
		{"unnamed, no default", noDefault, webhook.ActionPost, actions.Params{}, "no endpoint named and none is called default: set with.endpoint (one of soar, siem)"},
		{"not a name", two, webhook.ActionPost, actions.Params{"endpoint": 3}, "with.endpoint: want an endpoint name, got 3"},
		{"another action", two, "slack.notify", actions.Params{"endpoint": "nope"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.w.CheckParams(tt.action, tt.with); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("CheckParams = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPostFoldedUpdate: a throttled update says in update how many alerts
// it stands for; a plain post has no update.
func TestPostFoldedUpdate(t *testing.T) {
	r := newReceiver(t, "")
	w, err := webhook.New(webhook.Config{Endpoints: []webhook.Endpoint{{Name: "default", URL: r.URL}}}, webhook.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	plain := request(t, "")
	update := request(t, "")
	update.Key = "7a2d3b0f/contain-shell/3"
	update.Fold = &actions.Fold{Alerts: 37, Every: 5 * time.Minute}
	for _, req := range []actions.Request{plain, update} {
		if _, err := w.Run(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	got := r.received()
	if len(got) != 2 {
		t.Fatalf("%d deliveries", len(got))
	}
	var first, second webhook.Body
	if err := json.Unmarshal(got[0].body, &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got[1].body, &second); err != nil {
		t.Fatal(err)
	}
	if first.Update != nil || second.Update == nil || *second.Update != (webhook.Update{Alerts: 37, Summary: "+37 more in 5 min"}) ||
		got[1].header.Get("Idempotency-Key") != "7a2d3b0f/contain-shell/3" {
		t.Errorf("updates %+v, %+v; idempotency key %q", first.Update, second.Update, got[1].header.Get("Idempotency-Key"))
	}
}
