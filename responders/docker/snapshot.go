package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/evidence"
)

// Bundle file names.
const (
	ManifestFile   = evidence.ManifestFile
	InspectFile    = "inspect.json"
	LogsFile       = "logs.txt"
	TopFile        = "top.json"
	DiffFile       = "diff.json"
	ExportFile     = "export.tar"
	IncompleteFile = evidence.IncompleteFile // only in a bundle that failed
)

// EvidenceImage is the repository snapshots commit containers to.
const EvidenceImage = "riposte/evidence"

const snapshotIDForm = "20060102T150405.000Z"

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
type BundleFile = evidence.File

// SkippedPart is a part of the bundle that was not collected, and why.
type SkippedPart = evidence.Skipped

// CommittedImage is the image a snapshot committed the container to.
type CommittedImage struct {
	Ref string `json:"ref"`
	ID  string `json:"id"`
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
	b, err := evidence.Create(filepath.Join(r.cfg.EvidenceDir, incident, c.short()), started.Format(snapshotIDForm), limit)
	if err != nil {
		return actions.Result{}, err
	}
	m := Manifest{
		Version: 1, Snapshot: b.ID(), Incident: incident, Alert: req.Alert.ID, Actor: req.Actor,
		Started: started, MaxBytes: limit,
	}
	if err := r.collect(ctx, b, &m, c, int(logLines), export, commit); err != nil {
		return actions.Result{}, b.Fail(err, limitFrom)
	}
	m.Finished = time.Now().UTC()
	m.Files, m.Skipped = b.Files(), b.Skipped()
	sealed, err := b.Seal(m)
	if err != nil {
		return actions.Result{}, err
	}
	res := sealed.Result("snapshot", m.Skipped)
	if m.Image != nil {
		res.Detail["image"] = m.Image.Ref
		res.Detail["image_id"] = m.Image.ID
	}
	return res, nil
}

// collect writes every part of the bundle except the manifest.
func (r *Responder) collect(ctx context.Context, b *evidence.Bundle, m *Manifest, c target, logLines int, export, commit bool) error {
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
	if err := b.Write(InspectFile, "docker inspect", func(w io.Writer) error { _, err := w.Write(raw); return err }); err != nil {
		return err
	}

	if logLines == 0 {
		b.Skip(LogsFile, "logs=0")
	} else if err := r.collectLogs(ctx, b, c, info, logLines); err != nil {
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
			b.Skip(TopFile, err.Error())
		} else if err := b.WriteJSON(TopFile, "docker top: process list", top); err != nil {
			return err
		}
	} else {
		b.Skip(TopFile, "not running ("+stateNote(state(info))+")")
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
	if err := b.WriteJSON(DiffFile, "docker diff: files changed since the container started (kind 0 modified, 1 added, 2 deleted)", diff); err != nil {
		return err
	}

	if export {
		err := b.Write(ExportFile, "docker export: the container's filesystem", func(w io.Writer) error {
			rc, err := r.api.ContainerExport(ctx, c.id)
			if err != nil {
				return r.classify(ctx, "export", err)
			}
			defer rc.Close()
			if _, err := io.Copy(w, rc); err != nil {
				if errors.Is(err, evidence.ErrCap) {
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
		b.Skip(ExportFile, "export=false")
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

func (r *Responder) collectLogs(ctx context.Context, b *evidence.Bundle, c target, info container.InspectResponse, lines int) error {
	rc, err := r.api.ContainerLogs(ctx, c.id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Timestamps: true, Tail: strconv.Itoa(lines),
	})
	if err != nil {
		err = r.classify(ctx, "logs", err)
		if actions.IsRetryable(err) {
			return err
		}
		// A logging driver that cannot be read back (none, syslog, ...).
		b.Skip(LogsFile, err.Error())
		return nil
	}
	defer rc.Close()
	tty := info.Config != nil && info.Config.Tty
	return b.Write(LogsFile, fmt.Sprintf("docker logs --timestamps --tail %d (stdout and stderr)", lines), func(w io.Writer) error {
		var err error
		if tty {
			_, err = io.Copy(w, rc)
		} else {
			_, err = stdcopy.StdCopy(w, w, rc)
		}
		if err != nil && !errors.Is(err, evidence.ErrCap) {
			err = r.classify(ctx, "logs", err)
		}
		return err
	})
}

// VerifyBundle checks a sealed evidence bundle written by this responder
// or the containerd one (same manifest): the manifest is one riposte
// writes, every file it lists has its recorded size and SHA-256, and no
// other file is there. It returns the manifest's SHA-256, to compare with
// the journal's.
func VerifyBundle(dir string) (string, error) {
	body, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return "", fmt.Errorf("verify bundle %s: %w", dir, err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return "", fmt.Errorf("verify bundle %s: read manifest: %w", dir, err)
	}
	return evidence.Verify(dir)
}
