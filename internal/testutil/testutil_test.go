package testutil

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"
)

// TestEnsureTestImage builds (or finds) the busybox test image that every
// integration test runs; scripts call it to prepare a fresh machine.
func TestEnsureTestImage(t *testing.T) {
	cli := DockerClient(t)
	img, err := cli.ImageInspect(context.Background(), TestImage)
	if err != nil {
		t.Fatalf("test image missing after EnsureTestImage: %v", err)
	}
	if img.Config == nil || len(img.Config.Env) == 0 || img.Config.Env[0] != "PATH=/bin" {
		t.Errorf("image config %+v, want PATH=/bin", img.Config)
	}
}

func TestBusyboxRootfsTar(t *testing.T) {
	Integration(t) // needs only busybox-static, which .ci/run installs
	data, err := BusyboxRootfsTar()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"bin/busybox": false, "bin/sh": false, "etc/shadow": false, "tmp/": false}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := want[h.Name]; ok {
			want[h.Name] = true
		}
		if h.Name == "bin/sh" && (h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox") {
			t.Errorf("bin/sh is %v -> %q, want a link to busybox", h.Typeflag, h.Linkname)
		}
	}
	for name, ok := range want {
		if !ok {
			t.Errorf("rootfs lacks %s", name)
		}
	}
}
