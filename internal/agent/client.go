package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Replicas sends requests to the replicas' HTTP API, trying them in turn:
// a replica that cannot be reached or answers 5xx is skipped for the next
// one, starting with the one that answered last. Safe for concurrent use.
type Replicas struct {
	urls  []string
	token func() (string, error)
	http  *http.Client

	mu   sync.Mutex
	good int // index of the replica that answered last
}

// NewReplicas returns a client of the replicas at urls (http:// or
// https://, no path), authenticated with the bearer token that token
// returns (read on each request, so that a rotated token file takes effect).
func NewReplicas(urls []string, token func() (string, error), client *http.Client) (*Replicas, error) {
	if len(urls) == 0 {
		return nil, errors.New("no replica: give at least one replica URL")
	}
	var clean []string
	for _, u := range urls {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("replica URL %q: want http://HOST:PORT or https://HOST:PORT", u)
		}
		clean = append(clean, u)
	}
	if client == nil {
		client = &http.Client{}
	}
	return &Replicas{urls: clean, token: token, http: client}, nil
}

// Unavailable is the error of a request no replica answered (or every one
// answered 5xx). RetryAfter is the longest Retry-After a replica asked for.
type Unavailable struct {
	RetryAfter time.Duration
	Err        error
}

func (u *Unavailable) Error() string { return "no replica answered: " + u.Err.Error() }
func (u *Unavailable) Unwrap() error { return u.Err }

// Response is a replica's answer below 500.
type Response struct {
	Status int
	Body   []byte
	From   string // the replica's URL
}

// maxResponse bounds a replica's answer the agent reads.
const maxResponse = 8 << 20

// Post sends body (JSON) to path on the replicas in turn until one answers
// below 500. timeout bounds each try (0: the context's deadline only).
func (r *Replicas) Post(ctx context.Context, path string, body []byte, timeout time.Duration) (Response, error) {
	token, err := r.token()
	if err != nil {
		return Response{}, fmt.Errorf("read agent token: %w", err)
	}
	r.mu.Lock()
	first := r.good
	r.mu.Unlock()
	var errs []error
	var retryAfter time.Duration
	for k := range r.urls {
		i := (first + k) % len(r.urls)
		resp, ra, err := r.try(ctx, r.urls[i], path, body, token, timeout)
		if err == nil {
			r.mu.Lock()
			r.good = i
			r.mu.Unlock()
			return resp, nil
		}
		retryAfter = max(retryAfter, ra)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return Response{}, &Unavailable{RetryAfter: retryAfter, Err: errors.Join(errs...)}
}

func (r *Replicas) try(ctx context.Context, base, path string, body []byte, token string, timeout time.Duration) (Response, time.Duration, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return Response{}, 0, fmt.Errorf("post %s%s: %w", base, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		// The URL's error text names the replica; it holds no token.
		return Response{}, 0, fmt.Errorf("post %s%s: %w", base, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return Response{}, 0, fmt.Errorf("post %s%s: read answer: %w", base, path, err)
	}
	if resp.StatusCode >= 500 {
		return Response{}, parseRetryAfter(resp.Header.Get("Retry-After")),
			fmt.Errorf("post %s%s: %s: %s", base, path, resp.Status, snippet(b))
	}
	return Response{Status: resp.StatusCode, Body: b, From: base}, 0, nil
}

// parseRetryAfter reads a Retry-After in seconds (dates are not used by
// riposte); 0 when absent or not a number of seconds, at most a minute.
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Minute)
}

// snippet is the start of an answer's body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
