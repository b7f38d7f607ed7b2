package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/riposte-sec/riposte/internal/alert"
)

// ErrSpoolFull is returned (wrapped) by Spool.Append when the spool holds
// its maximum number of alerts: the replicas have been unreachable for a
// long time. The caller counts and logs what it could not keep.
var ErrSpoolFull = errors.New("spool full")

// Spool is the agent's durable buffer of alerts not yet acknowledged by a
// replica: one file per alert in a directory, named by a sequence number so
// that they are sent oldest first. A file is written to a temporary name,
// fsynced, renamed and the directory fsynced before Append returns, so an
// alert Append accepted survives a crash of the agent or of the machine; it
// is removed only after a replica answered 2xx for it.
//
// A Spool is safe for concurrent use.
type Spool struct {
	dir string
	max int

	mu   sync.Mutex
	next uint64
	seqs []uint64 // spooled, oldest first
}

// Spooled is one alert in the spool.
type Spooled struct {
	Seq   uint64
	Alert alert.Alert
}

const spoolExt = ".json"

// OpenSpool opens (creating it) the spool in dir, holding at most limit
// alerts. Leftover temporary files of a crashed write are removed: their
// Append had not returned.
func OpenSpool(dir string, limit int) (*Spool, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("open spool %s: the maximum must be positive, got %d", dir, limit)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: dir, max: limit, next: 1}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("open spool: remove unfinished write: %w", err)
			}
			continue
		}
		base, ok := strings.CutSuffix(name, spoolExt)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue // not ours
		}
		s.seqs = append(s.seqs, seq)
		s.next = max(s.next, seq+1)
	}
	sort.Slice(s.seqs, func(i, j int) bool { return s.seqs[i] < s.seqs[j] })
	return s, nil
}

func (s *Spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolExt))
}

// Len is how many alerts the spool holds.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seqs)
}

// Append writes alerts durably, in order. It returns how many it kept: all
// of them, or fewer with an error wrapping ErrSpoolFull (the rest were not
// kept) or the write's error.
func (s *Spool) Append(alerts ...alert.Alert) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := 0
	var err error
	for _, a := range alerts {
		if len(s.seqs) >= s.max {
			err = fmt.Errorf("spool alert %s: %w: %d alerts wait for a replica", a.ID, ErrSpoolFull, len(s.seqs))
			break
		}
		if err = s.write(s.next, a); err != nil {
			break
		}
		s.seqs = append(s.seqs, s.next)
		s.next++
		kept++
	}
	if kept > 0 {
		if serr := syncDir(s.dir); serr != nil {
			return kept, fmt.Errorf("spool alerts: %w", serr)
		}
	}
	return kept, err
}

func (s *Spool) write(seq uint64, a alert.Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("spool alert %s: %w", a.ID, err)
	}
	if err := writeFileRenamed(s.path(seq), b); err != nil {
		return fmt.Errorf("spool alert %s: %w", a.ID, err)
	}
	return nil
}

// Peek returns up to n of the oldest alerts. A file that does not decode
// (the disk corrupted it) is moved aside to <dir>/bad/ and reported in bad,
// never sent and never silently lost.
func (s *Spool) Peek(n int) (out []Spooled, bad []string, err error) {
	s.mu.Lock()
	seqs := append([]uint64(nil), s.seqs[:min(n, len(s.seqs))]...)
	s.mu.Unlock()
	for _, seq := range seqs {
		b, err := os.ReadFile(s.path(seq))
		if err != nil {
			return out, bad, fmt.Errorf("read spooled alert %d: %w", seq, err)
		}
		var a alert.Alert
		if err := json.Unmarshal(b, &a); err != nil {
			where, merr := s.quarantine(seq)
			if merr != nil {
				return out, bad, merr
			}
			bad = append(bad, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		out = append(out, Spooled{Seq: seq, Alert: a})
	}
	return out, bad, nil
}

// Reject moves an alert a replica refused for good (400) aside to
// <dir>/bad/, where an operator finds it, and returns where.
func (s *Spool) Reject(seq uint64) (string, error) { return s.quarantine(seq) }

func (s *Spool) quarantine(seq uint64) (string, error) {
	bad := filepath.Join(s.dir, "bad")
	if err := os.MkdirAll(bad, 0o700); err != nil {
		return "", fmt.Errorf("set spooled alert aside: %w", err)
	}
	to := filepath.Join(bad, filepath.Base(s.path(seq)))
	if err := os.Rename(s.path(seq), to); err != nil {
		return "", fmt.Errorf("set spooled alert aside: %w", err)
	}
	s.forget(seq)
	return to, syncDir(s.dir)
}

// Remove deletes alerts a replica acknowledged.
func (s *Spool) Remove(seqs ...uint64) error {
	var errs []error
	for _, seq := range seqs {
		if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove spooled alert %d: %w", seq, err))
			continue
		}
		s.forget(seq)
	}
	return errors.Join(errs...)
}

func (s *Spool) forget(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.seqs {
		if x == seq {
			s.seqs = append(s.seqs[:i], s.seqs[i+1:]...)
			return
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
