package testutil

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(f func(tb testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	tests := []struct {
		name string
		cond func() bool
		want string
	}{
		{"true at once", func() bool { return true }, ""},
		{"true after a few polls", func() bool { return n.Add(1) >= 3 }, ""},
		{"never true", func() bool { return false }, "after 50ms: waiting for x 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(func(tb testing.TB) { Eventually(tb, 50*time.Millisecond, tt.cond, "waiting for %s %d", "x", 7) })
			if got != tt.want {
				t.Errorf("failure = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNever(t *testing.T) {
	var n atomic.Int32
	tests := []struct {
		name string
		cond func() bool
		want string
	}{
		{"never true", func() bool { return false }, ""},
		{"true on the third poll", func() bool { return n.Add(1) >= 3 }, "it happened: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got := run(func(tb testing.TB) { Never(tb, 50*time.Millisecond, tt.cond, "it happened: %s", "x") })
			if got != tt.want {
				t.Errorf("failure = %q, want %q", got, tt.want)
			}
			if tt.want == "" && time.Since(start) < 50*time.Millisecond {
				t.Errorf("returned after %v, before the window ended", time.Since(start))
			}
		})
	}
}
