package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// unixClient returns a real Docker client talking to the unix socket sock.
func unixClient(t *testing.T, sock string) *client.Client {
	t.Helper()
	cli, err := NewClient(Config{Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func allActions() []string {
	var out []string
	for _, s := range Specs() {
		out = append(out, s.Name)
	}
	return out
}

// A daemon that is not there: the socket path exists in a fresh directory
// but nothing listens. Every action must fail fast with a retryable error
// that says the daemon is unreachable — without a running dockerd.
func TestDaemonUnreachableIsRetryable(t *testing.T) {
	for _, daemon := range []struct {
		name string
		sock func(t *testing.T) string
	}{
		{"no socket", func(t *testing.T) string { return filepath.Join(t.TempDir(), "docker.sock") }},
		{"stale socket of a stopped daemon", staleSocket},
	} {
		t.Run(daemon.name, func(t *testing.T) { testUnreachable(t, daemon.sock(t)) })
	}
}

// staleSocket leaves a unix socket file that nothing listens on any more, as
// a dockerd that died does: connecting gives ECONNREFUSED.
func staleSocket(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket file gone: %v", err)
	}
	return sock
}

func testUnreachable(t *testing.T, sock string) {
	r, err := New(Config{DataDir: t.TempDir(), Timeouts: TimeoutConfig{API: 5 * time.Second}}, Deps{Docker: unixClient(t, sock)})
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range allActions() {
		t.Run(action, func(t *testing.T) {
			start := time.Now()
			_, err := r.Run(context.Background(), actions.Request{Action: action, Container: "web"})
			if err == nil {
				t.Fatal("want an error")
			}
			if !actions.IsRetryable(err) {
				t.Errorf("error %q is not retryable", err)
			}
			for _, want := range []string{"container web", "docker daemon unreachable", sock} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if errors.Is(err, actions.ErrNotFound) || errors.Is(err, actions.ErrProtected) {
				t.Errorf("error %q wraps the wrong sentinel", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s to notice", d)
			}
		})
	}
	t.Run("Protected", func(t *testing.T) {
		_, _, err := r.Protected(context.Background(), "web")
		if !actions.IsRetryable(err) {
			t.Errorf("Protected: error %v is not retryable", err)
		}
	})
}

// fakeDaemon answers every container request with one status, over a real
// unix socket, to check how answers are classified.
func fakeDaemon(t *testing.T, status int, message string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		if strings.HasSuffix(req.URL.Path, "/_ping") {
			fmt.Fprint(w, "OK")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"message":%q}`, message)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestDaemonAnswersClassified(t *testing.T) {
	tests := []struct {
		status    int
		message   string
		retryable bool
		notFound  bool
	}{
		{http.StatusInternalServerError, "containerd: connection reset", true, false},
		{http.StatusServiceUnavailable, "shutting down", true, false},
		{http.StatusTooManyRequests, "slow down", true, false},
		{http.StatusNotFound, "No such container: web", false, true},
		{http.StatusConflict, "conflict", false, false},
		{http.StatusBadRequest, "bad parameter", false, false},
		{http.StatusForbidden, "authorization plugin denied", false, false},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			r, err := New(Config{DataDir: t.TempDir()}, Deps{Docker: unixClient(t, fakeDaemon(t, tc.status, tc.message))})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Run(context.Background(), actions.Request{Action: "container.pause", Container: "web"})
			if err == nil {
				t.Fatal("want an error")
			}
			if got := actions.IsRetryable(err); got != tc.retryable {
				t.Errorf("%q: retryable %v, want %v", err, got, tc.retryable)
			}
			if got := errors.Is(err, actions.ErrNotFound); got != tc.notFound {
				t.Errorf("%q: not found %v, want %v", err, got, tc.notFound)
			}
			if !strings.HasPrefix(err.Error(), "pause container web") {
				t.Errorf("%q does not start with the action and the reference", err)
			}
		})
	}
}

// Bad references never reach the daemon (the client here has none: a call
// would fail with "unreachable", not with the expected message).
func TestBadReference(t *testing.T) {
	r, err := New(Config{DataDir: t.TempDir()}, Deps{Docker: unixClient(t, filepath.Join(t.TempDir(), "none.sock"))})
	if err != nil {
		t.Fatal(err)
	}
	hostAlert := alert.Alert{OutputFields: map[string]any{"container.id": "host"}}
	tests := []struct {
		name string
		req  actions.Request
		want string
	}{
		{"path traversal", actions.Request{Container: "../../images/create"}, `invalid container reference "../../images/create"`},
		{"query", actions.Request{Container: "web?force=1"}, "invalid container reference"},
		{"space", actions.Request{Container: "web 1"}, "invalid container reference"},
		{"nothing", actions.Request{}, "no container given, and the alert names none"},
		{"host alert", actions.Request{Alert: hostAlert}, "the alert is about the host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Action = "container.kill"
			_, err := r.Run(context.Background(), tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "kill container") {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if actions.IsRetryable(err) {
				t.Errorf("%q is retryable", err)
			}
		})
	}
	if _, err := r.Run(context.Background(), actions.Request{Action: "container.explode", Container: "web"}); err == nil ||
		!strings.Contains(err.Error(), `unknown action "container.explode"`) {
		t.Errorf("unknown action: got %v", err)
	}
}

func TestNewNeedsClientAndConfig(t *testing.T) {
	if _, err := New(Config{DataDir: t.TempDir()}, Deps{}); err == nil || !strings.Contains(err.Error(), "no Docker client") {
		t.Errorf("no client: got %v", err)
	}
	cli := unixClient(t, filepath.Join(t.TempDir(), "none.sock"))
	if _, err := New(Config{}, Deps{Docker: cli}); err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Errorf("no data dir: got %v", err)
	}
}

// A daemon that accepts the connection and never answers: the per-call
// timeout fires and the error is retryable; a caller that cancels gets a
// plain error.
func TestDaemonSilent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var held []net.Conn // hold them open, say nothing
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	r, err := New(Config{DataDir: t.TempDir(), Timeouts: TimeoutConfig{API: 300 * time.Millisecond}}, Deps{Docker: unixClient(t, sock)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), actions.Request{Action: "container.pause", Container: "web"})
	if !actions.IsRetryable(err) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("per-call timeout: got %v, want a retryable error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = r.Run(ctx, actions.Request{Action: "container.pause", Container: "web"})
	if err == nil || actions.IsRetryable(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled by the caller: got %v, want a permanent error wrapping context.Canceled", err)
	}
}
