package detector

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/detector/resources"
)

// Config configures the detector; it is the `detector:` section of
// riposte.yaml. Zero values take the defaults.
type Config struct {
	// Enabled starts the detector inside `riposte serve`.
	Enabled bool `yaml:"enabled"`
	// Rules are rules files or directories of *.yaml files; empty means the
	// built-in default rules (examples/rules).
	Rules []string `yaml:"rules"`
	// QueueSize bounds the queue between the ring-buffer reader and the
	// decoder; what does not fit is dropped and counted. Default 16384.
	QueueSize int `yaml:"queue_size"`
	// Workers evaluate rules and enrich alerts. Default 2.
	Workers int `yaml:"workers"`
	// RingBufferBytes is the kernel ring buffer size (a power of two).
	// Default 16 MiB.
	RingBufferBytes int `yaml:"ring_buffer_bytes"`
	// PollInterval bounds how long a non-exec event may wait in the ring
	// buffer before the reader picks it up (exec events wake it at once);
	// batching wakeups keeps the overhead on traced programs low. Default
	// 2ms; a negative value wakes the reader for every event.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Hostname goes into every alert; default os.Hostname().
	Hostname string `yaml:"hostname"`
	// Resources are the CPU and memory thresholds of the resource rules.
	Resources resources.Config `yaml:"resources"`
	// DisableResources turns the cgroup sampler off.
	DisableResources bool `yaml:"disable_resources"`
	// ReportLibraryReads sends read-only opens of shared libraries, the
	// loader cache and locale data to user space. By default the kernel
	// drops them (a dozen per exec, no rule looks at them); captures and
	// rules then do not see them either.
	ReportLibraryReads bool `yaml:"report_library_reads"`
	// Cgroup chooses the hierarchy that attributes processes to
	// containers: "v1" (the pids controller's cgroup, then the v2 cgroup of
	// processes whose v1 cgroup is no container), "v2" (the unified
	// hierarchy), or "" / "auto": v2 when /sys/fs/cgroup is a cgroup2 mount.
	Cgroup string `yaml:"cgroup"`
	// Enforce turns on in-kernel enforcement of the rules marked
	// `enforce:` (off by default; see EnforceConfig).
	Enforce EnforceConfig `yaml:"enforce"`
}

// Defaults.
const (
	DefaultQueueSize = 16384
	DefaultWorkers   = 2
	// DefaultPollInterval is Config.PollInterval's default.
	DefaultPollInterval = 2 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	c.Resources = c.Resources.WithDefaults()
	c.Enforce = c.Enforce.withDefaults()
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("detector: queue_size must be positive, got %d", c.QueueSize))
	}
	if c.Workers < 0 || c.Workers > 64 {
		errs = append(errs, fmt.Errorf("detector: workers must be between 1 and 64, got %d", c.Workers))
	}
	if n := c.RingBufferBytes; n != 0 && (n < 4096 || n&(n-1) != 0) {
		errs = append(errs, fmt.Errorf("detector: ring_buffer_bytes must be a power of two of at least 4096, got %d", n))
	}
	if err := c.Resources.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("detector: %w", err))
	}
	if err := c.Enforce.validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.Cgroup {
	case "", "auto", "v1", "v2":
	default:
		errs = append(errs, fmt.Errorf("detector: cgroup must be auto, v1 or v2, got %q", c.Cgroup))
	}
	return errors.Join(errs...)
}

// Deps are the detector's collaborators. Nil fields become no-ops: no
// logging, no container enrichment (alerts carry ids only), no metrics.
type Deps struct {
	Logger *slog.Logger
	Docker containers.API // *client.Client from github.com/docker/docker/client
	// Resolvers describe the containers Docker does not know (containerd's),
	// asked in order.
	Resolvers  []containers.Resolver
	Registerer prometheus.Registerer
	// Protected decides which containers enforcement may act on; required
	// when Config.Enforce is enabled (a cgroup is armed only once it said
	// "not protected").
	Protected ProtectedFunc
}
