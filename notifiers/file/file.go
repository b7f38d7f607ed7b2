package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/stream"
)

// Deps are the output's collaborators; every field is optional.
type Deps struct {
	// Logger; nil discards.
	Logger *slog.Logger
}

// File appends records to a JSON-lines file and rotates it by size. It is
// safe for concurrent use.
type File struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	f       *os.File // nil after a failed rotation or open: reopened by the next Write
	size    int64
	needNL  bool   // the file ends in a torn line: terminate it before the next one
	written uint64 // lines written, ever
	synced  uint64 // lines known to be on disk
	closed  bool
	stats   Stats

	syncMu sync.Mutex // one fsync at a time; waiters share it

	stop chan struct{}
	done chan struct{}
}

// Stats are counters for metrics and tests.
type Stats struct {
	Lines     uint64 // lines written
	Rotations uint64
	Syncs     uint64 // fsyncs of the data file
	Failures  uint64 // failed writes
}

var _ stream.Output = (*File)(nil)

// New validates cfg, creates the directory (0700) if needed and opens the
// file (0600 when it creates it), appending to what is there.
func New(cfg Config, deps Deps) (*File, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	w := &File{cfg: cfg, log: deps.Logger}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("open record file %s: %w", cfg.Path, err)
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	w.prune()
	if cfg.Fsync == FsyncInterval {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.flusher()
	}
	return w, nil
}

// Path is the current file.
func (w *File) Path() string { return w.cfg.Path }

// Stats returns the counters.
func (w *File) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// open opens (or creates) the current file; w.mu held or not yet shared.
func (w *File) open() error {
	f, err := os.OpenFile(w.cfg.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open record file %s: %w", w.cfg.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open record file %s: %w", w.cfg.Path, err)
	}
	if st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
		w.log.Warn("record file is readable by others than its owner", "path", w.cfg.Path, "mode", st.Mode().Perm().String())
	}
	w.f, w.size, w.needNL = f, st.Size(), false
	if w.size > 0 {
		// A crash in the middle of a line leaves it unterminated: the next
		// record must not be glued to it.
		var last [1]byte
		if _, err := f.ReadAt(last[:], w.size-1); err == nil && last[0] != '\n' {
			w.needNL = true
		}
	}
	return nil
}

// Write appends the record's JSON and a newline, rotating first when the
// line would take the file past max_size (a line longer than max_size gets
// a file of its own: lines are never split). With fsync: always it returns
// once the line is on disk. Errors from the file system (a full disk, a
// read-only remount) are retryable; the file is left ending in a whole
// line.
func (w *File) Write(ctx context.Context, r stream.Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("write record %s to file: %w", r.Key(), err)
	}
	if err := ctx.Err(); err != nil {
		return actions.Retryable(fmt.Errorf("write record %s to file: %w", r.Key(), err))
	}
	line := make([]byte, 0, len(r.JSON)+2)
	line = append(line, r.JSON...)
	line = append(line, '\n')

	w.mu.Lock()
	seq, err := w.append(line)
	w.mu.Unlock()
	if err != nil {
		return actions.Retryable(fmt.Errorf("write record %s to %s: %w", r.Key(), w.cfg.Path, err))
	}
	if w.cfg.Fsync == FsyncAlways {
		if err := w.syncTo(seq); err != nil {
			return actions.Retryable(fmt.Errorf("write record %s to %s: %w", r.Key(), w.cfg.Path, err))
		}
	}
	return nil
}

// append writes one line under w.mu and returns its sequence number.
func (w *File) append(line []byte) (uint64, error) {
	if w.closed {
		return 0, errors.New("output closed")
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			w.stats.Failures++
			return 0, err
		}
	}
	need := int64(len(line))
	if w.needNL {
		need++
	}
	if w.size > 0 && w.size+need > int64(w.cfg.MaxSize) {
		if err := w.rotate(); err != nil {
			w.stats.Failures++
			return 0, err
		}
	}
	if w.needNL { // still set: the torn line is in the current file
		line = append([]byte{'\n'}, line...)
	}
	n, err := w.f.Write(line)
	if err != nil {
		w.stats.Failures++
		if n > 0 {
			// Take the torn line back; if that fails too, the next line
			// starts with a newline so that only this one is lost.
			if terr := w.f.Truncate(w.size); terr != nil {
				w.size += int64(n)
				w.needNL = true
			}
		}
		return 0, err
	}
	w.size += int64(n)
	w.needNL = false
	w.written++
	w.stats.Lines++
	return w.written, nil
}

// rotate closes the current file, shifts path.N-1 → path.N … path → path.1
// (dropping the oldest beyond max_files) and opens a new empty file. w.mu
// held.
func (w *File) rotate() error {
	if w.cfg.Fsync != FsyncNever {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("rotate: sync: %w", err)
		}
		w.stats.Syncs++
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		return fmt.Errorf("rotate: close: %w", err)
	}
	w.f = nil
	if w.cfg.Fsync != FsyncNever {
		w.synced = w.written
	}
	base := w.cfg.Path
	if w.cfg.MaxFiles == 1 {
		if err := os.Remove(base); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate: %w", err)
		}
	} else {
		for i := w.cfg.MaxFiles - 1; i >= 1; i-- {
			from := rotated(base, i-1)
			if err := os.Rename(from, rotated(base, i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rotate: %w", err)
			}
		}
	}
	if err := w.open(); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	w.stats.Rotations++
	if w.cfg.Fsync != FsyncNever {
		if err := syncDir(filepath.Dir(base)); err != nil {
			w.log.Warn("record file: sync directory after rotation", "path", base, "error", err)
		}
	}
	return nil
}

// prune removes rotated files beyond max_files (max_files was lowered).
func (w *File) prune() {
	for i := w.cfg.MaxFiles; ; i++ {
		err := os.Remove(rotated(w.cfg.Path, i))
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			w.log.Warn("record file: remove old file", "path", rotated(w.cfg.Path, i), "error", err)
			return
		}
	}
}

// rotated is path for 0 and path.N otherwise.
func rotated(path string, n int) string {
	if n == 0 {
		return path
	}
	return path + "." + strconv.Itoa(n)
}

// syncTo returns once line seq is on disk. Writers that arrive while an
// fsync runs wait for it and are then usually covered by the next one, which
// takes all lines written so far: one fsync serves many writers.
func (w *File) syncTo(seq uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	if w.synced >= seq {
		w.mu.Unlock()
		return nil
	}
	f, upto := w.f, w.written
	w.mu.Unlock()
	var err error
	if f == nil {
		err = errors.New("file not open")
	} else {
		err = f.Sync()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.stats.Syncs++
		w.synced = max(w.synced, upto)
		return nil
	}
	if w.synced >= seq {
		return nil // a rotation synced and closed the file meanwhile
	}
	return fmt.Errorf("sync: %w", err)
}

func (w *File) flusher() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			seq := w.written
			w.mu.Unlock()
			if err := w.syncTo(seq); err != nil {
				w.log.Warn("record file: periodic sync", "path", w.cfg.Path, "error", err)
			}
		}
	}
}

// Close flushes (whatever the fsync policy) and closes the file. Later
// Writes fail, retryably.
func (w *File) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	if w.stop != nil {
		close(w.stop)
		<-w.done
	}
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	serr := w.f.Sync()
	cerr := w.f.Close()
	w.f = nil
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("close record file %s: %w", w.cfg.Path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
