package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/jsonenc"
	"github.com/riposte-sec/riposte/internal/metrics"
)

// Signature headers for senders that sign instead of sending a token:
//
//	X-Riposte-Timestamp: <unix seconds>
//	X-Riposte-Signature: v1=<hex HMAC-SHA256(secret, "v1:" + timestamp + ":" + body)>
//
// The timestamp must be within SignatureWindow of the server's clock, so a
// captured request cannot be replayed later (a replay within the window
// carries the same alert ids and is journaled as a duplicate).
const (
	HeaderTimestamp = "X-Riposte-Timestamp"
	HeaderSignature = "X-Riposte-Signature"
	SignatureWindow = 5 * time.Minute
)

// Sign computes the X-Riposte-Signature value for a body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("v1:" + timestamp + ":"))
	mac.Write(body)
	return timestamp, "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Config is the HTTP server's configuration.
type Config struct {
	// Tokens accepted as "Authorization: Bearer <token>" (several, to
	// rotate) for the intake only: credentials of scope intake named
	// "intake", "intake-2", ….
	Tokens []string
	// Credentials are named tokens with scopes (see Scope); Keys().Set
	// replaces them, with Tokens and MetricsTokens, while serving.
	Credentials []Credential
	// HMACSecret, when set, accepts signed requests (see HeaderSignature).
	HMACSecret []byte
	// MaxBody caps an intake request body (413 above). Default 1 MiB.
	MaxBody int64
	// MaxInFlight bounds the bytes of intake bodies held at once (read,
	// decoded or being stored); a request that does not fit is answered
	// 503 with Retry-After at once, before its body is read. A request
	// counts its Content-Length, or MaxBody when it sends none. Default
	// 16 × MaxBody.
	MaxInFlight int64
	// ReadTimeout bounds reading a request, body included. Default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer once the body is read; the
	// store gets StoreTimeout of it, so an alert that was stored is
	// answered (202, or 503 when the store took too long: a retry is then
	// a duplicate). Defaults 30s and two thirds of WriteTimeout.
	WriteTimeout time.Duration
	StoreTimeout time.Duration
	// DrainTimeout bounds graceful shutdown. Default 10s.
	DrainTimeout time.Duration
	// TLS, when set, makes Serve answer TLS only (see TLSReloader.Config).
	TLS *tls.Config
	// MetricsTokens are read-only credentials named "metrics", ….
	// /metrics needs the read-only scope while some credential has
	// exactly that scope; without one it is open.
	MetricsTokens []string
	// SocketUsers are the OS users, besides root and the server's own
	// user, whose connections on a unix listener act as operators.
	SocketUsers []string
}

// Route is a handler behind a scope.
type Route struct {
	Pattern string // "POST /v1/act"
	Scope   Scope
	Handler http.Handler
}

// LegacyCredentials names the unnamed tokens of Tokens (scope intake) and
// MetricsTokens (scope read-only), followed by creds.
func LegacyCredentials(tokens, metricsTokens []string, creds []Credential) []Credential {
	var out []Credential
	name := func(base string, i int) string {
		if i == 0 {
			return base
		}
		return fmt.Sprintf("%s-%d", base, i+1)
	}
	for i, t := range tokens {
		out = append(out, Credential{Name: name("intake", i), Scope: ScopeIntake, Token: t})
	}
	for i, t := range metricsTokens {
		out = append(out, Credential{Name: name("metrics", i), Scope: ScopeReadOnly, Token: t})
	}
	return append(out, creds...)
}

// Accepted is what the inbox did with one alert.
type Accepted struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// Conflict: the id was stored before with other content; nothing was
	// stored (the request is answered 409).
	Conflict bool `json:"conflict,omitempty"`
}

// Inbox stores alerts durably. Accept returns only once they are.
type Inbox interface {
	Accept(ctx context.Context, alerts []alert.Alert) ([]Accepted, error)
}

// Deps are the server's collaborators. Inbox is required.
type Deps struct {
	Inbox   Inbox
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Gatherer serves /metrics; nil: /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Ready reports whether the server should take traffic (store open,
	// engine running); nil: always ready.
	Ready func(ctx context.Context) error
	// Routes are extra handlers by pattern ("POST /v1/slack/interactions");
	// they authenticate their own requests.
	Routes map[string]http.Handler
	// Scoped are extra handlers the server authenticates: each request
	// reaches its handler with an Identity (IdentityFrom) of the scope.
	Scoped []Route
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Server is the HTTP front.
type Server struct {
	cfg  Config
	deps Deps
	mux  *http.ServeMux
	keys *Keyring

	// Store failures: when the last one was (readyz is not ready for
	// storeFailHold after it), and the log lines they were allowed.
	mu             sync.Mutex
	storeFailedAt  time.Time
	storeLoggedAt  time.Time
	storeFailQuiet int // failures not logged since storeLoggedAt

	// inFlight is the intake bytes held now (see Config.MaxInFlight).
	inFlight int64
	// received counts the webhook's new alerts (looked up once, not per
	// request).
	received prometheus.Counter
}

// storeFailHold is how long after a failed store write /readyz reports
// not ready, and how often such failures are logged at most.
const storeFailHold = 5 * time.Second

// New builds a server.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Inbox == nil {
		return nil, errors.New("new server: no inbox")
	}
	keys, err := NewKeyring(LegacyCredentials(cfg.Tokens, cfg.MetricsTokens, cfg.Credentials))
	if err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	if !keys.Has(ScopeIntake) && len(cfg.HMACSecret) == 0 {
		return nil, errors.New("new server: no intake token and no HMAC secret: every intake request must be authenticated")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 16 * cfg.MaxBody
	}
	if cfg.MaxInFlight < cfg.MaxBody {
		return nil, fmt.Errorf("new server: the in-flight budget (%d bytes) is smaller than one body (%d bytes)", cfg.MaxInFlight, cfg.MaxBody)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.StoreTimeout <= 0 || cfg.StoreTimeout >= cfg.WriteTimeout {
		cfg.StoreTimeout = cfg.WriteTimeout * 2 / 3
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = metrics.New(nil)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	keys.SetSocketUsers(cfg.SocketUsers)
	s := &Server{cfg: cfg, deps: deps, mux: http.NewServeMux(), keys: keys,
		received: deps.Metrics.AlertsReceived.WithLabelValues("webhook")}
	s.mux.HandleFunc("/v1/alerts", s.intake)
	s.mux.HandleFunc("/{$}", s.intake)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if deps.Gatherer != nil {
		h := promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{})
		protected := s.Require(ScopeReadOnly, h)
		s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			// Decided per request: a reload may add the first read-only
			// credential.
			if s.keys.Has(ScopeReadOnly) {
				protected.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	for pattern, h := range deps.Routes {
		s.mux.Handle(pattern, h)
	}
	for _, rt := range deps.Scoped {
		if _, err := ParseScope(string(rt.Scope)); err != nil {
			return nil, fmt.Errorf("new server: route %s: %w", rt.Pattern, err)
		}
		s.mux.Handle(rt.Pattern, s.Require(rt.Scope, rt.Handler))
	}
	return s, nil
}

// Keys are the credentials in force; Set them again to rotate.
func (s *Server) Keys() *Keyring { return s.keys }

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve answers on ln until ctx ends, then drains in-flight requests. On a
// unix listener TLS is not used and each connection's peer credentials
// (SO_PEERCRED) identify its OS user: an allowed peer is an operator (see
// Config.SocketUsers). Serve may run on several listeners at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.ReadTimeout,
		// Counted from the end of the request's headers; the intake moves
		// it to after the body once read (see intake).
		WriteTimeout: s.cfg.ReadTimeout + s.cfg.WriteTimeout,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(s.deps.Logger.Handler(), slog.LevelWarn),
	}
	if _, unix := ln.(*net.UnixListener); unix {
		hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			p, err := s.socketPeer(c)
			if err != nil {
				// Not identified: every scoped route answers 401.
				s.deps.Logger.Warn("socket connection without peer credentials", "err", err)
				return ctx
			}
			return context.WithValue(ctx, peerKey{}, p)
		}
	} else if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	if err := hs.Shutdown(drain); err != nil {
		return fmt.Errorf("drain http: %w", err)
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	failed := !s.storeFailedAt.IsZero() && s.deps.Now().Sub(s.storeFailedAt) < storeFailHold
	s.mu.Unlock()
	if failed {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": "the store refused a write in the last " + storeFailHold.String()})
		return
	}
	if s.deps.Ready != nil {
		if err := s.deps.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) reject(w http.ResponseWriter, status int, reason, msg string) {
	s.deps.Metrics.AlertsRejected.WithLabelValues(reason).Inc()
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="riposte"`)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) intake(w http.ResponseWriter, r *http.Request) {
	start := s.deps.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reject(w, http.StatusMethodNotAllowed, metrics.RejectMethod, "method "+r.Method+" not allowed: POST alerts")
		return
	}
	bearer, hasBearer := bearerToken(r)
	signed := r.Header.Get(HeaderSignature) != ""
	var id Identity
	switch {
	case hasBearer:
		var ok bool
		id, ok = s.keys.Authenticate(bearer)
		if !ok {
			s.reject(w, http.StatusUnauthorized, metrics.RejectUnauthorized, "invalid bearer token")
			return
		}
		if !id.Scope.allows(ScopeIntake) {
			s.reject(w, http.StatusForbidden, metrics.RejectUnauthorized, fmt.Sprintf("credential %s has scope %s: posting alerts needs intake", id.Name, id.Scope))
			return
		}
	case signed && len(s.cfg.HMACSecret) > 0:
		// checked once the body is read
	default:
		s.reject(w, http.StatusUnauthorized, metrics.RejectUnauthorized, "missing credentials: send Authorization: Bearer <token> or an "+HeaderSignature+" header")
		return
	}
	if msg := checkContentType(r.Header.Get("Content-Type")); msg != "" {
		s.reject(w, http.StatusUnsupportedMediaType, metrics.RejectContentType, msg)
		return
	}
	if r.ContentLength > s.cfg.MaxBody {
		s.reject(w, http.StatusRequestEntityTooLarge, metrics.RejectTooLarge, fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBody))
		return
	}
	cost := s.cfg.MaxBody
	if r.ContentLength >= 0 {
		cost = r.ContentLength
	}
	if !s.reserve(cost) {
		// Refused before reading: the body costs nothing, and the sender
		// retries (Falcosidekick and Falco's http_output retry on 5xx).
		w.Header().Set("Retry-After", "1")
		s.reject(w, http.StatusServiceUnavailable, metrics.RejectBusy, "busy: too many alerts in flight, retry")
		return
	}
	defer s.release(cost)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reject(w, http.StatusRequestEntityTooLarge, metrics.RejectTooLarge, fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBody))
			return
		}
		s.reject(w, http.StatusBadRequest, metrics.RejectMalformed, "read body: "+err.Error())
		return
	}
	if !hasBearer {
		if msg := s.checkSignature(r, body); msg != "" {
			s.reject(w, http.StatusUnauthorized, metrics.RejectUnauthorized, msg)
			return
		}
	}
	// The answer's deadline follows the body: a slow sender does not eat
	// the time the store needs, so what is stored is answered.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	alerts, err := alert.Decode(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, metrics.RejectMalformed, err.Error())
		return
	}
	body = nil // the alerts hold what is needed
	if hasBearer && id.Scope == ScopeAgent {
		// An agent stamps its node on every alert it sends: another
		// hostname is a credential used for a node it is not bound to,
		// refused rather than rewritten so the misconfiguration shows
		// (the agent keeps the alerts and sends them again).
		for _, a := range alerts {
			if err := id.SpeaksFor(a.Hostname); err != nil {
				s.reject(w, http.StatusForbidden, metrics.RejectUnauthorized, fmt.Sprintf("alert %s: hostname: %v", clip(a.ID, 128), err))
				return
			}
		}
	}
	if !hasBearer || id.Scope != ScopeAgent {
		// What the kernel did about an exec is journaled from these
		// fields (action.enforced); only riposte's own detector, in a node
		// agent, sends them.
		sender := "a signed webhook"
		if hasBearer {
			sender = fmt.Sprintf("credential %s (scope %s)", id.Name, id.Scope)
		}
		for _, a := range alerts {
			if f, ok := a.EnforcementField(); ok {
				s.reject(w, http.StatusBadRequest, metrics.RejectMalformed, fmt.Sprintf("alert %s: output field %s is set only by riposte's own detector (an agent credential), not by %s", clip(a.ID, 128), f, sender))
				return
			}
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	accepted, err := s.deps.Inbox.Accept(ctx, alerts)
	if err != nil {
		// The store's error is for the log, not for the sender.
		s.storeFailed(len(alerts), err)
		w.Header().Set("Retry-After", "1")
		s.reject(w, http.StatusServiceUnavailable, metrics.RejectUnavailable, "alerts not stored, retry")
		return
	}
	s.storeOK()
	dups := 0
	var conflicts []string
	for _, a := range accepted {
		if a.Duplicate {
			dups++
		}
		if a.Conflict {
			conflicts = append(conflicts, a.ID)
		}
	}
	s.received.Add(float64(len(accepted) - dups))
	s.deps.Metrics.AlertsDuplicate.Add(float64(dups))
	s.deps.Metrics.AcceptSeconds.Observe(s.deps.Now().Sub(start).Seconds())
	if len(conflicts) > 0 {
		// The others in the request were stored (see accepted); a retry
		// of the whole request is safe.
		s.deps.Metrics.AlertsRejected.WithLabelValues(metrics.RejectConflict).Add(float64(len(conflicts)))
		s.deps.Logger.Warn("alert uuid reused with different content; refused", "ids", clip(strings.Join(conflicts, ","), 512), "remote", r.RemoteAddr)
		writeJSON(w, http.StatusConflict, map[string]any{
			"error":    fmt.Sprintf("uuid %s already received with different content: not stored", clip(conflicts[0], 128)),
			"accepted": accepted,
		})
		return
	}
	writeAccepted(w, accepted)
}

// writeAccepted answers 202 with {"accepted": accepted}, the bytes
// writeJSON writes for it, without its reflection: every intake request
// ends here.
func writeAccepted(w http.ResponseWriter, accepted []Accepted) {
	buf := make([]byte, 0, 16+32*len(accepted))
	buf = append(buf, `{"accepted":`...)
	buf, _ = jsonenc.AppendList(buf, accepted, appendAccepted)
	buf = append(buf, "}\n"...)
	writeJSONHeader(w, http.StatusAccepted)
	_, _ = w.Write(buf)
}

// appendAccepted appends a as json.Marshal encodes it.
func appendAccepted(buf []byte, a Accepted) ([]byte, bool) {
	buf = append(buf, `{"id":`...)
	buf = jsonenc.AppendString(buf, a.ID)
	if a.Duplicate {
		buf = append(buf, `,"duplicate":true`...)
	}
	if a.Conflict {
		buf = append(buf, `,"conflict":true`...)
	}
	return append(buf, '}'), true
}

// storeFailed logs a refused write at most once per storeFailHold, with
// the count of those not logged, and makes /readyz not ready.
func (s *Server) storeFailed(alerts int, err error) {
	now := s.deps.Now()
	s.mu.Lock()
	s.storeFailedAt = now
	quiet := s.storeFailQuiet
	log := s.storeLoggedAt.IsZero() || now.Sub(s.storeLoggedAt) >= storeFailHold
	if log {
		s.storeLoggedAt, s.storeFailQuiet = now, 0
	} else {
		s.storeFailQuiet++
	}
	s.mu.Unlock()
	if log {
		s.deps.Logger.Error("store alerts", "alerts", alerts, "err", err, "failures_not_logged", quiet)
	}
}

// reserve takes n bytes of the in-flight budget, or reports that they
// are not there. It never waits: a full server answers at once.
func (s *Server) reserve(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight+n > s.cfg.MaxInFlight {
		return false
	}
	s.inFlight += n
	s.deps.Metrics.IntakeInFlight.Set(float64(s.inFlight))
	return true
}

func (s *Server) release(n int64) {
	s.mu.Lock()
	s.inFlight -= n
	s.deps.Metrics.IntakeInFlight.Set(float64(s.inFlight))
	s.mu.Unlock()
}

// storeOK clears the failure state once a write succeeded.
func (s *Server) storeOK() {
	s.mu.Lock()
	s.storeFailedAt = time.Time{}
	s.mu.Unlock()
}

func (s *Server) checkSignature(r *http.Request, body []byte) string {
	ts := r.Header.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "missing or malformed " + HeaderTimestamp + " header (unix seconds)"
	}
	sent := time.Unix(sec, 0)
	if d := s.deps.Now().Sub(sent); d > SignatureWindow || d < -SignatureWindow {
		return HeaderTimestamp + " is more than 5 minutes from the server's clock"
	}
	_, want := Sign(s.cfg.HMACSecret, sent, body)
	if !hmac.Equal([]byte(r.Header.Get(HeaderSignature)), []byte(want)) {
		return "invalid " + HeaderSignature
	}
	return ""
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true // present but not a bearer token: fails the check
	}
	return strings.TrimSpace(token), true
}

// checkContentType accepts what Falco (application/json) and NDJSON senders
// use; "" means fine.
func checkContentType(ct string) string {
	if ct == "" {
		return "missing Content-Type: send application/json or application/x-ndjson"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "malformed Content-Type " + strconv.Quote(clip(ct, maxEcho))
	}
	switch mt {
	case "application/json", "application/x-ndjson", "application/ndjson", "application/jsonl":
		return ""
	}
	return "unsupported Content-Type " + strconv.Quote(clip(mt, maxEcho)) + ": send application/json or application/x-ndjson"
}

// maxEcho bounds what of a request is echoed in an error.
const maxEcho = 64

// clip returns s cut to at most n bytes (on a rune boundary), marked "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONHeader(w, status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONHeader sends the header of a JSON answer with status.
func writeJSONHeader(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }
