package assembly

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestActRefusesForgedActor: requested_by becomes the journal's actor, so
// a value that would forge a line (x\ny) or hide its text is refused with
// 400 naming the field, before anything runs (the app here has no engine:
// reaching it would panic).
func TestActRefusesForgedActor(t *testing.T) {
	a := &App{}
	tests := []struct {
		name, requestedBy, want string
	}{
		{"newline", "x\ny", "field requested_by: control or format character U+000A at byte 1"},
		{"carriage return", "jane\r2026-12-03 action.succeeded", "U+000D"},
		{"escape sequence", "\x1b[2Kroot", "U+001B"},
		{"line separator", "jane\u2028root", "U+2028"},
		{"bidi override", "jane\u202etoor", "U+202E"},
		{"too long", strings.Repeat("j", 65), "field requested_by: longer than 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"action": "container.pause", "container": "web", "requested_by": tt.requestedBy})
			w := httptest.NewRecorder()
			a.serveAct(w, httptest.NewRequest(http.MethodPost, "/v1/act", strings.NewReader(string(body))))
			var resp ActResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatalf("response %d is not JSON: %s", w.Code, w.Body)
			}
			if w.Code != http.StatusBadRequest || !strings.Contains(resp.Error, tt.want) {
				t.Errorf("status %d error %q, want 400 with %q", w.Code, resp.Error, tt.want)
			}
		})
	}
}

// TestCheckRequestedBy: invalid UTF-8 cannot arrive through JSON (the
// decoder replaces it) but can from other callers.
func TestCheckRequestedBy(t *testing.T) {
	if err := checkRequestedBy("jane\xff"); err == nil || err.Error() != "field requested_by: not valid UTF-8" {
		t.Errorf("invalid UTF-8: %v", err)
	}
	for _, s := range []string{"", "root", "jane.doe", "uid 1000", "José", "a-b_c@host"} {
		if err := checkRequestedBy(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
}

func FuzzDecodeActRequest(f *testing.F) {
	for _, s := range []string{
		`{"action":"container.pause","container":"web","requested_by":"jane"}`,
		`{"action":"container.kill","container":"3f9a1c2b7d4e","incident":"inc-1","with":{"signal":"KILL"},"dry_run":true,"requested_by":"root"}`,
		`{"action":"x","requested_by":"x\ny"}`,
		`{"unknown":1}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeActRequest(strings.NewReader(string(body)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode act request: ") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		if checkRequestedBy(req.RequestedBy) != nil {
			t.Fatalf("accepted requested_by %q", req.RequestedBy)
		}
	})
}
