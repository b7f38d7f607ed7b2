package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

func testAlert(i int) alert.Alert {
	a := alert.Alert{Time: time.Date(2026, 12, 3, 10, 0, 0, i, time.UTC), Rule: "Spool test", Priority: alert.PriorityWarning,
		Output: fmt.Sprintf("alert %d", i), Hostname: "node-a"}
	a.ID = alert.DeterministicID(a)
	return a
}

func TestSpool(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, dir string)
	}{
		{"append, peek in order, remove", func(t *testing.T, dir string) {
			s, err := OpenSpool(dir, 10)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := s.Append(testAlert(1), testAlert(2), testAlert(3)); n != 3 || err != nil {
				t.Fatalf("append: %d %v", n, err)
			}
			got, bad, err := s.Peek(2)
			if err != nil || len(bad) > 0 || len(got) != 2 || got[0].Alert.ID != testAlert(1).ID || got[1].Alert.ID != testAlert(2).ID {
				t.Fatalf("peek: %+v %v %v", got, bad, err)
			}
			if err := s.Remove(got[0].Seq); err != nil {
				t.Fatal(err)
			}
			got, _, _ = s.Peek(10)
			if len(got) != 2 || got[0].Alert.ID != testAlert(2).ID || s.Len() != 2 {
				t.Fatalf("after remove: %+v", got)
			}
		}},
		{"reopen keeps what was spooled, in order, and goes on numbering", func(t *testing.T, dir string) {
			s, _ := OpenSpool(dir, 10)
			s.Append(testAlert(1), testAlert(2))
			s2, err := OpenSpool(dir, 10)
			if err != nil {
				t.Fatal(err)
			}
			s2.Append(testAlert(3))
			got, _, _ := s2.Peek(10)
			if len(got) != 3 || got[0].Alert.ID != testAlert(1).ID || got[2].Alert.ID != testAlert(3).ID {
				t.Fatalf("reopened: %+v", got)
			}
		}},
		{"full: keeps what fits and says so", func(t *testing.T, dir string) {
			s, _ := OpenSpool(dir, 2)
			n, err := s.Append(testAlert(1), testAlert(2), testAlert(3))
			if n != 2 || !errors.Is(err, ErrSpoolFull) {
				t.Fatalf("append to a full spool: %d %v", n, err)
			}
		}},
		{"an unfinished write is removed at open", func(t *testing.T, dir string) {
			s, _ := OpenSpool(dir, 10)
			s.Append(testAlert(1))
			os.WriteFile(filepath.Join(dir, "00000000000000000002.json.tmp"), []byte(`{"half`), 0o600)
			s2, _ := OpenSpool(dir, 10)
			if s2.Len() != 1 {
				t.Fatalf("len %d", s2.Len())
			}
			if _, err := os.Stat(filepath.Join(dir, "00000000000000000002.json.tmp")); !os.IsNotExist(err) {
				t.Fatalf("tmp file left: %v", err)
			}
		}},
		{"a corrupt file is set aside, not sent, not lost", func(t *testing.T, dir string) {
			s, _ := OpenSpool(dir, 10)
			s.Append(testAlert(1), testAlert(2))
			os.WriteFile(s.path(1), []byte("garbage"), 0o600)
			got, bad, err := s.Peek(10)
			if err != nil || len(got) != 1 || len(bad) != 1 || s.Len() != 1 {
				t.Fatalf("peek: %+v %v %v", got, bad, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "bad", "00000000000000000001.json")); err != nil {
				t.Fatalf("not set aside: %v", err)
			}
		}},
		{"a bad maximum is refused", func(t *testing.T, dir string) {
			if _, err := OpenSpool(dir, 0); err == nil {
				t.Fatal("no error")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, t.TempDir()) })
	}
}
