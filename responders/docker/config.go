package docker

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/riposte-sec/riposte/internal/actions"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultProtectLabel    = "riposte.protect=true"
	DefaultSnapshotMax     = ByteSize(1 << 30) // 1GiB
	DefaultLogLines        = 1000
	DefaultAPITimeout      = 30 * time.Second
	DefaultSnapshotTimeout = 10 * time.Minute
)

// Config configures the Docker responder. Only DataDir is required; every
// other zero field takes the default documented on it.
//
//	docker:
//	  host: unix:///var/run/docker.sock
//	  data_dir: /var/lib/riposte
//	  evidence_dir: /var/lib/riposte/evidence
//	  protect:
//	    label: riposte.protect=true
//	    names: [riposte, "kube-*"]
//	    images: ["postgres:*", "registry.example.com/infra/*"]
//	  snapshot:
//	    max_bytes: 1GiB
//	    log_lines: 1000
//	  timeouts:
//	    api: 30s
//	    snapshot: 10m
//	  pause: docker            # or freezer
type Config struct {
	// Host is the Docker endpoint (unix:///var/run/docker.sock,
	// tcp://127.0.0.1:2376); "" means DOCKER_HOST or the default socket.
	// Only NewClient reads it.
	Host string `yaml:"host"`
	// DataDir is riposte's data directory. Quarantine state (which networks
	// a quarantined container was on) is kept in <data_dir>/docker/quarantine.
	DataDir string `yaml:"data_dir"`
	// EvidenceDir receives snapshot bundles; default <data_dir>/evidence.
	EvidenceDir string `yaml:"evidence_dir"`
	// Protect lists the containers no action may touch.
	Protect ProtectConfig `yaml:"protect"`
	// Snapshot sets container.snapshot's defaults and limits.
	Snapshot SnapshotConfig `yaml:"snapshot"`
	// Timeouts bound the calls to the Docker daemon.
	Timeouts TimeoutConfig `yaml:"timeouts"`
	// Pause is how container.pause freezes a container: "docker" (default,
	// the ContainerPause API call) or "freezer" (riposte writes the
	// container's cgroup freezer itself; see PauseVia).
	Pause PauseVia `yaml:"pause"`
}

// PauseVia is how container.pause freezes a container.
//
// PauseFreezer writes the container's cgroup (v1 freezer.state, v2
// cgroup.freeze) from this process: no daemon, containerd, shim or runc
// round trip between the decision and the frozen container. Then, the
// container contained, the daemon is told, so that `docker ps` shows it
// paused and `docker unpause` resumes it: runc refuses to pause a cgroup
// frozen by itself, but takes one frozen only through a child for running,
// so the frozen processes are parked in a frozen child cgroup while the
// daemon pauses the container (see tellDocker). Where that cannot be done
// (cgroup v2, a container with child cgroups of its own, a daemon that
// fails) the container stays frozen, the action's note says the daemon was
// not told, and container.unpause thaws it. It needs the host's /proc and
// cgroup file systems (riposte on the host, or a container with both).
type PauseVia string

// The ways to pause.
const (
	PauseDocker  PauseVia = "docker"
	PauseFreezer PauseVia = "freezer"
)

// UnmarshalText accepts docker and freezer.
func (p *PauseVia) UnmarshalText(b []byte) error {
	switch v := PauseVia(b); v {
	case PauseDocker, PauseFreezer:
		*p = v
		return nil
	}
	return fmt.Errorf("want docker or freezer, got %q", string(b))
}

// ProtectConfig lists protected containers. Riposte's own container is
// always protected, whatever this says.
type ProtectConfig struct {
	// Label protects every container that carries it: "key=value", or
	// "key" alone for any value. Default riposte.protect=true. It cannot be
	// switched off.
	Label string `yaml:"label"`
	// Names are glob patterns (path.Match) over container names, without
	// the leading slash: "db", "kube-*".
	Names []string `yaml:"names"`
	// Images are glob patterns over the container's image as it was given
	// ("postgres:15"), its repository without tag or digest ("postgres")
	// and the fully qualified forms ("docker.io/library/postgres:15").
	Images []string `yaml:"images"`
	// SelfID is riposte's own container id, for runtimes where it cannot
	// be found in /proc/self/cgroup, /proc/self/mountinfo or the hostname.
	SelfID string `yaml:"self_id"`
}

// SnapshotConfig sets container.snapshot's defaults and limits.
type SnapshotConfig struct {
	// MaxBytes caps the size of one evidence bundle (default 1GiB). A
	// playbook's max_bytes may lower it, never raise it.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// LogLines is how many of the last log lines a snapshot keeps when the
	// playbook does not say (default 1000).
	LogLines int `yaml:"log_lines"`
}

// TimeoutConfig bounds the calls to the Docker daemon.
type TimeoutConfig struct {
	// API bounds one call (inspect, pause, kill, network disconnect...);
	// default 30s. container.stop waits its grace period on top of it.
	API time.Duration `yaml:"api"`
	// Snapshot bounds a whole container.snapshot; default 10m.
	Snapshot time.Duration `yaml:"snapshot"`
}

// ByteSize is a size in bytes (1048576, 512KiB, 50MB, 1GiB).
type ByteSize = actions.ByteSize

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.EvidenceDir == "" && cfg.DataDir != "" {
		cfg.EvidenceDir = filepath.Join(cfg.DataDir, "evidence")
	}
	if strings.TrimSpace(cfg.Protect.Label) == "" {
		cfg.Protect.Label = DefaultProtectLabel
	}
	if cfg.Snapshot.MaxBytes == 0 {
		cfg.Snapshot.MaxBytes = DefaultSnapshotMax
	}
	if cfg.Snapshot.LogLines == 0 {
		cfg.Snapshot.LogLines = DefaultLogLines
	}
	if cfg.Timeouts.API == 0 {
		cfg.Timeouts.API = DefaultAPITimeout
	}
	if cfg.Timeouts.Snapshot == 0 {
		cfg.Timeouts.Snapshot = DefaultSnapshotTimeout
	}
	if cfg.Pause == "" {
		cfg.Pause = PauseDocker
	}
	return cfg
}

// Validate reports every problem in cfg (after defaults), joined.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	var errs []error
	if cfg.DataDir == "" {
		errs = append(errs, errors.New("data_dir: required (quarantine state is kept there)"))
	}
	if k, _, _ := strings.Cut(cfg.Protect.Label, "="); strings.TrimSpace(k) == "" {
		errs = append(errs, fmt.Errorf("protect.label: want key=value or key, got %q", cfg.Protect.Label))
	}
	for i, p := range cfg.Protect.Names {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("protect.names[%d]: bad glob pattern %q", i, p))
		}
	}
	for i, p := range cfg.Protect.Images {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("protect.images[%d]: bad glob pattern %q", i, p))
		}
	}
	if id := cfg.Protect.SelfID; id != "" && !isHexID(id, 12, 64) {
		errs = append(errs, fmt.Errorf("protect.self_id: want a container id (12 to 64 hex digits), got %q", id))
	}
	if cfg.Snapshot.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("snapshot.max_bytes: must not be negative, got %d", cfg.Snapshot.MaxBytes))
	}
	if cfg.Snapshot.LogLines < 0 {
		errs = append(errs, fmt.Errorf("snapshot.log_lines: must not be negative, got %d", cfg.Snapshot.LogLines))
	}
	if cfg.Timeouts.API < 0 {
		errs = append(errs, fmt.Errorf("timeouts.api: must not be negative, got %s", cfg.Timeouts.API))
	}
	if cfg.Pause != PauseDocker && cfg.Pause != PauseFreezer {
		errs = append(errs, fmt.Errorf("pause: want docker or freezer, got %q", string(cfg.Pause)))
	}
	if cfg.Timeouts.Snapshot < 0 {
		errs = append(errs, fmt.Errorf("timeouts.snapshot: must not be negative, got %s", cfg.Timeouts.Snapshot))
	}
	return errors.Join(errs...)
}

// NewClient returns a Docker client for cfg.Host (or DOCKER_HOST, or the
// default socket) that negotiates the API version with the daemon, so the
// same binary talks to Debian's 20.10 (API 1.41) and to current engines.
// The caller closes it, after the Responder built on it is no longer used.
func NewClient(cfg Config) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", cfg.Host, err)
	}
	return cli, nil
}

func isHexID(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
