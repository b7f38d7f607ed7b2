package capture

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// Manifest is manifest.json, the last file of a capture directory: the
// SHA-256 and size of every other file and how the capture ended. Its own
// SHA-256 is Result.SHA256, which the journal records.
type Manifest struct {
	Version   int               `json:"version"`
	CaptureID string            `json:"capture_id"`
	Container capfile.Container `json:"container"`
	Incident  string            `json:"incident,omitempty"`
	Alert     string            `json:"alert,omitempty"`
	Rule      string            `json:"rule,omitempty"`
	Actor     string            `json:"actor,omitempty"`
	Hostname  string            `json:"hostname,omitempty"`
	Started   time.Time         `json:"started"`
	Ended     time.Time         `json:"ended"`
	Duration  time.Duration     `json:"duration_ns"`
	MaxBytes  int64             `json:"max_bytes"`
	Reason    string            `json:"reason"`
	Truncated bool              `json:"truncated"`
	Bytes     int64             `json:"bytes"` // the files' total, the manifest excluded
	Files     []ManifestFile    `json:"files"`
	Notes     []string          `json:"notes,omitempty"`
}

// ManifestFile is one file of a capture.
type ManifestFile struct {
	Name       string              `json:"name"`
	SHA256     string              `json:"sha256"`
	Size       int64               `json:"size"`
	Format     string              `json:"format"`
	Reason     string              `json:"reason,omitempty"`
	Truncated  bool                `json:"truncated"`
	Events     uint64              `json:"events,omitempty"`
	Lost       *capfile.Lost       `json:"lost,omitempty"`
	Packets    uint64              `json:"packets,omitempty"`
	NotWritten uint64              `json:"packets_not_written,omitempty"` // refused by the size cap
	Interfaces []ManifestInterface `json:"interfaces,omitempty"`
	Error      string              `json:"error,omitempty"`
}

// ManifestInterface is one interface of the network capture.
type ManifestInterface struct {
	Name          string   `json:"name"`
	MAC           string   `json:"mac,omitempty"`
	Addrs         []string `json:"addrs,omitempty"`
	LinkType      string   `json:"link_type"`
	Packets       uint64   `json:"packets"`        // written
	Received      uint64   `json:"received"`       // reached the socket (kernel count)
	KernelDropped uint64   `json:"kernel_dropped"` // socket buffer full (kernel count)
	Error         string   `json:"error,omitempty"`
}

// seal writes the manifest and builds the final result.
func (s *session) seal(sys sysSummary, nets netSummary) (actions.Result, error) {
	m := Manifest{Version: 1, CaptureID: s.id, Container: s.header.Container, Incident: s.req.Incident, Alert: s.req.Alert.ID,
		Rule: s.req.Alert.Rule, Actor: s.req.Actor, Hostname: s.c.hostname, Started: s.started, Ended: time.Now().UTC(),
		Duration: s.p.duration, MaxBytes: s.p.maxBytes, Reason: s.reason, Notes: s.notes}
	var evidence []actions.Evidence
	var errs []string
	if s.sysw != nil {
		f := ManifestFile{Name: SyscallsFile, SHA256: sys.evidence.SHA256, Size: sys.evidence.Size, Format: fmt.Sprintf("%s v%d (gzip, JSON lines)", capfile.Format, capfile.Version),
			Reason: sys.reason, Truncated: sys.truncated, Events: sys.events}
		if sys.lost != (capfile.Lost{}) {
			f.Lost = &sys.lost
		}
		if sys.err != nil {
			f.Error = sys.err.Error()
			errs = append(errs, "syscalls: "+f.Error)
		}
		m.Files = append(m.Files, f)
		evidence = append(evidence, sys.evidence)
		m.Truncated = m.Truncated || sys.truncated
	}
	if s.pcap != nil {
		f := ManifestFile{Name: NetworkFile, SHA256: nets.evidence.SHA256, Size: nets.evidence.Size, Format: "pcapng",
			Reason: s.reason, Truncated: nets.truncated, Packets: nets.packets, NotWritten: nets.notWritten, Interfaces: nets.ifaces}
		if nets.err != nil {
			f.Error = nets.err.Error()
			f.Reason = capfile.ReasonError
			errs = append(errs, "network: "+f.Error)
		}
		m.Files = append(m.Files, f)
		evidence = append(evidence, nets.evidence)
		m.Truncated = m.Truncated || nets.truncated
	}
	for _, f := range m.Files {
		m.Bytes += f.Size
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	body = append(body, '\n')
	mf, err := createEvidence(s.dir, ManifestName)
	if err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	if _, err := mf.Write(body); err != nil {
		mf.f.Close()
		return actions.Result{}, fmt.Errorf("seal capture %s: write manifest: %w", s.id, err)
	}
	mev, err := mf.seal()
	if err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	evidence = append(evidence, mev)

	parts := []string{}
	if s.sysw != nil {
		parts = append(parts, fmt.Sprintf("%d events", sys.events))
	}
	if s.pcap != nil {
		parts = append(parts, fmt.Sprintf("%d packets", nets.packets))
	}
	note := fmt.Sprintf("capture of %s ended (%s): %s, %s, in %s", s.containerLabel(), s.reason, strings.Join(parts, ", "), humanBytes(m.Bytes), s.dir)
	if m.Truncated {
		note += "; truncated at max_bytes"
	}
	if len(errs) > 0 {
		note += "; errors: " + strings.Join(errs, "; ")
	}
	d := map[string]any{"capture_id": s.id, "dir": s.dir, "manifest": mev.Path, "reason": s.reason, "truncated": m.Truncated,
		"bytes": m.Bytes, "container_id": s.info.ID, "container_name": s.name}
	if s.sysw != nil {
		d["events"] = sys.events
		d["lost"] = sys.lost
	}
	if s.pcap != nil {
		d["packets"] = nets.packets
	}
	if len(s.notes) > 0 {
		d["notes"] = s.notes
	}
	return actions.Result{Note: note, SHA256: mev.SHA256, Evidence: evidence, Detail: d}, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// budget is the size cap shared by a capture's files.
type budget struct {
	mu          sync.Mutex
	used, limit int64
}

// take reserves n bytes; false when they do not fit.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

// give returns n reserved bytes that were not used.
func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// force counts n bytes already written.
func (b *budget) force(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// evidenceFile is a file of a capture, hashed as it is written.
type evidenceFile struct {
	f    *os.File
	h    hash.Hash
	n    int64
	path string
}

func createEvidence(dir, name string) (*evidenceFile, error) {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	return &evidenceFile{f: f, h: sha256.New(), path: p}, nil
}

func (e *evidenceFile) Write(p []byte) (int, error) {
	n, err := e.f.Write(p)
	e.h.Write(p[:n])
	e.n += int64(n)
	return n, err
}

// seal fsyncs and closes the file and returns its hash.
func (e *evidenceFile) seal() (actions.Evidence, error) {
	ev := actions.Evidence{Path: e.path, SHA256: hex.EncodeToString(e.h.Sum(nil)), Size: e.n}
	err := e.f.Sync()
	if cerr := e.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ev, fmt.Errorf("close %s: %w", filepath.Base(e.path), err)
	}
	return ev, nil
}

// syncDir makes the files created in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
