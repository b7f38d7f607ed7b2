package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riposte-sec/riposte/internal/actions"
)

// RetryAfterError is a retryable failure for which the server said how long
// to wait. The outbox finds it with
//
//	var ra interface{ RetryAfter() time.Duration }
//	if errors.As(err, &ra) { delay = max(delay, ra.RetryAfter()) }
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

// Unwrap returns the underlying error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter is how long the server asked the client to wait.
func (e *RetryAfterError) RetryAfter() time.Duration { return e.After }

// WithRetryAfter marks err retryable and, when after > 0, attaches the delay.
func WithRetryAfter(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	if after > 0 {
		err = &RetryAfterError{Err: err, After: after}
	}
	return actions.Retryable(err)
}

// RetryableStatus reports whether an HTTP status is worth retrying: 408, 429
// and every 5xx. Every other 4xx is permanent: the same request will fail the
// same way.
func RetryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent or unreadable, and caps the delay at
// one hour so that a hostile or broken server cannot park the outbox.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, 3600)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// StatusError is a non-2xx answer from an HTTP peer.
type StatusError struct {
	// What was attempted: "post webhook \"soc\"".
	Op     string
	Status int
	// Body is the start of the response body, for the journal.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// FromStatus classifies a non-2xx answer: retryable (with Retry-After when
// the header is present) or permanent.
func FromStatus(op string, resp *http.Response, body []byte, now time.Time) error {
	err := &StatusError{Op: op, Status: resp.StatusCode, Body: Snippet(body, 200)}
	if !RetryableStatus(resp.StatusCode) {
		return err
	}
	return WithRetryAfter(err, ParseRetryAfter(resp.Header.Get("Retry-After"), now))
}

// Transport classifies an error from http.Client.Do or another network call.
// The URL the client puts in its *url.Error is dropped: for Slack incoming
// webhooks and many generic webhooks the URL is the credential. Network
// failures, timeouts and a cancelled context are retryable: the notification
// was not delivered and nothing was decided.
func Transport(op string, err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return actions.Retryable(fmt.Errorf("%s: %w", op, err))
}

// Canceled reports whether err comes from a cancelled or expired context.
func Canceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Snippet returns at most n bytes of b as one line of text, cut at a rune
// boundary, with "..." when cut.
func Snippet(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Truncate cuts s to at most n runes, the last being "…" when cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	runes := 0
	for i := range s {
		if runes == n-1 {
			return s[:i] + "…"
		}
		runes++
	}
	return s
}
