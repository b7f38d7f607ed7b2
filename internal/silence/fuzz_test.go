package silence_test

import (
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
)

// FuzzDecodeRequest: any body is refused with an error or yields a request
// whose checked silence the store accepts; nothing panics.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"matcher":{"rules":["Read sensitive file*"]},"duration":"1h","comment":"backup job"}`,
		`{"matcher":{"namespaces":["ops"],"when":"priority <= Warning"},"ends_at":"2026-01-01T14:00:00Z","scope":"all"}`,
		`{"matcher":{"images":["registry/*:1.?"],"priority":">=error","tags":["a"]},"starts_at":"2026-01-01T12:30:00Z","duration":"30m"}`,
		`{"matcher":{},"duration":"1h"}`, `{"matcher":{"when":"fields[\"x\"] matches \"(\""},"duration":"1h"}`,
		`{`, `null`, `[]`, `{"matcher":{"rules":["x"]},"duration":"1h"} x`,
	} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := silence.DecodeRequest(strings.NewReader(body))
		if err != nil {
			return
		}
		s, err := req.Silence(now, "op:fuzz")
		if err != nil {
			return
		}
		if _, err := store.CheckSilence(s); err != nil {
			t.Fatalf("a checked request makes a silence the store refuses: %v (%s)", err, body)
		}
		if _, err := silence.Compile(s.Matcher); err != nil {
			t.Fatalf("a checked request's matcher does not compile: %v", err)
		}
	})
}
