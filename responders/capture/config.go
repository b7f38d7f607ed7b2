package capture

import (
	"errors"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Defaults applied by New to zero fields of Config, and the defaults of the
// capture.start parameters.
const (
	DefaultMaxDuration = 10 * time.Minute
	DefaultMaxBytes    = ByteSize(1 << 30) // 1GiB
	DefaultEventBuffer = 8192
	DefaultSnaplen     = 262144
	DefaultMaxRunning  = 16

	DefaultDuration   = 30 * time.Second    // the duration parameter's default
	DefaultParamBytes = ByteSize(100 << 20) // the max_bytes parameter's default
	DefaultNetwork    = true                // the network parameter's default
	DefaultSyscalls   = true                // the syscalls parameter's default
	DefaultWait       = false               // the wait parameter's default

	// MinBytes is the smallest max_bytes a capture accepts: room for the
	// headers, the state and the trailers.
	MinBytes = ByteSize(64 << 10)
)

// Config configures the capture responder; it is the `capture:` section of
// riposte.yaml. Only EvidenceDir is required.
//
//	capture:
//	  evidence_dir: /var/lib/riposte/evidence   # usually the docker responder's
//	  max_duration: 10m      # a playbook's duration is capped to this
//	  max_bytes: 1GiB        # a playbook's max_bytes is capped to this
//	  event_buffer: 8192     # events buffered between the detector and the file (~600 B each)
//	  snaplen: 262144        # bytes kept of each packet
//	  max_running: 16        # captures running at once, all containers
type Config struct {
	// EvidenceDir receives capture directories:
	// <evidence_dir>/<incident>/<container short id>/capture-<time>/.
	EvidenceDir string `yaml:"evidence_dir"`
	// MaxDuration caps the duration parameter (default 10m). A longer
	// duration is lowered to it, and the Result says so.
	MaxDuration time.Duration `yaml:"max_duration"`
	// MaxBytes caps the max_bytes parameter (default 1GiB), and is the
	// parameter's default when lower than 100MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// EventBuffer is the subscription's channel size: events the detector
	// may deliver faster than the file is written before it drops them
	// (counted) (default 8192). Each slot takes about 600 bytes while a
	// capture runs.
	EventBuffer int `yaml:"event_buffer"`
	// Snaplen is how many bytes of each packet are kept (default 262144,
	// enough for the 64KiB segments a veth hands over with GSO).
	Snaplen int `yaml:"snaplen"`
	// MaxRunning bounds the captures running at once (default 16); one
	// more is refused with a retryable error.
	MaxRunning int `yaml:"max_running"`
}

// ByteSize is a size in bytes (1048576, 512KiB, 50MB, 1GiB).
type ByteSize = actions.ByteSize

func (cfg Config) withDefaults() Config {
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.Snaplen == 0 {
		cfg.Snaplen = DefaultSnaplen
	}
	if cfg.MaxRunning == 0 {
		cfg.MaxRunning = DefaultMaxRunning
	}
	return cfg
}

// Validate reports every problem in cfg (after defaults), joined.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	var errs []error
	if cfg.EvidenceDir == "" {
		errs = append(errs, errors.New("capture: evidence_dir: required (captures are written there)"))
	}
	if cfg.MaxDuration < 0 {
		errs = append(errs, fmt.Errorf("capture: max_duration: must not be negative, got %s", cfg.MaxDuration))
	}
	if cfg.MaxBytes < MinBytes {
		errs = append(errs, fmt.Errorf("capture: max_bytes: must be at least %s, got %s", MinBytes, cfg.MaxBytes))
	}
	if cfg.EventBuffer < 0 || cfg.EventBuffer > 1<<20 {
		errs = append(errs, fmt.Errorf("capture: event_buffer: must be between 1 and 1048576, got %d", cfg.EventBuffer))
	}
	if cfg.Snaplen < 64 || cfg.Snaplen > 1<<20 {
		errs = append(errs, fmt.Errorf("capture: snaplen: must be between 64 and 1048576, got %d", cfg.Snaplen))
	}
	if cfg.MaxRunning < 0 {
		errs = append(errs, fmt.Errorf("capture: max_running: must not be negative, got %d", cfg.MaxRunning))
	}
	return errors.Join(errs...)
}
