package file

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/notifiers/stream"
)

// Config is the `file:` block of one stream output.
//
//	file:
//	  path: /var/log/riposte/riposte.jsonl
//	  max_size: 100MiB     # rotate before a line would take the file past this
//	  max_files: 5         # files kept, the current one included: riposte.jsonl, .1 … .4
//	  fsync: always        # always | interval | never
//	  # fsync_interval: 1s # with fsync: interval
type Config struct {
	Path     string      `yaml:"path"`
	MaxSize  stream.Size `yaml:"max_size"`
	MaxFiles int         `yaml:"max_files"`
	Fsync    Fsync       `yaml:"fsync"`
	// FsyncInterval is how often fsync: interval flushes (default 1s).
	FsyncInterval time.Duration `yaml:"fsync_interval"`
}

// Defaults.
const (
	DefaultMaxSize       = 100 << 20
	DefaultMaxFiles      = 5
	DefaultFsync         = FsyncAlways
	DefaultFsyncInterval = time.Second
	maxMaxFiles          = 1000
)

// Fsync is when written lines are forced to disk.
type Fsync string

// Fsync policies.
const (
	// FsyncAlways: Write returns once the line is on disk (concurrent
	// writers share one fsync). The default: the outbox forgets a record
	// once Write succeeds, so only this survives a power cut.
	FsyncAlways Fsync = "always"
	// FsyncInterval: a background flush every fsync_interval; a crash can
	// lose that much.
	FsyncInterval Fsync = "interval"
	// FsyncNever: the kernel writes back when it sees fit.
	FsyncNever Fsync = "never"
)

// UnmarshalText accepts always, interval and never.
func (f *Fsync) UnmarshalText(b []byte) error {
	switch v := Fsync(strings.ToLower(string(b))); v {
	case FsyncAlways, FsyncInterval, FsyncNever:
		*f = v
		return nil
	}
	return fmt.Errorf("unknown fsync policy %q (want always, interval or never)", b)
}

func (c Config) withDefaults() Config {
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	if c.Fsync == "" {
		c.Fsync = DefaultFsync
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = DefaultFsyncInterval
	}
	c.Path = filepath.Clean(c.Path)
	return c
}

// Validate checks the block and collects every problem.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, errors.New("path: missing"))
	case strings.HasSuffix(c.Path, "/") || filepath.Base(filepath.Clean(c.Path)) == "." || filepath.Clean(c.Path) == "/":
		errs = append(errs, fmt.Errorf("path: want a file, got %q", c.Path))
	case strings.ContainsRune(c.Path, 0):
		errs = append(errs, errors.New("path: contains NUL"))
	}
	if c.MaxSize < 0 {
		errs = append(errs, fmt.Errorf("max_size: must not be negative, got %d", c.MaxSize))
	} else if c.MaxSize > 0 && c.MaxSize < 4096 {
		errs = append(errs, fmt.Errorf("max_size: at least 4KiB, got %d", c.MaxSize))
	}
	if c.MaxFiles < 0 || c.MaxFiles > maxMaxFiles {
		errs = append(errs, fmt.Errorf("max_files: want 1 to %d, got %d", maxMaxFiles, c.MaxFiles))
	}
	switch c.Fsync {
	case "", FsyncAlways, FsyncInterval, FsyncNever:
	default:
		errs = append(errs, fmt.Errorf("fsync: unknown policy %q (want always, interval or never)", c.Fsync))
	}
	if c.FsyncInterval < 0 {
		errs = append(errs, fmt.Errorf("fsync_interval: must not be negative, got %s", c.FsyncInterval))
	} else if c.FsyncInterval != 0 && c.Fsync != FsyncInterval {
		errs = append(errs, errors.New("fsync_interval: only applies with fsync: interval"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("file config: %w", err)
	}
	return nil
}
