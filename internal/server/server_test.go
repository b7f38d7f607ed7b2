package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/metrics"
)

const token = "test-token-0123456789"

var secret = []byte("hmac-secret-for-tests")

const oneAlert = `{"uuid":"a-1","time":"2026-11-20T09:14:03Z","rule":"Terminal shell in container","priority":"Notice","output":"x","output_fields":{"container.id":"3f9a1c2b7d4e"}}`

// memInbox records what was accepted; ids seen before are duplicates.
type memInbox struct {
	mu   sync.Mutex
	seen map[string]bool
	got  []alert.Alert
	err  error
}

func (m *memInbox) Accept(_ context.Context, alerts []alert.Alert) ([]Accepted, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	out := make([]Accepted, len(alerts))
	for i, a := range alerts {
		out[i] = Accepted{ID: a.ID, Duplicate: m.seen[a.ID]}
		if !m.seen[a.ID] {
			m.seen[a.ID] = true
			m.got = append(m.got, a)
		}
	}
	return out, nil
}

var clock = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T, inbox *memInbox) (*Server, *metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	s, err := New(Config{Tokens: []string{token}, HMACSecret: secret, MaxBody: 4096},
		Deps{Inbox: inbox, Metrics: m, Gatherer: reg, Now: func() time.Time { return clock },
			Ready: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return s, m, reg
}

func do(s *Server, method, path string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

func bearer(extra ...string) map[string]string {
	h := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

func signed(body string, at time.Time, sec []byte) map[string]string {
	ts, sig := Sign(sec, at, []byte(body))
	return map[string]string{"Content-Type": "application/json", HeaderTimestamp: ts, HeaderSignature: sig}
}

func TestIntake(t *testing.T) {
	big := `[` + strings.Repeat(oneAlert+",", 60) + oneAlert + `]`
	tests := []struct {
		name    string
		method  string
		path    string
		hdr     map[string]string
		body    string
		status  int
		errText string
		reason  string
	}{
		{"bearer ok", "POST", "/v1/alerts", bearer(), oneAlert, 202, "", ""},
		{"root path for falco", "POST", "/", bearer(), oneAlert, 202, "", ""},
		{"ndjson", "POST", "/v1/alerts", bearer("Content-Type", "application/x-ndjson"), oneAlert + "\n" + strings.Replace(oneAlert, "a-1", "a-2", 1), 202, "", ""},
		{"json with charset", "POST", "/v1/alerts", bearer("Content-Type", "application/json; charset=utf-8"), oneAlert, 202, "", ""},
		{"hmac ok", "POST", "/v1/alerts", signed(oneAlert, clock, secret), oneAlert, 202, "", ""},
		{"hmac enforcement field", "POST", "/v1/alerts", signed(enforcedAlert, clock, secret), enforcedAlert, 400, "riposte.enforce.", metrics.RejectMalformed},
		{"bearer enforcement field", "POST", "/v1/alerts", bearer(), enforcedAlert, 400, "not by credential", metrics.RejectMalformed},
		{"no credentials", "POST", "/v1/alerts", map[string]string{"Content-Type": "application/json"}, oneAlert, 401, "missing credentials", metrics.RejectUnauthorized},
		{"wrong token", "POST", "/v1/alerts", bearer("Authorization", "Bearer wrong-token-0123456789"), oneAlert, 401, "invalid bearer token", metrics.RejectUnauthorized},
		{"basic auth", "POST", "/v1/alerts", bearer("Authorization", "Basic dXNlcjpwYXNz"), oneAlert, 401, "invalid bearer token", metrics.RejectUnauthorized},
		{"hmac wrong secret", "POST", "/v1/alerts", signed(oneAlert, clock, []byte("other")), oneAlert, 401, "invalid X-Riposte-Signature", metrics.RejectUnauthorized},
		{"hmac stale", "POST", "/v1/alerts", signed(oneAlert, clock.Add(-6*time.Minute), secret), oneAlert, 401, "more than 5 minutes", metrics.RejectUnauthorized},
		{"hmac body changed", "POST", "/v1/alerts", signed(oneAlert, clock, secret), strings.Replace(oneAlert, "Notice", "Debug", 1), 401, "invalid X-Riposte-Signature", metrics.RejectUnauthorized},
		{"too large", "POST", "/v1/alerts", bearer(), big, 413, "body larger than 4096 bytes", metrics.RejectTooLarge},
		{"form content type", "POST", "/v1/alerts", bearer("Content-Type", "application/x-www-form-urlencoded"), oneAlert, 415, `unsupported Content-Type "application/x-www-form-urlencoded"`, metrics.RejectContentType},
		{"no content type", "POST", "/v1/alerts", bearer("Content-Type", ""), oneAlert, 415, "missing Content-Type", metrics.RejectContentType},
		{"malformed names field", "POST", "/v1/alerts", bearer(), `{"time":"2026-11-20T09:14:03Z","rule":"r","priority":"Loud"}`, 400, `field priority: unknown priority: "Loud"`, metrics.RejectMalformed},
		{"not json", "POST", "/v1/alerts", bearer(), `hello`, 400, "invalid JSON", metrics.RejectMalformed},
		{"get", "GET", "/v1/alerts", bearer(), "", 405, "method GET not allowed", metrics.RejectMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inbox := &memInbox{}
			s, m, _ := newTestServer(t, inbox)
			w := do(s, tt.method, tt.path, tt.hdr, tt.body)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			var resp map[string]json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatalf("response is not JSON: %s", w.Body)
			}
			if tt.status == 202 {
				var acc []Accepted
				if err := json.Unmarshal(resp["accepted"], &acc); err != nil || len(acc) == 0 || len(acc) != len(inbox.got) {
					t.Fatalf("accepted %s, inbox has %d", resp["accepted"], len(inbox.got))
				}
				for i, a := range acc {
					if a.ID != inbox.got[i].ID {
						t.Errorf("answered id %s, stored %s", a.ID, inbox.got[i].ID)
					}
				}
				return
			}
			if len(inbox.got) != 0 {
				t.Errorf("rejected request stored %d alerts", len(inbox.got))
			}
			var msg string
			_ = json.Unmarshal(resp["error"], &msg)
			if !strings.Contains(msg, tt.errText) {
				t.Errorf("error %q lacks %q", msg, tt.errText)
			}
			if got := testutil.ToFloat64(m.AlertsRejected.WithLabelValues(tt.reason)); got != 1 {
				t.Errorf("rejected{reason=%s} = %v, want 1", tt.reason, got)
			}
			if tt.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestIntakeDuplicatesAndStoreFailure(t *testing.T) {
	inbox := &memInbox{}
	s, m, _ := newTestServer(t, inbox)
	for i := 0; i < 2; i++ {
		if w := do(s, "POST", "/v1/alerts", bearer(), oneAlert); w.Code != 202 {
			t.Fatalf("post %d: %d %s", i, w.Code, w.Body)
		}
	}
	if len(inbox.got) != 1 || testutil.ToFloat64(m.AlertsDuplicate) != 1 || testutil.ToFloat64(m.AlertsReceived.WithLabelValues("webhook")) != 1 {
		t.Errorf("stored %d, duplicates %v", len(inbox.got), testutil.ToFloat64(m.AlertsDuplicate))
	}
	inbox.err = errors.New("disk full")
	w := do(s, "POST", "/v1/alerts", bearer(), strings.Replace(oneAlert, "a-1", "a-9", 1))
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "retry") {
		t.Errorf("store failure: %d %s", w.Code, w.Body)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	s, _, _ := newTestServer(t, &memInbox{})
	if w := do(s, "GET", "/healthz", nil, ""); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	if w := do(s, "GET", "/readyz", nil, ""); w.Code != 200 {
		t.Errorf("readyz %d", w.Code)
	}
	do(s, "POST", "/v1/alerts", bearer(), oneAlert)
	w := do(s, "GET", "/metrics", nil, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `riposte_alerts_received_total{source="webhook"} 1`) {
		t.Errorf("metrics %d:\n%s", w.Code, w.Body)
	}
	notReady, err := New(Config{Tokens: []string{token}}, Deps{Inbox: &memInbox{}, Ready: func(context.Context) error { return errors.New("store closed") }})
	if err != nil {
		t.Fatal(err)
	}
	if w := do(notReady, "GET", "/readyz", nil, ""); w.Code != 503 || !strings.Contains(w.Body.String(), "store closed") {
		t.Errorf("readyz when not ready: %d %s", w.Code, w.Body)
	}
}

func TestNewRefusesUnauthenticated(t *testing.T) {
	if _, err := New(Config{}, Deps{Inbox: &memInbox{}}); err == nil || !strings.Contains(err.Error(), "must be authenticated") {
		t.Errorf("New without credentials: %v", err)
	}
	if _, err := New(Config{Tokens: []string{"short"}}, Deps{Inbox: &memInbox{}}); err == nil {
		t.Error("short token accepted")
	}
}

func TestServeDrains(t *testing.T) {
	inbox := &memInbox{}
	s, _, _ := newTestServer(t, inbox)
	ts := httptest.NewUnstartedServer(nil)
	ln := ts.Listener
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/alerts", bytes.NewReader([]byte(oneAlert)))
	for k, v := range bearer() {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// TestWriteAccepted: the 202 answer is what writeJSON writes for
// {"accepted": …}, whatever the ids and flags.
func TestWriteAccepted(t *testing.T) {
	for name, acc := range map[string][]Accepted{
		"nil":    nil,
		"empty":  {},
		"one":    {{ID: "a-1"}},
		"flags":  {{ID: "a-1", Duplicate: true}, {ID: "a-2", Duplicate: true, Conflict: true}, {ID: "a-3"}},
		"tricky": {{ID: `<script>"&"</script>`}, {ID: "\u2028\xff\x01"}},
	} {
		t.Run(name, func(t *testing.T) {
			want := httptest.NewRecorder()
			writeJSON(want, http.StatusAccepted, map[string]any{"accepted": acc})
			got := httptest.NewRecorder()
			writeAccepted(got, acc)
			if got.Code != want.Code || got.Body.String() != want.Body.String() || fmt.Sprint(got.Header()) != fmt.Sprint(want.Header()) {
				t.Fatalf("writeAccepted: %d %v %q; writeJSON: %d %v %q", got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
		})
	}
}
