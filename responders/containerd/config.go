package containerd

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/contain"
)

// Defaults applied to zero fields of Config.
const (
	DefaultAddress         = "/run/containerd/containerd.sock"
	DefaultNamespace       = "k8s.io"
	DefaultProtectLabel    = "riposte.protect=true"
	DefaultSnapshotMax     = actions.ByteSize(1 << 30) // 1GiB
	DefaultAPITimeout      = 30 * time.Second
	DefaultSnapshotTimeout = 10 * time.Minute
)

// Config configures the containerd responder. Only DataDir is required
// (the assembly fills it with riposte's data directory).
//
//	containerd:
//	  address: /run/containerd/containerd.sock   # dockerd's own: /var/run/docker/containerd/containerd.sock
//	  namespaces: [k8s.io, moby]                # searched in this order
//	  evidence_dir: /var/lib/riposte/evidence
//	  protect:
//	    label: riposte.protect=true
//	    names: ["kube-system/*"]                 # pod namespace/pod/container for CRI containers
//	    images: ["registry.k8s.io/*"]
//	  snapshot:
//	    max_bytes: 1GiB
//	  timeouts:
//	    api: 30s
//	    snapshot: 10m
//	  pause: containerd                           # or freezer: the fast path
//	  quarantine:
//	    allow: [10.0.0.53/32]                     # still reachable when quarantined
type Config struct {
	// Address is containerd's socket; default /run/containerd/containerd.sock.
	Address string `yaml:"address"`
	// Namespaces are the containerd namespaces searched for a container,
	// in order; default [k8s.io] (Kubernetes' CRI). Docker's is moby.
	Namespaces []string `yaml:"namespaces"`
	// DataDir is riposte's data directory; evidence goes to
	// <data_dir>/evidence unless EvidenceDir says otherwise.
	DataDir string `yaml:"data_dir"`
	// EvidenceDir receives snapshot bundles.
	EvidenceDir string `yaml:"evidence_dir"`
	// Protect lists the containers no action may touch.
	Protect ProtectConfig `yaml:"protect"`
	// Snapshot sets containerd.snapshot's limits.
	Snapshot SnapshotConfig `yaml:"snapshot"`
	// Timeouts bound the calls to containerd.
	Timeouts TimeoutConfig `yaml:"timeouts"`
	// Pause is how containerd.pause freezes, spelled like the docker
	// section's: "containerd" (default) through the task API, so
	// containerd, the kubelet and Docker report the task paused; or
	// "freezer", the cgroup's freezer directly (v1 freezer.state or v2
	// cgroup.freeze), the fast path
	// (BenchmarkPauseUnpause: ~22 ms against ~0.3 ms for a pause and an
	// unpause here), after which containerd still reports it running.
	Pause PauseVia `yaml:"pause"`
	// Quarantine configures containerd.quarantine.
	Quarantine QuarantineConfig `yaml:"quarantine"`
}

// QuarantineConfig configures containerd.quarantine's nftables table.
type QuarantineConfig struct {
	// Allow are the CIDR prefixes (or addresses) a quarantined container
	// may still exchange packets with (a log shipper, the node's DNS);
	// everything else but loopback is dropped. Default: none.
	Allow []string `yaml:"allow"`
}

// PauseVia is how containerd.pause freezes a task.
type PauseVia string

// Pause modes.
const (
	PauseContainerd PauseVia = "containerd"
	PauseFreezer    PauseVia = "freezer"
)

// UnmarshalText accepts "containerd" or "freezer".
func (m *PauseVia) UnmarshalText(b []byte) error {
	switch v := PauseVia(strings.ToLower(strings.TrimSpace(string(b)))); v {
	case PauseContainerd, PauseFreezer:
		*m = v
		return nil
	}
	return fmt.Errorf("pause: want containerd or freezer, got %q", b)
}

// ProtectConfig lists protected containers.
type ProtectConfig struct {
	// Label protects every container whose containerd labels carry it
	// (CRI copies pod labels there): "key=value" or "key". Default
	// riposte.protect=true; it cannot be switched off.
	Label string `yaml:"label"`
	// Names are glob patterns over the container's name: namespace/pod/
	// container for a Kubernetes container, nerdctl's name otherwise.
	Names []string `yaml:"names"`
	// Images are glob patterns over the container's image reference, as
	// given and without its tag or digest.
	Images []string `yaml:"images"`
}

// SnapshotConfig sets containerd.snapshot's limits.
type SnapshotConfig struct {
	// MaxBytes caps one evidence bundle (default 1GiB); a playbook's
	// max_bytes may lower it, never raise it.
	MaxBytes actions.ByteSize `yaml:"max_bytes"`
}

// TimeoutConfig bounds the calls to containerd.
type TimeoutConfig struct {
	// API bounds one call (load, status, pids, kill); default 30s.
	API time.Duration `yaml:"api"`
	// Snapshot bounds a whole containerd.snapshot; default 10m.
	Snapshot time.Duration `yaml:"snapshot"`
}

func (cfg Config) withDefaults() Config {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if len(cfg.Namespaces) == 0 {
		cfg.Namespaces = []string{DefaultNamespace}
	}
	if cfg.EvidenceDir == "" && cfg.DataDir != "" {
		cfg.EvidenceDir = filepath.Join(cfg.DataDir, "evidence")
	}
	if cfg.Protect.Label == "" {
		cfg.Protect.Label = DefaultProtectLabel
	}
	if cfg.Snapshot.MaxBytes == 0 {
		cfg.Snapshot.MaxBytes = DefaultSnapshotMax
	}
	if cfg.Timeouts.API == 0 {
		cfg.Timeouts.API = DefaultAPITimeout
	}
	if cfg.Timeouts.Snapshot == 0 {
		cfg.Timeouts.Snapshot = DefaultSnapshotTimeout
	}
	if cfg.Pause == "" {
		cfg.Pause = PauseContainerd
	}
	return cfg
}

// namespacePattern is containerd's rule for namespace names.
var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

func (cfg Config) guard() contain.Guard {
	return contain.Guard{Label: cfg.Protect.Label, Names: cfg.Protect.Names, Images: cfg.Protect.Images}
}

// Validate reports every problem in cfg (after defaults), joined.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	var errs []error
	if cfg.DataDir == "" && cfg.EvidenceDir == "" {
		errs = append(errs, errors.New("data_dir: required (snapshots are written under it)"))
	}
	if !filepath.IsAbs(cfg.Address) {
		errs = append(errs, fmt.Errorf("address: want the absolute path of containerd's socket, got %q", cfg.Address))
	}
	seen := map[string]bool{}
	for i, ns := range cfg.Namespaces {
		switch {
		case len(ns) > 76 || !namespacePattern.MatchString(ns):
			errs = append(errs, fmt.Errorf("namespaces[%d]: invalid containerd namespace %q", i, ns))
		case seen[ns]:
			errs = append(errs, fmt.Errorf("namespaces[%d]: %q listed twice", i, ns))
		}
		seen[ns] = true
	}
	if err := cfg.guard().Check(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Snapshot.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("snapshot.max_bytes: must not be negative, got %d", cfg.Snapshot.MaxBytes))
	}
	if cfg.Timeouts.API < 0 {
		errs = append(errs, fmt.Errorf("timeouts.api: must not be negative, got %s", cfg.Timeouts.API))
	}
	if cfg.Timeouts.Snapshot < 0 {
		errs = append(errs, fmt.Errorf("timeouts.snapshot: must not be negative, got %s", cfg.Timeouts.Snapshot))
	}
	if _, err := parseAllow(cfg.Quarantine.Allow); err != nil {
		errs = append(errs, err)
	}
	if cfg.Pause != PauseContainerd && cfg.Pause != PauseFreezer {
		errs = append(errs, fmt.Errorf("pause: want containerd or freezer, got %q", cfg.Pause))
	}
	return errors.Join(errs...)
}
