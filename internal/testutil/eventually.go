package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it returns true and
// fails t with msg once timeout has passed. Tests use it instead of sleeping:
// they wait for the condition itself, with a deadline.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+msg, append([]any{timeout}, args...)...)
		}
		<-tick.C
	}
}

// Never checks cond every few milliseconds for the whole of d and fails t
// with msg as soon as it turns true: the way to assert that something (a
// second delivery, a retry) does not happen within a window.
func Never(t testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf(msg, args...)
		}
		<-tick.C
	}
}
