package pdtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestEnqueueContract(t *testing.T) {
	p := New()
	defer p.Close()
	key := strings.Repeat("k", 32)
	tests := []struct {
		name   string
		body   string
		status int
		errs   []string
	}{
		{"trigger", `{"routing_key":"` + key + `","event_action":"trigger","dedup_key":"d1","payload":{"summary":"s","source":"h","severity":"critical","timestamp":"2026-11-20T09:14:03Z","custom_details":{"a":1}}}`, 202, nil},
		{"not JSON", `{`, 400, []string{"Could not parse JSON"}},
		{"no routing key", `{"event_action":"resolve","dedup_key":"d1"}`, 400, []string{"'routing_key' is missing or blank"}},
		{"short routing key", `{"routing_key":"abc","event_action":"resolve","dedup_key":"d1"}`, 400, []string{"Length of 'routing_key' is incorrect (should be 32 characters)"}},
		{"bad action", `{"routing_key":"` + key + `","event_action":"explode","dedup_key":"d1"}`, 400,
			[]string{"'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"}},
		{"resolve without dedup_key", `{"routing_key":"` + key + `","event_action":"resolve"}`, 400, []string{"'dedup_key' is missing or blank"}},
		{"trigger without payload", `{"routing_key":"` + key + `","event_action":"trigger"}`, 400, []string{"'payload' is missing or blank"}},
		{"bad payload", `{"routing_key":"` + key + `","event_action":"trigger","payload":{"summary":"` + strings.Repeat("x", 1025) + `","severity":"fatal","timestamp":"yesterday"}}`, 400,
			[]string{"'payload.summary' is too long (must be at most 1024 characters)", "'payload.source' is missing or blank",
				"'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')",
				`'payload.timestamp' is invalid ("yesterday" is not an ISO 8601 timestamp)`}},
		{"resolve", `{"routing_key":"` + key + `","event_action":"resolve","dedup_key":"d1"}`, 202, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(p.URL()+"/v2/enqueue", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var raw map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&raw)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%v), want %d", resp.StatusCode, raw, tt.status)
			}
			if tt.status == 202 {
				if raw["status"] != "success" || raw["message"] != "Event processed" || raw["dedup_key"] != "d1" {
					t.Errorf("answer %v", raw)
				}
				return
			}
			got, _ := json.Marshal(raw["errors"])
			want, _ := json.Marshal(tt.errs)
			if raw["status"] != "invalid event" || raw["message"] != "Event object is invalid" || string(got) != string(want) {
				t.Errorf("answer %v, want errors %s", raw, want)
			}
		})
	}
	if a, ok := p.Alert("d1"); !ok || a.Status != "resolved" || a.Triggers != 1 {
		t.Errorf("alert %+v", a)
	}
	if n := len(p.Events()); n != 2 {
		t.Errorf("%d accepted events, want 2", n)
	}
}
