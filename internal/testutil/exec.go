package testutil

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// CopyFile writes content to file (an absolute path) in container id with
// mode, through the API's archive upload: no process runs in the container
// (a shell exec'd there would be one more thing for detectors to see).
func CopyFile(t testing.TB, cli *client.Client, id, file string, mode int64, content []byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: path.Base(file), Mode: mode, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cli.CopyToContainer(ctx, id, path.Dir(file), &buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("copy %s into container %s: %v", file, id, err)
	}
}

// ExecCode runs cmd in container id like `docker exec` and returns its
// exit code (128+n when signal n ended it). It gives up, failing t, after
// 30s: an exec in a container another test paused never ends, and the
// attached stream does not heed its context.
func ExecCode(t testing.TB, cli *client.Client, id string, cmd ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, id, err)
	}
	resp, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %v in %s: attach: %v", cmd, id, err)
	}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, resp.Reader); close(copied) }()
	select {
	case <-copied:
	case <-ctx.Done():
	}
	resp.Close()
	var in container.ExecInspect
	Eventually(t, 10*time.Second, func() bool {
		in, err = cli.ContainerExecInspect(context.Background(), ex.ID)
		return err == nil && !in.Running
	}, "exec %v in %s did not end", cmd, id)
	return in.ExitCode
}
