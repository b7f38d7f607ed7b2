package containerdtest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	cerrdefs "github.com/containerd/errdefs"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// AddressEnv overrides the sockets Address tries.
const AddressEnv = "RIPOSTE_CONTAINERD_ADDRESS"

// Sockets are where containerd listens: its own service's socket, and the
// one dockerd gives the containerd it starts itself (Debian's docker.io
// started by hand, as CI does).
var Sockets = []string{"/run/containerd/containerd.sock", "/var/run/docker/containerd/containerd.sock"}

// ImageName is the name the test image is imported under.
const ImageName = "docker.io/riposte/test:1"

// Address returns the socket of a containerd that answers, failing (CI) or
// skipping the test when none does.
func Address(t testing.TB) string {
	t.Helper()
	testutil.Integration(t, testutil.Root)
	cands := Sockets
	if a := os.Getenv(AddressEnv); a != "" {
		cands = []string{a}
	}
	var why []string
	for _, a := range cands {
		if _, err := os.Stat(a); err != nil {
			why = append(why, err.Error())
			continue
		}
		cli, err := containerd.New(a, containerd.WithTimeout(5*time.Second))
		if err != nil {
			why = append(why, a+": "+err.Error())
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Version(ctx)
		cancel()
		cli.Close()
		if err != nil {
			why = append(why, a+": "+err.Error())
			continue
		}
		return a
	}
	testutil.SkipOrFail(t, "needs a running containerd (start dockerd, which starts one; or set "+AddressEnv+"): "+strings.Join(why, "; "))
	return ""
}

// Client connects to containerd; it is closed when t ends.
func Client(t testing.TB) *containerd.Client {
	t.Helper()
	cli, err := containerd.New(Address(t))
	if err != nil {
		t.Fatalf("containerd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Namespace creates a namespace of its own for t and returns its name and
// a context in it. When t ends, the image and the namespace are removed
// (containers are removed by the Run that made them, earlier).
func Namespace(t testing.TB, cli *containerd.Client) (string, context.Context) {
	t.Helper()
	ns := testutil.UniqueName("riposte-test")
	ctx := namespaces.WithNamespace(context.Background(), ns)
	if err := cli.NamespaceService().Create(ctx, ns, map[string]string{"riposte.test": "true"}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		imgs, err := cli.ImageService().List(ctx)
		if err != nil {
			t.Errorf("cleanup: list images in %s: %v", ns, err)
		}
		for _, i := range imgs {
			if err := cli.ImageService().Delete(ctx, i.Name, images.SynchronousDelete()); err != nil {
				t.Errorf("cleanup: delete image %s: %v", i.Name, err)
			}
		}
		// A process killed mid-snapshot leaves its lease (it would expire
		// in an hour), holding content and snapshots: release it.
		ls, err := cli.LeasesService().List(ctx)
		if err != nil {
			t.Errorf("cleanup: list leases in %s: %v", ns, err)
		}
		for _, l := range ls {
			if err := cli.LeasesService().Delete(ctx, l, leases.SynchronousDelete); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("cleanup: delete lease %s: %v", l.ID, err)
			}
		}
		// The garbage collector removes content and snapshots after the
		// image; the namespace can go once they have.
		testutil.Eventually(t, 20*time.Second, func() bool {
			err := cli.NamespaceService().Delete(ctx, ns)
			return err == nil || cerrdefs.IsNotFound(err)
		}, "delete namespace %s", ns)
	})
	return ns, ctx
}

// Image imports the busybox test image into ctx's namespace (an OCI
// archive built in memory: no registry, no dockerd) and unpacks it.
func Image(t testing.TB, cli *containerd.Client, ctx context.Context) containerd.Image {
	t.Helper()
	archive, err := OCIArchive(ImageName)
	if err != nil {
		t.Fatalf("build test image: %v", err)
	}
	imgs, err := cli.Import(ctx, bytes.NewReader(archive))
	if err != nil || len(imgs) != 1 {
		t.Fatalf("import test image: %v (%d images)", err, len(imgs))
	}
	img := containerd.NewImage(cli, imgs[0])
	if err := img.Unpack(ctx, ""); err != nil {
		t.Fatalf("unpack test image: %v", err)
	}
	return img
}

// OCIArchive returns an OCI image layout tar holding one image named name:
// testutil's busybox rootfs as its layer, PATH=/bin, for this machine's
// architecture.
func OCIArchive(name string) ([]byte, error) {
	layer, err := testutil.BusyboxRootfsTar()
	if err != nil {
		return nil, err
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	blobs := map[string][]byte{}
	add := func(mediaType string, body []byte) desc {
		sum := sha256.Sum256(body)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = body
		return desc{MediaType: mediaType, Digest: d, Size: len(body)}
	}
	layerDesc := add("application/vnd.oci.image.layer.v1.tar", layer)
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	})
	configDesc := add("application/vnd.oci.image.config.v1+json", config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": configDesc, "layers": []desc{layerDesc},
	})
	manifestDesc := add("application/vnd.oci.image.manifest.v1+json", manifest)
	manifestDesc.Annotations = map[string]string{images.AnnotationImageName: name}
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []desc{manifestDesc},
	})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if err := file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := file("index.json", index); err != nil {
		return nil, err
	}
	for d, body := range blobs {
		if err := file("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Run creates a container named id from img with labels and starts its
// task running cmd (default: sleep 3600); it returns once cmd runs (the
// init process has exec'd it). The task and the container, with its
// snapshot, are removed when t ends.
func Run(t testing.TB, cli *containerd.Client, ctx context.Context, img containerd.Image, id string, labels map[string]string, cmd ...string) (containerd.Container, containerd.Task) {
	t.Helper()
	return RunSpec(t, cli, ctx, img, id, labels, nil, cmd...)
}

// RunSpec is Run with more OCI spec options (host namespaces, ...).
func RunSpec(t testing.TB, cli *containerd.Client, ctx context.Context, img containerd.Image, id string, labels map[string]string, spec []oci.SpecOpts, cmd ...string) (containerd.Container, containerd.Task) {
	t.Helper()
	if len(cmd) == 0 {
		cmd = []string{"sleep", "3600"}
	}
	c, err := cli.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id+"-rootfs", img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(cmd...)}, spec...)...),
	)
	if err != nil {
		t.Fatalf("create container %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: delete container %s: %v", id, err)
		}
	})
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("create task %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if st, err := task.Status(ctx); err == nil && st.Status == containerd.Paused {
			_ = task.Resume(ctx)
		}
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: delete task %s: %v", id, err)
		}
	})
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task %s: %v", id, err)
	}
	want := strings.Join(cmd, "\x00") + "\x00"
	testutil.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", task.Pid()))
		return err == nil && string(b) == want
	}, "task %s to run %v", id, cmd)
	return c, task
}

// Exited reports whether the task has stopped (its init process is gone).
func Exited(ctx context.Context, task containerd.Task) bool {
	st, err := task.Status(ctx)
	if err != nil {
		return errors.Is(err, syscall.ESRCH) || cerrdefs.IsNotFound(err)
	}
	return st.Status == containerd.Stopped
}
