package docker

import (
	"bytes"
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
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Bundle file names.
const (
	ManifestFile   = "manifest.json"
	InspectFile    = "inspect.json"
	LogsFile       = "logs.txt"
	TopFile        = "top.json"
	DiffFile       = "diff.json"
	ExportFile     = "export.tar"
	IncompleteFile = "INCOMPLETE" // only in a bundle that failed
)

// EvidenceImage is the repository snapshots commit containers to.
const EvidenceImage = "riposte/evidence"

const (
	snapshotIDForm   = "20060102T150405.000Z"
	partialSuffix    = ".partial"
	incompleteSuffix = ".incomplete"
)

// Manifest is manifest.json, the last file written to an evidence bundle.
// Its SHA-256 goes into the journal entry; it holds the SHA-256 and size of
// every other file, so the journal vouches for the whole bundle.
type Manifest struct {
	Version   int               `json:"version"`
	Snapshot  string            `json:"snapshot"` // id, also the bundle directory's name
	Container ManifestContainer `json:"container"`
	Incident  string            `json:"incident"`
	Alert     string            `json:"alert,omitempty"`
	Actor     string            `json:"actor,omitempty"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	MaxBytes  int64             `json:"max_bytes"`
	Files     []BundleFile      `json:"files"`
	Skipped   []SkippedPart     `json:"skipped,omitempty"`
	Image     *CommittedImage   `json:"image,omitempty"`
}

// ManifestContainer identifies the container a bundle was taken from.
type ManifestContainer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Image   string `json:"image"`
	ImageID string `json:"image_id"`
	State   string `json:"state"`
	Paused  bool   `json:"paused"`
}

// BundleFile is one file of a bundle, named relative to the bundle.
type BundleFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	What   string `json:"what"`
}

// SkippedPart is a part of the bundle that was not collected, and why.
type SkippedPart struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// CommittedImage is the image a snapshot committed the container to.
type CommittedImage struct {
	Ref string `json:"ref"`
	ID  string `json:"id"`
}

// errCap is what a write past the bundle's size cap returns.
var errCap = errors.New("evidence bundle size cap reached")

// bundle writes the files of one evidence bundle, hashing them as they are
// written and counting their bytes against the cap.
type bundle struct {
	dir         string
	limit, used int64
	files       []BundleFile
}

// write creates name in the bundle and fills it with fill; the file is
// fsynced before write returns.
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
	b.files = append(b.files, BundleFile{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n, What: what})
	return nil
}

type capWriter struct {
	w io.Writer
	b *bundle
	n int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	room := c.b.limit - c.b.used
	if int64(len(p)) > room {
		// Stop at the cap: write what fits, then refuse.
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
// <evidence>/<incident>/<short id>/<snapshot id>/. It is built in a
// ".partial" directory and renamed when manifest.json is written; a bundle
// that failed (size cap, daemon gone) is renamed ".incomplete" with an
// INCOMPLETE file saying why, and has no manifest.
func (r *Responder) snapshot(ctx context.Context, req actions.Request, c target) (actions.Result, error) {
	logLines, err := req.Params.Int("logs", int64(r.cfg.Snapshot.LogLines))
	if err != nil {
		return actions.Result{}, err
	}
	if logLines < 0 {
		return actions.Result{}, fmt.Errorf("parameter logs: want 0 or more lines, got %d", logLines)
	}
	export, err := req.Params.Bool("export", true)
	if err != nil {
		return actions.Result{}, err
	}
	commit, err := req.Params.Bool("commit", false)
	if err != nil {
		return actions.Result{}, err
	}
	limit, limitFrom := int64(r.cfg.Snapshot.MaxBytes), "snapshot.max_bytes in the docker config"
	if p, err := req.Params.Bytes("max_bytes", limit); err != nil {
		return actions.Result{}, err
	} else if p < limit {
		limit, limitFrom = p, "the max_bytes parameter"
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.Snapshot)
	defer cancel()

	started := time.Now().UTC()
	incident := actions.PathSegment(req.Incident, "manual")
	base := filepath.Join(r.cfg.EvidenceDir, incident, c.short())
	if err := os.MkdirAll(base, 0o750); err != nil {
		return actions.Result{}, fmt.Errorf("create evidence directory: %w", err)
	}
	snapID, partial, err := claimDir(base, started.Format(snapshotIDForm))
	if err != nil {
		return actions.Result{}, err
	}
	b := &bundle{dir: partial, limit: limit}
	m := Manifest{
		Version: 1, Snapshot: snapID, Incident: incident, Alert: req.Alert.ID, Actor: req.Actor,
		Started: started, MaxBytes: limit,
	}
	if err := r.collect(ctx, b, &m, c, int(logLines), export, commit); err != nil {
		return actions.Result{}, r.abandon(b, base, snapID, err, limit, limitFrom)
	}
	m.Finished = time.Now().UTC()
	m.Files = b.files
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return actions.Result{}, r.abandon(b, base, snapID, fmt.Errorf("encode manifest: %w", err), limit, limitFrom)
	}
	body = append(body, '\n')
	if err := b.write(ManifestFile, "this manifest", func(w io.Writer) error { _, err := w.Write(body); return err }); err != nil {
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
	manifestSum := b.files[len(b.files)-1].SHA256
	res := actions.Result{
		Note:   fmt.Sprintf("snapshot: %d files, %s, in %s", len(b.files), ByteSize(b.used), final),
		SHA256: manifestSum,
		Detail: map[string]any{"dir": final, "manifest": filepath.Join(final, ManifestFile), "bytes": b.used},
	}
	for _, f := range b.files {
		res.Evidence = append(res.Evidence, actions.Evidence{Path: filepath.Join(final, f.Name), SHA256: f.SHA256, Size: f.Size})
	}
	if len(m.Skipped) > 0 {
		res.Detail["skipped"] = m.Skipped
	}
	if m.Image != nil {
		res.Detail["image"] = m.Image.Ref
		res.Detail["image_id"] = m.Image.ID
	}
	return res, nil
}

// collect writes every part of the bundle except the manifest.
func (r *Responder) collect(ctx context.Context, b *bundle, m *Manifest, c target, logLines int, export, commit bool) error {
	// inspect, as the daemon said it, byte for byte.
	var info container.InspectResponse
	var raw []byte
	err := r.call(ctx, "inspect", r.cfg.Timeouts.API, func(ctx context.Context) error {
		var err error
		info, raw, err = r.api.ContainerInspectWithRaw(ctx, c.id, false)
		return err
	})
	if err != nil {
		return err
	}
	if info.ContainerJSONBase == nil {
		return errors.New("inspect: the daemon returned no container")
	}
	m.Container = ManifestContainer{ID: info.ID, Name: containerName(info), ImageID: info.Image}
	if info.Config != nil {
		m.Container.Image = info.Config.Image
	}
	if s := state(info); s != nil {
		m.Container.State, m.Container.Paused = s.Status, s.Paused
	}
	if err := b.write(InspectFile, "docker inspect", func(w io.Writer) error { _, err := w.Write(raw); return err }); err != nil {
		return err
	}

	if logLines == 0 {
		m.Skipped = append(m.Skipped, SkippedPart{LogsFile, "logs=0"})
	} else if err := r.collectLogs(ctx, b, m, c, info, logLines); err != nil {
		return err
	}

	if running(info) {
		var top container.TopResponse
		err := r.call(ctx, "top", r.cfg.Timeouts.API, func(ctx context.Context) error {
			var err error
			top, err = r.api.ContainerTop(ctx, c.id, nil)
			return err
		})
		if err != nil {
			if actions.IsRetryable(err) {
				return err
			}
			m.Skipped = append(m.Skipped, SkippedPart{TopFile, err.Error()})
		} else if err := b.writeJSON(TopFile, "docker top: process list", top); err != nil {
			return err
		}
	} else {
		m.Skipped = append(m.Skipped, SkippedPart{TopFile, "not running (" + stateNote(state(info)) + ")"})
	}

	var diff []container.FilesystemChange
	err = r.call(ctx, "diff", r.cfg.Timeouts.Snapshot, func(ctx context.Context) error {
		var err error
		diff, err = r.api.ContainerDiff(ctx, c.id)
		return err
	})
	if err != nil {
		return err
	}
	if diff == nil {
		diff = []container.FilesystemChange{}
	}
	if err := b.writeJSON(DiffFile, "docker diff: files changed since the container started (kind 0 modified, 1 added, 2 deleted)", diff); err != nil {
		return err
	}

	if export {
		err := b.write(ExportFile, "docker export: the container's filesystem", func(w io.Writer) error {
			rc, err := r.api.ContainerExport(ctx, c.id)
			if err != nil {
				return r.classify(ctx, "export", err)
			}
			defer rc.Close()
			if _, err := io.Copy(w, rc); err != nil {
				if errors.Is(err, errCap) {
					return err
				}
				return r.classify(ctx, "export", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		m.Skipped = append(m.Skipped, SkippedPart{ExportFile, "export=false"})
	}

	if commit {
		ref := EvidenceImage + ":" + c.short() + "-" + strings.ReplaceAll(m.Snapshot, ".", "-")
		var resp container.CommitResponse
		err := r.call(ctx, "commit", r.cfg.Timeouts.Snapshot, func(ctx context.Context) error {
			var err error
			resp, err = r.api.ContainerCommit(ctx, c.id, container.CommitOptions{
				Reference: ref,
				Comment:   "riposte evidence: incident " + m.Incident + ", snapshot " + m.Snapshot,
				Author:    "riposte",
				Pause:     true,
				Changes: []string{
					"LABEL riposte.evidence.container=" + c.id +
						" riposte.evidence.incident=" + m.Incident +
						" riposte.evidence.snapshot=" + m.Snapshot,
				},
			})
			return err
		})
		if err != nil {
			return err
		}
		m.Image = &CommittedImage{Ref: ref, ID: resp.ID}
	}
	return nil
}

func (r *Responder) collectLogs(ctx context.Context, b *bundle, m *Manifest, c target, info container.InspectResponse, lines int) error {
	rc, err := r.api.ContainerLogs(ctx, c.id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Timestamps: true, Tail: strconv.Itoa(lines),
	})
	if err != nil {
		err = r.classify(ctx, "logs", err)
		if actions.IsRetryable(err) {
			return err
		}
		// A logging driver that cannot be read back (none, syslog, ...).
		m.Skipped = append(m.Skipped, SkippedPart{LogsFile, err.Error()})
		return nil
	}
	defer rc.Close()
	tty := info.Config != nil && info.Config.Tty
	return b.write(LogsFile, fmt.Sprintf("docker logs --timestamps --tail %d (stdout and stderr)", lines), func(w io.Writer) error {
		var err error
		if tty {
			_, err = io.Copy(w, rc)
		} else {
			_, err = stdcopy.StdCopy(w, w, rc)
		}
		if err != nil && !errors.Is(err, errCap) {
			err = r.classify(ctx, "logs", err)
		}
		return err
	})
}

func (b *bundle) writeJSON(name, what string, v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return b.write(name, what, func(w io.Writer) error { _, err := w.Write(append(body, '\n')); return err })
}

// abandon marks a failed bundle: the partial directory is renamed
// <id>.incomplete and gets an INCOMPLETE file, written outside the cap,
// saying why. It returns the error to report.
func (r *Responder) abandon(b *bundle, base, snapID string, cause error, limit int64, limitFrom string) error {
	err := cause
	if errors.Is(cause, errCap) {
		err = fmt.Errorf("evidence bundle exceeds its size cap of %s (%d bytes, from %s): %w", ByteSize(limit), limit, limitFrom, cause)
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

// VerifyBundle checks a sealed evidence bundle: every file the manifest
// lists has its recorded size and SHA-256, and no other file is there. It
// returns the manifest's SHA-256, to compare with the journal's.
func VerifyBundle(dir string) (string, error) {
	body, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return "", fmt.Errorf("verify bundle %s: %w", dir, err)
	}
	sum := sha256.Sum256(body)
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return "", fmt.Errorf("verify bundle %s: read manifest: %w", dir, err)
	}
	listed := map[string]bool{ManifestFile: true}
	var errs []error
	for _, f := range m.Files {
		listed[f.Name] = true
		if f.Name == ManifestFile {
			continue
		}
		if f.Name != filepath.Base(f.Name) {
			errs = append(errs, fmt.Errorf("%s: not a plain file name", f.Name))
			continue
		}
		got, n, err := hashFile(filepath.Join(dir, f.Name))
		switch {
		case err != nil:
			errs = append(errs, err)
		case n != f.Size:
			errs = append(errs, fmt.Errorf("%s: size %d, manifest says %d", f.Name, n, f.Size))
		case got != f.SHA256:
			errs = append(errs, fmt.Errorf("%s: sha256 %s, manifest says %s", f.Name, got, f.SHA256))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("verify bundle %s: %w", dir, err)
	}
	var extra []string
	for _, e := range entries {
		if !listed[e.Name()] {
			extra = append(extra, e.Name())
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		errs = append(errs, fmt.Errorf("files not in the manifest: %s", strings.Join(extra, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("verify bundle %s: %w", dir, err)
	}
	return hex.EncodeToString(sum[:]), nil
}

func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
