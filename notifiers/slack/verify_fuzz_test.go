package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds the signature headers and body of a Slack request to
// the verifier: it never panics, and whatever it accepts carries the HMAC
// of its timestamp and body, within the window, once.
func FuzzVerify(f *testing.F) {
	const secret = "fuzz-signing-secret"
	now := time.Unix(1_764_756_000, 0)
	sign := func(ts, body string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("v0:" + ts + ":" + body))
		return "v0=" + hex.EncodeToString(m.Sum(nil))
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	body := "payload=%7B%7D"
	f.Add(ts, sign(ts, body), body)
	f.Add(ts, strings.ToUpper(sign(ts, body)), body)
	f.Add(ts, "v0=zz", body)
	f.Add("", "", "")
	f.Add("+"+ts, sign("+"+ts, body), body)
	f.Add("99999999999999999999", "v0=", body)
	f.Fuzz(func(t *testing.T, tsText, sig, body string) {
		s := &Slack{signing: secret, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler)}
		s.replays = &memoryReplays{now: s.now}
		h := http.Header{}
		h.Set("X-Slack-Request-Timestamp", tsText)
		h.Set("X-Slack-Signature", sig)
		err := s.verify(t.Context(), h, []byte(body))
		if err != nil {
			return
		}
		if !strings.EqualFold(sig, sign(h.Get("X-Slack-Request-Timestamp"), body)) {
			t.Fatalf("accepted signature %q for ts %q", sig, tsText)
		}
		if s.verify(t.Context(), h, []byte(body)) == nil {
			t.Fatal("accepted the same request twice")
		}
	})
}
