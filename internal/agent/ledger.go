package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ledger keeps, on disk, the outcome of every action this agent ran until
// a replica recorded it: an outcome whose answer was lost (the agent or
// the replica died) is sent again, and a request claimed again after a
// crash is answered from it instead of running the action a second time.
// One fsynced file per action key. Safe for concurrent use (one file per
// key, written by the one goroutine that runs the key).
type ledger struct{ dir string }

func openLedger(dir string) (*ledger, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open action ledger: %w", err)
	}
	return &ledger{dir: dir}, nil
}

func (l *ledger) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(l.dir, hex.EncodeToString(sum[:16])+".json")
}

// put writes an outcome durably.
func (l *ledger) put(o Outcome) error {
	b, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("record outcome of %s: %w", o.Key, err)
	}
	if err := writeFileSync(l.path(o.Key), b); err != nil {
		return fmt.Errorf("record outcome of %s: %w", o.Key, err)
	}
	return nil
}

// get returns the outcome recorded for key.
func (l *ledger) get(key string) (Outcome, bool, error) {
	b, err := os.ReadFile(l.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return Outcome{}, false, nil
	}
	if err != nil {
		return Outcome{}, false, fmt.Errorf("read outcome of %s: %w", key, err)
	}
	var o Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return Outcome{}, false, fmt.Errorf("read outcome of %s: %w", key, err)
	}
	return o, true, nil
}

// drop forgets an outcome a replica recorded.
func (l *ledger) drop(key string) error {
	if err := os.Remove(l.path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget outcome of %s: %w", key, err)
	}
	return nil
}

// pending lists the outcomes not yet recorded by a replica.
func (l *ledger) pending() ([]Outcome, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list action ledger: %w", err)
	}
	var out []Outcome
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(l.dir, e.Name()))
		if err != nil {
			return out, fmt.Errorf("list action ledger: %w", err)
		}
		var o Outcome
		if err := json.Unmarshal(b, &o); err != nil {
			continue // a torn write before its rename cannot happen; skip what is not ours
		}
		out = append(out, o)
	}
	return out, nil
}

// writeFileSync writes b to path durably: a temporary file fsynced, renamed
// over path, the directory fsynced.
func writeFileSync(path string, b []byte) error {
	if err := writeFileRenamed(path, b); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeFileRenamed writes b to path+".tmp", fsyncs it and renames it over
// path; the caller makes the rename durable (syncDir), once for many files
// if it likes.
func writeFileRenamed(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
