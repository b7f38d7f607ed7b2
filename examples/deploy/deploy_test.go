// Package deploy holds riposte's deployment files (Dockerfile, systemd
// unit, their config); this test loads each of them.
package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/playbooks"
)

func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("riposte.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections := map[string]map[string]string{}
	var cur string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = strings.Trim(line, "[]")
			sections[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == "" {
				t.Fatalf("riposte.service:%d: not key=value in a section: %q", n, line)
			}
			sections[cur][k] = v
		}
	}
	want := map[string][]string{
		"Unit":    {"Description", "After"},
		"Service": {"ExecStart", "Restart", "KillSignal", "TimeoutStopSec", "StateDirectory", "LimitMEMLOCK"},
		"Install": {"WantedBy"},
	}
	for sec, keys := range want {
		for _, k := range keys {
			if sections[sec][k] == "" {
				t.Errorf("[%s] %s missing", sec, k)
			}
		}
	}
	if exec := sections["Service"]["ExecStart"]; !strings.Contains(exec, "serve --config /etc/riposte/riposte.yaml --data /var/lib/riposte") {
		t.Errorf("ExecStart = %q", exec)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	stages := regexp.MustCompile(`(?m)^FROM \S+ AS (\w+)$`).FindAllStringSubmatch(s, -1)
	if len(stages) != 2 || stages[0][1] != "build" || stages[1][1] != "runtime" {
		t.Errorf("want a build stage then a runtime stage, got %v", stages)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "COPY --from=build", "ENTRYPOINT", "--privileged", "--pid host", "docker.sock", "/sys/kernel/btf"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, bad := range []string{"| sh", "|sh", "ADD http"} {
		if strings.Contains(s, bad) {
			t.Errorf("Dockerfile pipes a download into a shell or adds from a URL (%q)", bad)
		}
	}
}

func TestDeployConfig(t *testing.T) {
	cfg, err := assembly.LoadConfig("riposte.yaml", assembly.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data != "/var/lib/riposte" || cfg.Auth.TokenFile != "/etc/riposte/token" {
		t.Errorf("data %q token_file %q", cfg.Data, cfg.Auth.TokenFile)
	}
	// The image copies examples/playbooks to /etc/riposte/playbooks, next
	// to this file; here the same playbooks are one folder up.
	if _, err := playbooks.Load(integrations.Catalog(), "../playbooks"); err != nil {
		t.Fatal(err)
	}
}

// TestRuntimeStageRuns proves the runtime stage without a registry: the
// static binary (built as the Dockerfile builds it) and the files the
// stage copies, imported as a FROM scratch image, run `riposte version` and
// lint the bundled playbooks in a container.
func TestRuntimeStageRuns(t *testing.T) {
	cli := testutil.DockerClient(t)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "riposte"), "../../cmd/riposte")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	add := func(name string, mode int64, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	add("usr/local/bin/riposte", 0o755, read(filepath.Join(dir, "riposte")))
	add("etc/riposte/riposte.yaml", 0o644, read("riposte.yaml"))
	files, _ := filepath.Glob("../playbooks/*.yaml")
	for _, f := range files {
		add("etc/riposte/playbooks/"+filepath.Base(f), 0o644, read(f))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const img = "riposte-deploy-test:1"
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &tarball, SourceName: "-"}, img,
		image.ImportOptions{Changes: []string{`ENTRYPOINT ["/usr/local/bin/riposte"]`}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	t.Cleanup(func() { cli.ImageRemove(context.Background(), img, image.RemoveOptions{Force: true}) })
	for _, args := range [][]string{{"version"}, {"playbook", "lint", "--playbooks", "/etc/riposte/playbooks"}} {
		out, err := exec.Command("docker", append([]string{"run", "--rm", img}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker run %v: %v\n%s", args, err, out)
		}
		if args[0] == "playbook" && !strings.HasPrefix(string(out), "ok: ") {
			t.Errorf("lint in the image: %s", out)
		}
	}
}
