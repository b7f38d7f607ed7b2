package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"7", 7 * time.Second}, {"999999", time.Hour}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRetryableStatus(t *testing.T) {
	for code, want := range map[int]bool{200: false, 301: false, 400: false, 401: false, 404: false, 408: true, 409: false, 429: true, 500: true, 502: true, 503: true} {
		if got := RetryableStatus(code); got != want {
			t.Errorf("RetryableStatus(%d) = %v", code, got)
		}
	}
}

func TestWithRetryAfter(t *testing.T) {
	err := WithRetryAfter(errors.New("slow down"), 3*time.Second)
	var ra interface{ RetryAfter() time.Duration }
	if !actions.IsRetryable(err) || !errors.As(err, &ra) || ra.RetryAfter() != 3*time.Second || err.Error() != "slow down (retry after 3s)" {
		t.Errorf("WithRetryAfter: %v", err)
	}
	err = WithRetryAfter(errors.New("busy"), 0)
	if !actions.IsRetryable(err) || errors.As(err, &ra) {
		t.Errorf("no delay: %v", err)
	}
	if WithRetryAfter(nil, time.Second) != nil {
		t.Error("nil error wrapped")
	}
}

func TestTransportDropsURL(t *testing.T) {
	inner := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	err := Transport("post webhook \"soc\"", &url.Error{Op: "Post", URL: "https://hooks.example/T0/B0/sEcReT", Err: inner})
	if strings.Contains(err.Error(), "sEcReT") || !actions.IsRetryable(err) || !errors.Is(err, inner) {
		t.Errorf("Transport: %v", err)
	}
	if got := Transport("x", fmt.Errorf("wrap: %w", context.DeadlineExceeded)); !Canceled(got) || !actions.IsRetryable(got) {
		t.Errorf("deadline: %v", got)
	}
}

func TestTruncateAndSnippet(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"}, {"abcd", 3, "ab…"}, {"ééé", 2, "é…"}, {"abc", 0, ""}, {"", 5, ""},
	}
	for _, tt := range tests {
		if got := Truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
	if got := Snippet([]byte("a\n  b\tc"), 10); got != "a b c" {
		t.Errorf("Snippet = %q", got)
	}
	if got := Snippet([]byte("ééééé"), 3); got != "é..." {
		t.Errorf("Snippet cut = %q", got)
	}
}
