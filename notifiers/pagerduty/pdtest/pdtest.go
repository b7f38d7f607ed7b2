// Package pdtest is a local PagerDuty Events API v2 for tests: an httptest
// server implementing POST /v2/enqueue as the Events API documents it. It
// checks the event like PagerDuty does (routing_key of 32 characters,
// event_action trigger/acknowledge/resolve, payload.summary ≤1024
// characters, payload.source, payload.severity critical/error/warning/info,
// ISO 8601 timestamp, dedup_key ≤255, custom_details an object, body ≤512 KB)
// and answers 202 {"status":"success","message":"Event processed",
// "dedup_key":…}, 400 {"status":"invalid event","message":"Event object is
// invalid","errors":[…]}, or a queued failure (429 with Retry-After, 5xx).
// It keeps alerts by dedup_key (triggered, acknowledged, resolved) so tests
// can check that a resolve closes what a trigger opened.
//
// A Peer is safe for concurrent use; Close stops it. It listens on 127.0.0.1.
package pdtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Event is one accepted event, decoded.
type Event struct {
	RoutingKey  string          `json:"routing_key"`
	EventAction string          `json:"event_action"`
	DedupKey    string          `json:"dedup_key"`
	Client      string          `json:"client"`
	Payload     *Payload        `json:"payload"`
	Raw         json.RawMessage `json:"-"`
}

// Payload is an event's payload.
type Payload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp"`
	Component     string         `json:"component"`
	Group         string         `json:"group"`
	Class         string         `json:"class"`
	CustomDetails map[string]any `json:"custom_details"`
}

// Alert is PagerDuty's view of one dedup_key.
type Alert struct {
	DedupKey string
	Status   string // triggered, acknowledged, resolved
	Triggers int
}

// Failure is an answer queued for the next request.
type Failure struct {
	Status     int
	RetryAfter int // seconds
}

// Peer is a local Events API.
type Peer struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   []Event
	alerts   map[string]*Alert
	failures []Failure
	requests int
}

// New starts a peer.
func New() *Peer {
	p := &Peer{alerts: map[string]*Alert{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/enqueue", p.enqueue)
	p.srv = httptest.NewServer(mux)
	return p
}

// URL is the base URL (config endpoint).
func (p *Peer) URL() string { return p.srv.URL }

// Close stops the peer.
func (p *Peer) Close() { p.srv.Close() }

// FailNext queues a failure for the next request.
func (p *Peer) FailNext(f Failure) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = append(p.failures, f)
}

// Events returns the accepted events, in order.
func (p *Peer) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// Requests counts every request, accepted or not.
func (p *Peer) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// Alert returns the alert of a dedup_key.
func (p *Peer) Alert(dedupKey string) (Alert, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.alerts[dedupKey]
	if !ok {
		return Alert{}, false
	}
	return *a, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func invalid(w http.ResponseWriter, errs ...string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": errs})
}

func (p *Peer) enqueue(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	var fail *Failure
	if len(p.failures) > 0 {
		fail = &p.failures[0]
		p.failures = p.failures[1:]
	}
	p.mu.Unlock()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if fail != nil {
		if fail.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(fail.RetryAfter))
		}
		if fail.Status == http.StatusTooManyRequests {
			writeJSON(w, fail.Status, map[string]any{"status": "throttle event", "message": "Requests for this service are arriving too quickly.  Please retry later."})
			return
		}
		http.Error(w, http.StatusText(fail.Status), fail.Status)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 512<<10+1))
	if err != nil {
		invalid(w, "could not read the request body")
		return
	}
	if len(body) > 512<<10 {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"status": "invalid event", "message": "Event object is too large"})
		return
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		invalid(w, "Could not parse JSON")
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		invalid(w, "Event object has fields of the wrong type")
		return
	}
	ev.Raw = body
	if errs := check(ev, raw); len(errs) > 0 {
		invalid(w, errs...)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.DedupKey == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		ev.DedupKey = hex.EncodeToString(b)
	}
	a := p.alerts[ev.DedupKey]
	switch ev.EventAction {
	case "trigger":
		if a == nil || a.Status == "resolved" {
			a = &Alert{DedupKey: ev.DedupKey}
			p.alerts[ev.DedupKey] = a
		}
		if a.Status != "acknowledged" {
			a.Status = "triggered"
		}
		a.Triggers++
	case "acknowledge":
		if a != nil && a.Status == "triggered" {
			a.Status = "acknowledged"
		}
	case "resolve":
		if a != nil {
			a.Status = "resolved"
		}
	}
	p.events = append(p.events, ev)
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
}

var severities = []string{"critical", "warning", "error", "info"}

func check(ev Event, raw map[string]json.RawMessage) []string {
	var errs []string
	switch {
	case ev.RoutingKey == "":
		errs = append(errs, "'routing_key' is missing or blank")
	case len(ev.RoutingKey) != 32:
		errs = append(errs, "Length of 'routing_key' is incorrect (should be 32 characters)")
	}
	switch ev.EventAction {
	case "trigger", "acknowledge", "resolve":
	case "":
		errs = append(errs, "'event_action' is missing or blank")
	default:
		errs = append(errs, "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
	}
	if utf8.RuneCountInString(ev.DedupKey) > 255 {
		errs = append(errs, "'dedup_key' is too long (must be at most 255 characters)")
	}
	if ev.EventAction != "trigger" {
		if ev.EventAction != "" && ev.DedupKey == "" {
			errs = append(errs, "'dedup_key' is missing or blank")
		}
		return errs
	}
	if ev.Payload == nil {
		return append(errs, "'payload' is missing or blank")
	}
	pl := ev.Payload
	switch {
	case pl.Summary == "":
		errs = append(errs, "'payload.summary' is missing or blank")
	case utf8.RuneCountInString(pl.Summary) > 1024:
		errs = append(errs, "'payload.summary' is too long (must be at most 1024 characters)")
	}
	if pl.Source == "" {
		errs = append(errs, "'payload.source' is missing or blank")
	}
	if !slices.Contains(severities, pl.Severity) {
		errs = append(errs, "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')")
	}
	if pl.Timestamp != "" {
		if _, err := time.Parse(time.RFC3339Nano, pl.Timestamp); err != nil {
			errs = append(errs, fmt.Sprintf("'payload.timestamp' is invalid (%q is not an ISO 8601 timestamp)", pl.Timestamp))
		}
	}
	var payload map[string]json.RawMessage
	if json.Unmarshal(raw["payload"], &payload) == nil {
		if cd, ok := payload["custom_details"]; ok && len(cd) > 0 && cd[0] != '{' && string(cd) != "null" {
			errs = append(errs, "'payload.custom_details' must be an object")
		}
	}
	return errs
}
