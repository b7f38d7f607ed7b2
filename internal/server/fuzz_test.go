package server

import (
	"encoding/json"
	"testing"
)

// FuzzIntake: whatever the body, the intake answers 202 (with as many ids as
// alerts stored), 400 or 413, with a JSON body; it never panics and never
// stores alerts it did not acknowledge.
func FuzzIntake(f *testing.F) {
	f.Add([]byte(oneAlert))
	f.Add([]byte("[" + oneAlert + "]"))
	f.Add([]byte(oneAlert + "\n" + oneAlert))
	f.Add([]byte(`{"rule":"x"}`))
	f.Add([]byte(`[{"time":"2026-11-20T09:14:03Z","rule":"r","priority":"info","output_fields":null}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		inbox := &memInbox{}
		s, _, _ := newTestServer(t, inbox)
		w := do(s, "POST", "/v1/alerts", bearer(), string(body))
		var resp map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d, body not JSON: %q", w.Code, w.Body)
		}
		switch w.Code {
		case 202:
			var acc []Accepted
			if err := json.Unmarshal(resp["accepted"], &acc); err != nil || len(acc) == 0 {
				t.Fatalf("202 without ids: %s", w.Body)
			}
		case 400, 413:
			if len(inbox.got) != 0 {
				t.Fatalf("status %d but %d alerts stored", w.Code, len(inbox.got))
			}
		default:
			t.Fatalf("unexpected status %d: %s", w.Code, w.Body)
		}
	})
}
