package testutil

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// TestImage is the image every integration test runs: busybox-static and its
// applet links, imported from a tar since no registry is reachable.
const TestImage = "riposte-test:1"

// DockerClient returns a client for the local daemon (API version
// negotiated), closed when t ends. It calls Integration first.
func DockerClient(t testing.TB) *client.Client {
	t.Helper()
	Integration(t, Root, Docker)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	EnsureTestImage(t, cli)
	return cli
}

// EnsureTestImage imports TestImage when the daemon does not have it.
func EnsureTestImage(t testing.TB, cli *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, TestImage); err == nil {
		return
	}
	rootfs, err := BusyboxRootfsTar()
	if err != nil {
		t.Fatalf("build test image: %v", err)
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, TestImage,
		image.ImportOptions{Changes: []string{"ENV PATH=/bin", `CMD ["/bin/sh"]`}})
	if err != nil {
		t.Fatalf("import test image: %v", err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("import test image: %v", err)
	}
}

// BusyboxRootfsTar returns a tar of a minimal root filesystem: the
// busybox-static binary, a link per applet, /etc/passwd, /etc/shadow,
// /etc/group and /tmp.
func BusyboxRootfsTar() ([]byte, error) {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("find busybox (apt-get install busybox-static): %w", err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"bin/", "etc/", "root/", "proc/", "sys/", "dev/"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp/", 0o1777); err != nil {
		return nil, err
	}
	if err := file("bin/busybox", 0o755, data); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return nil, err
	}
	if err := file("etc/shadow", 0o640, []byte("root:*:19000:0:99999:7:::\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UniqueName returns base with a random suffix ("det-shadow-3fa2c1"). Every
// package's tests, and every checkout's, share one Docker daemon: a fixed
// container name would let one test's setup remove or act on another's
// container.
func UniqueName(base string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return base + "-" + hex.EncodeToString(b)
}

// RunContainer starts a container from TestImage running cmd (default:
// sleep 3600) and removes it when t ends. It returns the full id. name
// should come from UniqueName; a container of that name that this test did
// not create is left alone and makes the create fail.
func RunContainer(t testing.TB, cli *client.Client, name string, labels map[string]string, cmd ...string) string {
	t.Helper()
	if len(cmd) == 0 {
		cmd = []string{"sleep", "3600"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: TestImage, Cmd: cmd, Labels: labels}, nil, nil, nil, name)
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Logf("remove container %s: %v", name, err)
		}
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
	return created.ID
}
