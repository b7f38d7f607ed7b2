package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/metrics"
)

// gateInbox holds every Accept until open is closed, telling entered
// about each one.
type gateInbox struct {
	entered chan struct{}
	open    chan struct{}
	memInbox
}

func (g *gateInbox) Accept(ctx context.Context, alerts []alert.Alert) ([]Accepted, error) {
	g.entered <- struct{}{}
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.memInbox.Accept(ctx, alerts)
}

// serve runs s on a loopback listener until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

func post(addr, body string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/alerts", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// padded is oneAlert with id, n bytes long.
func padded(id string, n int) string {
	a := strings.Replace(oneAlert, `"a-1"`, fmt.Sprintf("%q", id), 1)
	return strings.Replace(a, `"output":"x"`, `"output":"`+strings.Repeat("x", n-len(a)+1)+`"`, 1)
}

// TestIntakeBudget: bodies held at once are bounded; a request beyond the
// budget is answered 503 with Retry-After before its body is read, and
// counted; once the held ones are answered, intake flows again.
func TestIntakeBudget(t *testing.T) {
	inbox := &gateInbox{entered: make(chan struct{}, 4), open: make(chan struct{})}
	m := metrics.New(nil)
	s, err := New(Config{Tokens: []string{token}, MaxBody: 4096, MaxInFlight: 8192}, Deps{Inbox: inbox, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := post(addr, padded(fmt.Sprintf("held-%d", i), 4000))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	<-inbox.entered
	<-inbox.entered // both hold their 4000 bytes in the store
	if got := promtestutil.ToFloat64(m.IntakeInFlight); got != 8000 {
		t.Errorf("riposte_intake_inflight_bytes = %v while two 4000-byte bodies are held, want 8000", got)
	}
	resp, err := post(addr, padded("over", 1000))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("beyond the budget: status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := promtestutil.ToFloat64(m.AlertsRejected.WithLabelValues(metrics.RejectBusy)); n != 1 {
		t.Errorf("busy rejections counted %v, want 1", n)
	}
	close(inbox.open)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusAccepted {
			t.Errorf("held request: %d, want 202", c)
		}
	}
	resp, err = post(addr, padded("after", 1000))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after the budget freed: %d, want 202", resp.StatusCode)
	}
	if s.inFlight != 0 || promtestutil.ToFloat64(m.IntakeInFlight) != 0 {
		t.Errorf("%d bytes still counted in flight (gauge %v)", s.inFlight, promtestutil.ToFloat64(m.IntakeInFlight))
	}
}

// TestStoredAlertIsAnswered: a store slower than the write timeout does
// not leave the sender without an answer (before, the connection was
// cut while the alert was stored): the store gets part of the timeout and
// the sender hears 503, so it retries (a duplicate, answered 202).
func TestStoredAlertIsAnswered(t *testing.T) {
	inbox := &gateInbox{entered: make(chan struct{}, 1), open: make(chan struct{})}
	// The store's share ends long before the answer's deadline, so that a
	// loaded machine still answers in time.
	s, err := New(Config{Tokens: []string{token}, ReadTimeout: time.Second, WriteTimeout: 3 * time.Second, StoreTimeout: 200 * time.Millisecond}, Deps{Inbox: inbox})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	resp, err := post(addr, oneAlert)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, want 503 with Retry-After", resp.StatusCode)
	}
}

// TestIntakeFlood is the probe that drove the server to 3.6 GB: 100
// senders at once, each with a 1 MiB alert whose output_fields is an
// array of 500,000 numbers. Each is answered (400 naming the field, or 503
// when the budget is spent), and the heap stays within a bound that the
// decoded arrays alone (~57 MB each) would break many times over.
func TestIntakeFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("short: the flood allocates ~100 MB")
	}
	var nums bytes.Buffer
	nums.WriteString(`{"uuid":"flood","time":"2026-11-20T09:14:03Z","rule":"r","priority":"Notice","output_fields":{"n":[`)
	for nums.Len() < 1<<20-16 {
		nums.WriteString("1,")
	}
	nums.WriteString("1]}}")
	body := nums.Bytes()[:nums.Len()]
	if len(body) > 1<<20 {
		t.Fatalf("body %d bytes", len(body))
	}
	s, err := New(Config{Tokens: []string{token}}, Deps{Inbox: &memInbox{}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	const senders = 100
	var wg sync.WaitGroup
	var bad, busy, other atomic.Int64
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/alerts", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("sender %d got no answer: %v", i, err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusBadRequest:
				bad.Add(1)
			case http.StatusServiceUnavailable:
				busy.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("%d senders: %d answered 400, %d answered 503; heap grew by at most %.1f MB", senders, bad.Load(), busy.Load(), float64(grew)/1e6)
	if bad.Load()+busy.Load() != senders || other.Load() != 0 {
		t.Errorf("answers: 400 %d, 503 %d, other %d", bad.Load(), busy.Load(), other.Load())
	}
	const bound = 256 << 20
	if grew > bound {
		t.Errorf("heap grew by %d bytes, bound %d", grew, bound)
	}
}
