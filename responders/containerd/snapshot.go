package containerd

import (
	"context"
	"errors"
	"io"
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
	"github.com/riposte-sec/riposte/internal/evidence"
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

const snapshotIDForm = "20060102T150405.000Z"

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
	b, err := evidence.Create(base, started.Format(snapshotIDForm), limit)
	if err != nil {
		return actions.Result{}, err
	}
	m := docker.Manifest{Version: 1, Snapshot: b.ID(), Incident: incident, Alert: req.Alert.ID, Actor: req.Actor, Started: started, MaxBytes: limit}
	if err := r.collect(ctx, b, &m, t, withDiff); err != nil {
		return actions.Result{}, b.Fail(err, limitFrom)
	}
	m.Finished = time.Now().UTC()
	m.Files, m.Skipped = b.Files(), b.Skipped()
	sealed, err := b.Seal(m)
	if err != nil {
		return actions.Result{}, err
	}
	return sealed.Result("snapshot", m.Skipped), nil
}

// collect writes every part of the bundle except the manifest.
func (r *Responder) collect(ctx context.Context, b *evidence.Bundle, m *docker.Manifest, t target, withDiff bool) error {
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
	if err := b.WriteJSON(ContainerFile, "containerd's record of the container, with its labels", rec); err != nil {
		return err
	}
	spec, err := call(r, ctx, "read spec", func(cctx context.Context) (*oci.Spec, error) { return t.c.Spec(cctx) })
	if err != nil {
		return err
	}
	if err := b.WriteJSON(SpecFile, "the container's OCI runtime spec", spec); err != nil {
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
		if err := b.WriteJSON(ProcessesFile, "the task's processes (containerd's pid list, details from the host's /proc)", procs); err != nil {
			return err
		}
	} else {
		b.Skip(ProcessesFile, "not running ("+m.Container.State+")")
	}

	if !withDiff {
		b.Skip(DiffFile, "diff=false")
		return nil
	}
	if t.info.SnapshotKey == "" || t.info.Snapshotter == "" {
		b.Skip(DiffFile, "the container has no rootfs snapshot")
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
	return b.Write(DiffFile, "files changed in the container's rootfs since it was created (an OCI layer: uncompressed tar, deletions as .wh. whiteouts)", func(w io.Writer) error {
		ra, err := r.cli.ContentStore().ReaderAt(lctx, desc)
		if err != nil {
			return r.classify(ctx, "read the rootfs diff", err)
		}
		defer ra.Close()
		if _, err := io.Copy(w, content.NewReader(ra)); err != nil {
			if errors.Is(err, evidence.ErrCap) {
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
