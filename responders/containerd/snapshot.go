package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/rootfs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/docker"
)

// Bundle file names. The manifest is docker.Manifest, so that one
// verifier (docker.VerifyBundle) checks every bundle riposte writes.
const (
	ManifestFile   = docker.ManifestFile
	ContainerFile  = "container.json"
	SpecFile       = "spec.json"
	ProcessesFile  = "processes.json"
	DiffFile       = "rootfs-diff.tar"
	IncompleteFile = docker.IncompleteFile
)

const (
	snapshotIDForm   = "20060102T150405.000Z"
	partialSuffix    = ".partial"
	incompleteSuffix = ".incomplete"
)

// Record is container.json: containerd's record of the container, its
// labels included (the OCI spec is spec.json).
type Record struct {
	Namespace   string            `json:"namespace"`
	ID          string            `json:"id"`
	Name        string            `json:"name,omitempty"`
	Image       string            `json:"image"`
	Labels      map[string]string `json:"labels"`
	Runtime     string            `json:"runtime"`
	Snapshotter string            `json:"snapshotter"`
	SnapshotKey string            `json:"snapshot_key"`
	SandboxID   string            `json:"sandbox_id,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Task        *TaskState        `json:"task,omitempty"`
}

// TaskState is the container's task as containerd reported it.
type TaskState struct {
	Pid    uint32 `json:"pid"`
	Status string `json:"status"`
	Cgroup string `json:"cgroup,omitempty"`
}

// Process is one entry of processes.json, read from the host's /proc.
type Process struct {
	Pid     int      `json:"pid"`
	PPid    int      `json:"ppid,omitempty"`
	State   string   `json:"state,omitempty"`
	UID     string   `json:"uid,omitempty"`
	Comm    string   `json:"comm,omitempty"`
	Cmdline []string `json:"cmdline,omitempty"`
	Exe     string   `json:"exe,omitempty"`
	Error   string   `json:"error,omitempty"` // what could not be read (exited meanwhile)
}

var errCap = errors.New("evidence bundle size cap reached")

// bundle writes the files of one evidence bundle, hashing them and
// counting their bytes against the cap.
type bundle struct {
	dir         string
	limit, used int64
	files       []docker.BundleFile
}

func (b *bundle) write(name, what string, fill func(w io.Writer) error) error {
	f, err := os.OpenFile(filepath.Join(b.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	h := sha256.New()
	cw := &capWriter{w: io.MultiWriter(f, h), b: b}
	ferr := fill(cw)
	if ferr == nil {
		ferr = f.Sync()
	}
	if cerr := f.Close(); ferr == nil {
		ferr = cerr
	}
	if ferr != nil {
		return fmt.Errorf("write %s: %w", name, ferr)
	}
	b.files = append(b.files, docker.BundleFile{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n, What: what})
	return nil
}

func (b *bundle) writeJSON(name, what string, v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return b.write(name, what, func(w io.Writer) error { _, err := w.Write(append(body, '\n')); return err })
}

type capWriter struct {
	w io.Writer
	b *bundle
	n int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	room := c.b.limit - c.b.used
	if int64(len(p)) > room {
		n, _ := c.w.Write(p[:room])
		c.b.used += int64(n)
		c.n += int64(n)
		return n, errCap
	}
	n, err := c.w.Write(p)
	c.b.used += int64(n)
	c.n += int64(n)
	return n, err
}

// snapshot collects an evidence bundle in
// <evidence>/<incident>/<short id>/<snapshot id>/, built in a ".partial"
// directory and renamed once manifest.json is on disk; a failed one is
// renamed ".incomplete" with an INCOMPLETE file saying why.
func (r *Responder) snapshot(ctx context.Context, req actions.Request, t target) (actions.Result, error) {
	withDiff, err := req.Params.Bool("diff", true)
	if err != nil {
		return actions.Result{}, err
	}
	limit, limitFrom := int64(r.cfg.Snapshot.MaxBytes), "snapshot.max_bytes in the containerd config"
	if p, err := req.Params.Bytes("max_bytes", limit); err != nil {
		return actions.Result{}, err
	} else if p < limit {
		limit, limitFrom = p, "the max_bytes parameter"
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.Snapshot)
	defer cancel()

	started := time.Now().UTC()
	incident := actions.PathSegment(req.Incident, "manual")
	short := t.ID
	if len(short) > 12 {
		short = short[:12]
	}
	base := filepath.Join(r.cfg.EvidenceDir, incident, actions.PathSegment(short, "container"))
	if err := os.MkdirAll(base, 0o750); err != nil {
		return actions.Result{}, fmt.Errorf("create evidence directory: %w", err)
	}
	snapID, partial, err := claimDir(base, started.Format(snapshotIDForm))
	if err != nil {
		return actions.Result{}, err
	}
	b := &bundle{dir: partial, limit: limit}
	m := docker.Manifest{Version: 1, Snapshot: snapID, Incident: incident, Alert: req.Alert.ID, Actor: req.Actor, Started: started, MaxBytes: limit}
	if err := r.collect(ctx, b, &m, t, withDiff); err != nil {
		return actions.Result{}, r.abandon(b, base, snapID, err, limit, limitFrom)
	}
	m.Finished = time.Now().UTC()
	m.Files = b.files
	if err := b.writeJSON(ManifestFile, "this manifest", m); err != nil {
		return actions.Result{}, r.abandon(b, base, snapID, err, limit, limitFrom)
	}
	final := filepath.Join(base, snapID)
	if err := syncDir(partial); err != nil {
		return actions.Result{}, r.abandon(b, base, snapID, err, limit, limitFrom)
	}
	if err := os.Rename(partial, final); err != nil {
		return actions.Result{}, r.abandon(b, base, snapID, fmt.Errorf("seal bundle: %w", err), limit, limitFrom)
	}
	if err := syncDir(base); err != nil {
		return actions.Result{}, err
	}
	res := actions.Result{
		Note:   fmt.Sprintf("snapshot: %d files, %s, in %s", len(b.files), actions.ByteSize(b.used), final),
		SHA256: b.files[len(b.files)-1].SHA256,
		Detail: map[string]any{"dir": final, "manifest": filepath.Join(final, ManifestFile), "bytes": b.used},
	}
	for _, f := range b.files {
		res.Evidence = append(res.Evidence, actions.Evidence{Path: filepath.Join(final, f.Name), SHA256: f.SHA256, Size: f.Size})
	}
	if len(m.Skipped) > 0 {
		res.Detail["skipped"] = m.Skipped
	}
	return res, nil
}

// collect writes every part of the bundle except the manifest.
func (r *Responder) collect(ctx context.Context, b *bundle, m *docker.Manifest, t target, withDiff bool) error {
	rec := Record{
		Namespace: t.Namespace, ID: t.ID, Name: t.Name, Image: t.Image, Labels: t.Labels,
		Runtime: t.info.Runtime.Name, Snapshotter: t.info.Snapshotter, SnapshotKey: t.info.SnapshotKey,
		SandboxID: t.info.SandboxID, CreatedAt: t.info.CreatedAt, UpdatedAt: t.info.UpdatedAt,
	}
	m.Container = docker.ManifestContainer{ID: t.ID, Name: t.Name, Image: t.Image, State: "no task"}
	var task containerd.Task
	if tk, err := call(r, ctx, "load task", func(cctx context.Context) (containerd.Task, error) { return t.c.Task(cctx, nil) }); err == nil {
		task = tk
		st, err := call(r, ctx, "task status", func(cctx context.Context) (containerd.Status, error) { return tk.Status(cctx) })
		if err != nil {
			return err
		}
		rec.Task = &TaskState{Pid: tk.Pid(), Status: string(st.Status)}
		if t.Running() {
			rec.Task.Cgroup = t.Cgroup.String()
		}
		m.Container.State, m.Container.Paused = string(st.Status), st.Status == containerd.Paused
	} else if actions.IsRetryable(err) {
		return err
	}
	if img, err := call(r, ctx, "read image", func(cctx context.Context) (containerd.Image, error) { return t.c.Image(cctx) }); err == nil {
		m.Container.ImageID = img.Target().Digest.String()
	}
	if err := b.writeJSON(ContainerFile, "containerd's record of the container, with its labels", rec); err != nil {
		return err
	}
	spec, err := call(r, ctx, "read spec", func(cctx context.Context) (*oci.Spec, error) { return t.c.Spec(cctx) })
	if err != nil {
		return err
	}
	if err := b.writeJSON(SpecFile, "the container's OCI runtime spec", spec); err != nil {
		return err
	}

	if task != nil && t.Running() {
		pids, err := call(r, ctx, "list processes", func(cctx context.Context) ([]containerd.ProcessInfo, error) { return task.Pids(cctx) })
		if err != nil {
			return err
		}
		procs := make([]Process, 0, len(pids))
		for _, p := range pids {
			procs = append(procs, readProcess(r.proc, int(p.Pid)))
		}
		if err := b.writeJSON(ProcessesFile, "the task's processes (containerd's pid list, details from the host's /proc)", procs); err != nil {
			return err
		}
	} else {
		m.Skipped = append(m.Skipped, docker.SkippedPart{Name: ProcessesFile, Reason: "not running (" + m.Container.State + ")"})
	}

	if !withDiff {
		m.Skipped = append(m.Skipped, docker.SkippedPart{Name: DiffFile, Reason: "diff=false"})
		return nil
	}
	if t.info.SnapshotKey == "" || t.info.Snapshotter == "" {
		m.Skipped = append(m.Skipped, docker.SkippedPart{Name: DiffFile, Reason: "the container has no rootfs snapshot"})
		return nil
	}
	// The diff is computed by containerd into its content store, under a
	// lease of its own so that the garbage collector takes it afterwards.
	// Deleting the lease synchronously frees the diff's blob at once (a
	// large diff would otherwise wait for the next collection).
	ls := r.cli.LeasesService()
	lease, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Hour))
	if err != nil {
		return r.classify(ctx, "take a lease for the rootfs diff", err)
	}
	lctx := leases.WithLease(ctx, lease.ID)
	defer func() {
		if err := ls.Delete(context.WithoutCancel(ctx), lease, leases.SynchronousDelete); err != nil {
			r.log.Warn("release the rootfs diff's lease", "lease", lease.ID, "err", err)
		}
	}()
	desc, err := rootfs.CreateDiff(lctx, t.info.SnapshotKey, r.cli.SnapshotService(t.info.Snapshotter), r.cli.DiffService(),
		diff.WithMediaType(ocispec.MediaTypeImageLayer), diff.WithReference("riposte-snapshot-"+m.Snapshot))
	if err != nil {
		return r.classify(ctx, "compute the rootfs diff", err)
	}
	return b.write(DiffFile, "files changed in the container's rootfs since it was created (an OCI layer: uncompressed tar, deletions as .wh. whiteouts)", func(w io.Writer) error {
		ra, err := r.cli.ContentStore().ReaderAt(lctx, desc)
		if err != nil {
			return r.classify(ctx, "read the rootfs diff", err)
		}
		defer ra.Close()
		if _, err := io.Copy(w, content.NewReader(ra)); err != nil {
			if errors.Is(err, errCap) {
				return err
			}
			return r.classify(ctx, "read the rootfs diff", err)
		}
		return nil
	})
}

// readProcess reads what /proc says about pid; what it cannot read (the
// process exited) is noted in Error.
func readProcess(procRoot string, pid int) Process {
	p := Process{Pid: pid}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		p.Error = err.Error()
		return p
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			p.Comm = v
		case "State":
			p.State = v
		case "PPid":
			p.PPid, _ = strconv.Atoi(v)
		case "Uid":
			p.UID, _, _ = strings.Cut(v, "\t")
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Cmdline = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	return p
}

// abandon marks a failed bundle: renamed <id>.incomplete, with an
// INCOMPLETE file (outside the cap) saying why. It returns the error to
// report.
func (r *Responder) abandon(b *bundle, base, snapID string, cause error, limit int64, limitFrom string) error {
	err := cause
	if errors.Is(cause, errCap) {
		err = fmt.Errorf("evidence bundle exceeds its size cap of %s (%d bytes, from %s): %w", actions.ByteSize(limit), limit, limitFrom, cause)
	}
	dest := filepath.Join(base, snapID+incompleteSuffix)
	note := fmt.Sprintf("This bundle is INCOMPLETE and has no manifest: %v\nFiles written before the failure: %d, %d bytes.\n", err, len(b.files), b.used)
	if werr := os.WriteFile(filepath.Join(b.dir, IncompleteFile), []byte(note), 0o640); werr != nil {
		r.log.Warn("cannot mark evidence bundle incomplete", "dir", b.dir, "err", werr)
	}
	if rerr := os.Rename(b.dir, dest); rerr != nil {
		r.log.Warn("cannot rename incomplete evidence bundle", "dir", b.dir, "err", rerr)
		dest = b.dir
	}
	_ = syncDir(base)
	if actions.IsRetryable(cause) {
		return actions.Retryable(fmt.Errorf("%w; partial bundle left in %s", err, dest))
	}
	return fmt.Errorf("%w; partial bundle left in %s", err, dest)
}

// claimDir creates base/<id>.partial exclusively, adding -2, -3... to id
// when a snapshot of the same millisecond exists.
func claimDir(base, id string) (string, string, error) {
	for i := 1; i < 100; i++ {
		cand := id
		if i > 1 {
			cand = fmt.Sprintf("%s-%d", id, i)
		}
		if _, err := os.Stat(filepath.Join(base, cand)); err == nil {
			continue
		}
		dir := filepath.Join(base, cand+partialSuffix)
		err := os.Mkdir(dir, 0o750)
		if err == nil {
			return cand, dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", "", fmt.Errorf("create evidence directory: %w", err)
		}
	}
	return "", "", fmt.Errorf("create evidence directory: too many snapshots named %s in %s", id, base)
}

// syncDir makes a rename in dir durable.
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
