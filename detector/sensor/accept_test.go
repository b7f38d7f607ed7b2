package sensor_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/sensor"
)

// acceptHelperEnv makes the test binary act as acceptHelper: the sensor
// ignores the test process's own events, so the calls must come from a
// child.
const acceptHelperEnv = "RIPOSTE_SENSOR_ACCEPT_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(acceptHelperEnv) != "" {
		port, err := acceptHelper()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(port)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// acceptHelper listens on a non-blocking socket, accepts with nothing
// pending (EAGAIN), connects to itself and accepts that connection, then
// accepts on a socket that does not listen (EINVAL). It returns the port.
func acceptHelper() (int, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(l, 8); err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(l)
	if err != nil {
		return 0, fmt.Errorf("getsockname: %w", err)
	}
	for range 3 {
		if _, _, err := unix.Accept4(l, 0); !errors.Is(err, unix.EAGAIN) {
			return 0, fmt.Errorf("accept with nothing pending: %v, want EAGAIN", err)
		}
	}
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(c, sa); err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	// A loopback connect to a listener completes at once: the connection
	// is queued before connect returns.
	if _, _, err := unix.Accept4(l, 0); err != nil {
		return 0, fmt.Errorf("accept the pending connection: %w", err)
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	if _, _, err := unix.Accept4(s, 0); !errors.Is(err, unix.EINVAL) {
		return 0, fmt.Errorf("accept on a socket that does not listen: %v, want EINVAL", err)
	}
	return sa.(*unix.SockaddrInet4).Port, nil
}

// runAcceptHelper runs acceptHelper in a child and returns its pid and port.
func runAcceptHelper(t *testing.T) (uint32, uint16) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), acceptHelperEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("accept helper: %v: %s", err, out)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("accept helper printed %q, want its port", out)
	}
	return uint32(cmd.Process.Pid), uint16(port)
}

// TestSensorAcceptResults: an accept is recorded with its result, a failed
// one with -errno; a non-blocking accept that found no connection (EAGAIN)
// is counted as filtered, never sent. Without WantFailed for accept, the
// failed one is filtered too.
func TestSensorAcceptResults(t *testing.T) {
	s := openSensor(t)
	for _, failed := range []bool{true, false} {
		t.Run(fmt.Sprintf("want_failed=%v", failed), func(t *testing.T) {
			want := sensor.WantAll
			if !failed {
				want = sensor.WantOK
			}
			if err := s.SetWanted(map[string]sensor.Want{event.Accept: want}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.SetWanted(nil) })
			f0, err := s.Filtered()
			if err != nil {
				t.Fatal(err)
			}
			pid, port := runAcceptHelper(t)
			var ok, einval, eagain bool
			collect(t, s, 15*time.Second, func(r *sensor.Record) bool {
				e := &r.Event
				if e.PID == pid && e.Type == event.Exit {
					return true // the helper's events are all in by its exit
				}
				if e.PID != pid || e.Type != event.Accept {
					return false
				}
				switch e.Ret {
				case -int64(unix.EAGAIN):
					eagain = true
				case -int64(unix.EINVAL):
					einval = true
				default:
					if e.Ret >= 0 && e.LocalPort == port {
						ok = true
					}
				}
				return false
			})
			f1, err := s.Filtered()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Errorf("no successful accept on port %d", port)
			}
			if einval != failed {
				t.Errorf("failed accept (EINVAL) seen %v, want %v", einval, failed)
			}
			if eagain {
				t.Error("an accept that returned EAGAIN was sent")
			}
			wantFiltered := uint64(3) // the EAGAINs
			if !failed {
				wantFiltered++ // and the EINVAL
			}
			if n := f1[event.Accept] - f0[event.Accept]; n < wantFiltered {
				t.Errorf("kernel filtered %d accepts, want at least %d", n, wantFiltered)
			}
		})
	}
}

func TestSetWantedRejectsUnknownType(t *testing.T) {
	s := openSensor(t)
	err := s.SetWanted(map[string]sensor.Want{"cpu_high": sensor.WantAll})
	if err == nil || !strings.Contains(err.Error(), `"cpu_high" is not a kernel event type`) {
		t.Fatalf("SetWanted(cpu_high) = %v, want an error naming the type", err)
	}
}
