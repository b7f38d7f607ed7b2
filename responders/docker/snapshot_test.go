package docker

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/testutil"
)

func sha256File(t *testing.T, name string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), int64(len(b))
}

// suspect starts a container that logs 50 lines and a line on stderr,
// drops a file and deletes another, then sleeps; it returns once the
// changes are made.
func suspect(t *testing.T, cli *client.Client, base string) string {
	t.Helper()
	id, _ := startContainer(t, cli, base, nil, "sh", "-c",
		`for i in $(seq 1 50); do echo "line $i"; done; echo oops >&2; echo secret > /tmp/dropped; rm /etc/shadow; touch /tmp/ready; exec sleep 3600`)
	waitReady(t, cli, id)
	return id
}

func removeImage(t *testing.T, cli *client.Client, ref string) {
	t.Cleanup(func() {
		if _, err := cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true}); err != nil {
			t.Logf("remove image %s: %v", ref, err)
		}
	})
}

func TestSnapshot(t *testing.T) {
	cli := testutil.DockerClient(t)
	r := testResponder(t, cli, nil)
	id := suspect(t, cli, "snap")

	res := mustRun(t, r, "container.snapshot", id[:12], actions.Params{"logs": 10, "commit": true})
	dir, _ := res.Detail["dir"].(string)
	if want := filepath.Join(r.Config().EvidenceDir, "inc-TestSnapshot", id[:12]); filepath.Dir(dir) != want {
		t.Fatalf("bundle in %s, want under %s", dir, want)
	}
	ref, _ := res.Detail["image"].(string)
	if ref != "" {
		removeImage(t, cli, ref)
	}

	// Every file the result lists is on disk with that hash and size, and
	// the result's SHA256 is the manifest's.
	var got []string
	for _, e := range res.Evidence {
		sum, n := sha256File(t, e.Path)
		if sum != e.SHA256 || n != e.Size {
			t.Errorf("%s: on disk %s/%d, result says %s/%d", e.Path, sum, n, e.SHA256, e.Size)
		}
		if filepath.Dir(e.Path) != dir {
			t.Errorf("%s is outside the bundle %s", e.Path, dir)
		}
		got = append(got, filepath.Base(e.Path))
	}
	sort.Strings(got)
	if want := []string{DiffFile, ExportFile, InspectFile, LogsFile, ManifestFile, TopFile}; !slices.Equal(got, want) {
		t.Fatalf("bundle files %q, want %q", got, want)
	}
	manifestSum, _ := sha256File(t, filepath.Join(dir, ManifestFile))
	if res.SHA256 != manifestSum {
		t.Fatalf("result sha256 %s, manifest.json hashes to %s", res.SHA256, manifestSum)
	}

	// The manifest's own list matches the disk, file by file.
	var m Manifest
	body, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 5 {
		t.Fatalf("manifest lists %d files, want 5: %+v", len(m.Files), m.Files)
	}
	for _, f := range m.Files {
		sum, n := sha256File(t, filepath.Join(dir, f.Name))
		if sum != f.SHA256 || n != f.Size || f.What == "" {
			t.Errorf("manifest %s: %s/%d, disk %s/%d", f.Name, f.SHA256, f.Size, sum, n)
		}
	}
	if m.Container.ID != id || m.Incident != "inc-TestSnapshot" || m.Actor != "test:TestSnapshot" || m.Image == nil || m.Image.Ref != ref ||
		m.Snapshot != filepath.Base(dir) || m.MaxBytes != 1<<30 || m.Finished.Before(m.Started) {
		t.Errorf("manifest header: %+v", m)
	}
	if sum, err := VerifyBundle(dir); err != nil || sum != res.SHA256 {
		t.Errorf("VerifyBundle: %s, %v", sum, err)
	}

	// Content: what the container did is in the evidence.
	var ins container.InspectResponse
	if b, _ := os.ReadFile(filepath.Join(dir, InspectFile)); json.Unmarshal(b, &ins) != nil || ins.ID != id {
		t.Errorf("inspect.json does not describe %s", id)
	}
	logs, _ := os.ReadFile(filepath.Join(dir, LogsFile))
	lines := strings.Split(strings.TrimSpace(string(logs)), "\n")
	// stdout and stderr are copied by separate goroutines in the daemon, so
	// where "oops" falls among the last lines varies; line 50 is always there.
	if len(lines) != 10 || !strings.Contains(string(logs), " line 50\n") || strings.Contains(string(logs), " line 39\n") {
		t.Errorf("logs.txt (want the last 10 lines, timestamped):\n%s", logs)
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(lines[0])[0]); err != nil {
		t.Errorf("log line %q has no timestamp", lines[0])
	}
	var diff []container.FilesystemChange
	if b, _ := os.ReadFile(filepath.Join(dir, DiffFile)); json.Unmarshal(b, &diff) != nil {
		t.Fatal("diff.json does not parse")
	}
	if !slices.Contains(diff, container.FilesystemChange{Kind: container.ChangeAdd, Path: "/tmp/dropped"}) ||
		!slices.Contains(diff, container.FilesystemChange{Kind: container.ChangeDelete, Path: "/etc/shadow"}) {
		t.Errorf("diff.json misses the dropped or deleted file: %+v", diff)
	}
	var top container.TopResponse
	if b, _ := os.ReadFile(filepath.Join(dir, TopFile)); json.Unmarshal(b, &top) != nil || !strings.Contains(strings.Join(slices.Concat(top.Processes...), " "), "sleep 3600") {
		t.Errorf("top.json misses the process: %+v", top)
	}
	tarFiles := readTar(t, filepath.Join(dir, ExportFile))
	if tarFiles["tmp/dropped"] != "secret\n" {
		t.Errorf("export.tar: tmp/dropped = %q", tarFiles["tmp/dropped"])
	}
	if _, ok := tarFiles["etc/shadow"]; ok {
		t.Error("export.tar holds /etc/shadow, which the container deleted")
	}
	if _, ok := tarFiles["bin/busybox"]; !ok {
		t.Error("export.tar has no bin/busybox: not the whole filesystem")
	}

	// The committed image exists and says where it comes from.
	img, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatalf("committed image %s: %v", ref, err)
	}
	if img.ID != m.Image.ID || img.Config.Labels["riposte.evidence.container"] != id || img.Config.Labels["riposte.evidence.snapshot"] != m.Snapshot {
		t.Errorf("image %s: id %s (manifest %s), labels %v", ref, img.ID, m.Image.ID, img.Config.Labels)
	}
	if !inspect(t, cli, id).State.Running || inspect(t, cli, id).State.Paused {
		t.Error("the snapshot left the container stopped or paused")
	}

	// A second snapshot is a new bundle; the first is untouched.
	res2 := mustRun(t, r, "container.snapshot", id, actions.Params{"export": false})
	if res2.Detail["dir"] == dir || res2.SHA256 == res.SHA256 {
		t.Fatalf("second snapshot overwrote the first: %v", res2.Detail["dir"])
	}
	// Default log lines (1000): all of stdout and the stderr line.
	logs, _ = os.ReadFile(filepath.Join(res2.Detail["dir"].(string), LogsFile))
	if n := strings.Count(string(logs), "\n"); n != 51 || !strings.Contains(string(logs), " oops\n") || !strings.Contains(string(logs), " line 1\n") {
		t.Errorf("logs.txt with the default tail has %d lines:\n%s", n, logs)
	}
	if sum, err := VerifyBundle(dir); err != nil || sum != res.SHA256 {
		t.Errorf("first bundle after the second snapshot: %v", err)
	}

	// Tampering is found.
	f, err := os.OpenFile(filepath.Join(dir, LogsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("forged line\n")
	f.Close()
	os.WriteFile(filepath.Join(dir, "planted.sh"), []byte("#!/bin/sh\n"), 0o600)
	_, err = VerifyBundle(dir)
	if err == nil || !strings.Contains(err.Error(), "logs.txt: size") || !strings.Contains(err.Error(), "files not in the manifest: planted.sh") {
		t.Errorf("VerifyBundle after tampering: %v", err)
	}
}

func readTar(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		body := ""
		if h.Typeflag == tar.TypeReg && h.Size < 1<<16 {
			b, _ := io.ReadAll(tr)
			body = string(b)
		}
		out[strings.TrimPrefix(h.Name, "/")] = body
	}
}

func TestSnapshotStates(t *testing.T) {
	cli := testutil.DockerClient(t)
	r := testResponder(t, cli, nil)
	tests := []struct {
		name    string
		prepare func(t *testing.T, id string)
		params  actions.Params
		files   []string
		skipped []string
		state   func(st *container.State) bool
	}{
		{name: "exited",
			prepare: func(t *testing.T, id string) { mustRun(t, r, "container.kill", id, nil) },
			files:   []string{DiffFile, ExportFile, InspectFile, LogsFile, ManifestFile},
			skipped: []string{TopFile},
			state:   func(st *container.State) bool { return !st.Running }},
		{name: "paused with commit",
			prepare: func(t *testing.T, id string) { mustRun(t, r, "container.pause", id, nil) },
			params:  actions.Params{"commit": "true"},
			files:   []string{DiffFile, ExportFile, InspectFile, LogsFile, ManifestFile, TopFile},
			state:   func(st *container.State) bool { return st.Running && st.Paused }},
		{name: "no logs no export",
			params:  actions.Params{"logs": 0, "export": false},
			files:   []string{DiffFile, InspectFile, ManifestFile, TopFile},
			skipped: []string{LogsFile, ExportFile},
			state:   func(st *container.State) bool { return st.Running && !st.Paused }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := suspect(t, cli, "snap-state")
			if tc.prepare != nil {
				tc.prepare(t, id)
			}
			res := mustRun(t, r, "container.snapshot", id, tc.params)
			if ref, ok := res.Detail["image"].(string); ok {
				removeImage(t, cli, ref)
			}
			var got []string
			for _, e := range res.Evidence {
				got = append(got, filepath.Base(e.Path))
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.files) {
				t.Errorf("files %q, want %q", got, tc.files)
			}
			var skipped []string
			parts, _ := res.Detail["skipped"].([]SkippedPart)
			for _, s := range parts {
				skipped = append(skipped, s.Name)
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped %v, want %q", res.Detail["skipped"], tc.skipped)
			}
			if sum, err := VerifyBundle(res.Detail["dir"].(string)); err != nil || sum != res.SHA256 {
				t.Errorf("VerifyBundle: %v", err)
			}
			if st := inspect(t, cli, id).State; !tc.state(st) {
				t.Errorf("container state changed by the snapshot: %+v", st)
			}
		})
	}
}

// The size cap stops the bundle: a clear error naming the cap and where it
// came from, no manifest anywhere, the partial files in a directory marked
// incomplete, and never more bytes on disk than the cap.
func TestSnapshotSizeCap(t *testing.T) {
	cli := testutil.DockerClient(t)
	id := suspect(t, cli, "snap-cap")
	tests := []struct {
		name    string
		cfgMax  ByteSize
		param   any
		wantCap string
		from    string
	}{
		{"parameter", 0, "64KiB", "size cap of 64KiB (65536 bytes", "from the max_bytes parameter"},
		{"config wins over a larger parameter", 48 << 10, "1GiB", "size cap of 48KiB (49152 bytes", "from snapshot.max_bytes in the docker config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testResponder(t, cli, func(c *Config) { c.Snapshot.MaxBytes = tc.cfgMax })
			res, err := run(t, r, "container.snapshot", id, actions.Params{"max_bytes": tc.param})
			if err == nil {
				t.Fatalf("want a size-cap error, got %q", res.Note)
			}
			for _, want := range []string{"snapshot container", tc.wantCap, tc.from, "export.tar", ".incomplete"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if actions.IsRetryable(err) || errors.Is(err, actions.ErrNotFound) {
				t.Errorf("error %q is classified retryable or not-found", err)
			}
			var manifests, incomplete []string
			var written int64
			filepath.WalkDir(r.Config().EvidenceDir, func(p string, d os.DirEntry, err error) error {
				switch {
				case err != nil:
					return err
				case d.Name() == ManifestFile:
					manifests = append(manifests, p)
				case d.IsDir() && strings.HasSuffix(p, ".incomplete"):
					incomplete = append(incomplete, p)
				case d.IsDir() && strings.HasSuffix(p, ".partial"):
					t.Errorf("left a .partial directory: %s", p)
				case !d.IsDir() && d.Name() != IncompleteFile:
					fi, _ := d.Info()
					written += fi.Size()
				}
				return nil
			})
			if len(manifests) != 0 {
				t.Errorf("a failed bundle has a manifest: %q", manifests)
			}
			if len(incomplete) != 1 {
				t.Fatalf("incomplete bundles: %q", incomplete)
			}
			note, err := os.ReadFile(filepath.Join(incomplete[0], IncompleteFile))
			if err != nil || !strings.Contains(string(note), "INCOMPLETE") || !strings.Contains(string(note), "size cap") {
				t.Errorf("INCOMPLETE file: %q, %v", note, err)
			}
			limit := int64(tc.cfgMax)
			if limit == 0 {
				limit = 64 << 10
			}
			if written > limit || written == 0 {
				t.Errorf("%d bytes on disk for a cap of %d", written, limit)
			}
			if _, err := VerifyBundle(incomplete[0]); err == nil {
				t.Error("VerifyBundle accepted an incomplete bundle")
			}
		})
	}
}
