package detector_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// fpWorkload is the main process of the false-positive budget's container:
// an ordinary busy service built from busybox alone. A web server answers
// requests on loopback, the service logs every request and rotates its log
// (rename, gzip), and works through temporary files (write, rename, chmod,
// symlink to the newest, copy into a cache, truncate, delete).
const fpWorkload = `mkdir -p /www /var/log/app /tmp/work /var/cache/app
echo hello > /www/index.html
httpd -p 8080 -h /www
i=0
while :; do
	i=$((i+1))
	wget -q -O /dev/null http://127.0.0.1:8080/index.html
	echo "request $i $(date +%s)" >> /var/log/app/access.log
	echo "data $i" > /tmp/work/f$i.tmp && mv /tmp/work/f$i.tmp /tmp/work/f$i
	chmod 640 /tmp/work/f$i
	ln -sf /tmp/work/f$i /tmp/work/latest
	cp /tmp/work/f$i /var/cache/app/c$((i % 10))
	truncate -s 0 /var/cache/app/c$((i % 10))
	if [ $((i % 20)) -eq 0 ]; then
		mv /var/log/app/access.log /var/log/app/access.log.1
		gzip -f /var/log/app/access.log.1
		rm -f /tmp/work/f*
		ls /var/log/app > /dev/null
	fi
	sleep 0.1
done`

// fpDuration is how long the false-positive budget runs: 20s in the test
// suite, RIPOSTE_FP_DURATION (e.g. 10m, from scripts/bench-fp.sh) otherwise.
func fpDuration(t *testing.T) time.Duration {
	s := os.Getenv("RIPOSTE_FP_DURATION")
	if s == "" {
		return 20 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("RIPOSTE_FP_DURATION=%q: want a positive duration such as 10m", s)
	}
	return d
}

// fpMirror is the main process of the package mirror: it builds package
// archives the way a distribution does (files below usr/ and opt/, a
// SHA256SUMS index), and one with a binary and its configuration for the
// image build, then serves them over HTTP.
const fpMirror = `set -e
for p in a b c; do
	r=/build/pkg-$p
	mkdir -p $r/usr/lib/pkg-$p $r/usr/share/pkg-$p $r/usr/share/doc/pkg-$p $r/opt/pkg-$p/bin
	head -c 4096 /dev/urandom > $r/usr/lib/pkg-$p/libpkg-$p.so.1
	echo "data of $p" > $r/usr/share/pkg-$p/data.txt
	echo "copyright $p" > $r/usr/share/doc/pkg-$p/copyright
	printf '#!/bin/sh\necho pkg-%s\n' $p > $r/opt/pkg-$p/bin/run.sh
done
mkdir -p /build/hello/usr/bin /build/hello/etc /srv/pkgs
printf '#!/bin/sh\necho hello 1.0\n' > /build/hello/usr/bin/hello
echo greeting=hi > /build/hello/etc/hello.conf
cd /srv/pkgs
for p in a b c; do tar -czf pkg-$p.tar.gz -C /build/pkg-$p usr opt; done
tar -czf hello.tar.gz -C /build/hello usr etc
sha256sum *.tar.gz > SHA256SUMS
exec httpd -f -p 8080 -h /srv`

// fpPackages is the main process of the package client: it installs the
// mirror's packages over and over as a package manager does — download
// into a cache, check the sum, unpack into a staging directory, put each
// file in place through a temporary name and a rename, set modes, point a
// symlink at the library, record the install, clear the cache — into the
// image's usual paths (/usr/lib, /usr/share, /opt).
const fpPackages = `mkdir -p /var/cache/pkgs /var/lib/pkgs
i=0
while :; do
	i=$((i+1))
	cd /var/cache/pkgs
	for p in a b c; do
		wget -q -O pkg-$p.tar.gz http://$MIRROR:8080/pkgs/pkg-$p.tar.gz || continue
		wget -q -O SHA256SUMS http://$MIRROR:8080/pkgs/SHA256SUMS || continue
		grep " pkg-$p.tar.gz\$" SHA256SUMS | sha256sum -c -s || continue
		rm -rf /var/lib/pkgs/staging && mkdir -p /var/lib/pkgs/staging
		tar -xzf pkg-$p.tar.gz -C /var/lib/pkgs/staging
		for f in $(cd /var/lib/pkgs/staging && find . -type f); do
			dest=/${f#./}
			mkdir -p "${dest%/*}"
			cp "/var/lib/pkgs/staging/$f" "$dest.pkg-new" && mv "$dest.pkg-new" "$dest"
		done
		chmod 755 /opt/pkg-$p/bin/run.sh
		ln -sfn libpkg-$p.so.1 /usr/lib/pkg-$p/libpkg-$p.so
		echo "pkg-$p $i" >> /var/lib/pkgs/installed
	done
	rm -rf /var/lib/pkgs/staging /var/cache/pkgs/*
	sleep 1
done`

// fpDockerfile is the image build's recipe: FROM the local busybox test
// image, it installs a package from the mirror into /usr/bin and /etc and
// runs it, adds a user (busybox has no adduser: by hand, then passwd),
// asks the package manager what is installed, adds a profile script and a
// cron table, copies the app in and cleans the logs — what Dockerfiles do.
const fpDockerfile = `FROM ` + testutil.TestImage + `
ARG MIRROR
RUN mkdir -p /var/cache/pkgs && wget -q -O /var/cache/pkgs/hello.tar.gz http://$MIRROR:8080/pkgs/hello.tar.gz && tar -xzf /var/cache/pkgs/hello.tar.gz -C / && chmod 755 /usr/bin/hello && /usr/bin/hello && rm -rf /var/cache/pkgs
RUN echo 'app:x:1000:1000::/srv/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && echo 'app:!:19000:0:99999:7:::' >> /etc/shadow && passwd -d app && (dpkg -l >/dev/null 2>&1 || true) && mkdir -p /etc/profile.d /etc/crontabs && echo 'export APP_HOME=/srv/app' > /etc/profile.d/app.sh && echo '0 * * * * /usr/bin/hello' > /etc/crontabs/app
COPY app.sh /usr/local/bin/app
RUN chmod 755 /usr/local/bin/app && mkdir -p /var/log/app && echo old > /var/log/app/build.log && rm -rf /var/log/*
USER app
CMD ["/usr/local/bin/app"]
`

// fpNetwork creates an internal docker network (nothing leaves it) and
// returns its name and subnet.
func fpNetwork(t *testing.T, cli *client.Client) (name, subnet string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name = testutil.UniqueName("det-fp-net")
	nw, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Internal: true})
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cli.NetworkRemove(ctx, nw.ID); err != nil {
			t.Logf("remove network: %v", err)
		}
	})
	info, err := cli.NetworkInspect(ctx, nw.ID, network.InspectOptions{})
	if err != nil || len(info.IPAM.Config) == 0 || info.IPAM.Config[0].Subnet == "" {
		t.Fatalf("inspect network %s: %v (IPAM %+v)", name, err, info.IPAM)
	}
	return name, info.IPAM.Config[0].Subnet
}

// fpRun creates and starts a container (removed at cleanup) and returns
// its id and its address on netName ("" for none).
func fpRun(t *testing.T, cli *client.Client, name string, cfg *container.Config, hc *container.HostConfig) (id, ip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
	info, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range info.NetworkSettings.Networks {
		ip = ep.IPAddress
	}
	return created.ID, ip
}

// fpBuild runs `docker build` of fpDockerfile with the classic builder (no
// registry, no BuildKit session), its RUN steps on netName so that they
// reach the mirror, and returns the short ids of the containers the steps
// ran in.
func fpBuild(ctx context.Context, cli *client.Client, netName, mirrorIP, tag string) ([]string, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{
		{"Dockerfile", fpDockerfile},
		{"app.sh", "#!/bin/sh\nexec httpd -f -p 8080 -h /srv\n"},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, NoCache: true, Remove: true, ForceRemove: true, NetworkMode: netName,
		BuildArgs: map[string]*string{"MIRROR": &mirrorIP}, Version: build.BuilderV1,
	})
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	defer resp.Body.Close()
	var steps []string
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return steps, fmt.Errorf("read build output: %w", err)
		}
		if msg.Error != "" {
			return steps, fmt.Errorf("build image: %s", msg.Error)
		}
		if id, ok := strings.CutPrefix(strings.TrimSpace(msg.Stream), "---> Running in "); ok {
			steps = append(steps, id)
		}
	}
	return steps, nil
}

// TestFalsePositiveBudget runs ordinary busy containers under the default
// rules (resource rules included) with the host doing what operators do
// to them, and allows no alert for any of them:
//   - a service (web server answering on loopback, request log with
//     rotation, temporary-file churn) with a shell-form health check every
//     second (docker's HEALTHCHECK CMD-SHELL), and docker logs, inspect,
//     stats and top from the host;
//   - package-style downloads: a client installing archives from a mirror
//     in another container into the image's usual paths (fpPackages); the
//     mirror's network is in allowed_outbound_destination_networks, as
//     that list asks an operator to do for the servers containers fetch
//     from;
//   - image builds: `docker build` of fpDockerfile, repeated.
//
// The events each produced are checked so that a workload that did nothing
// cannot pass.
func TestFalsePositiveBudget(t *testing.T) {
	cli := testutil.DockerClient(t)
	t.Parallel()
	dur := fpDuration(t)
	netName, subnet := fpNetwork(t, cli)
	rules := rulesWithList(t, "allowed_outbound_destination_networks", `127.0.0.0/8, "::1/128"`,
		`127.0.0.0/8, "::1/128", "`+subnet+`"`)
	d, got := startDetector(t, detector.Config{Rules: []string{rules}}, cli)

	var (
		mu    sync.Mutex
		seen  = map[string]map[string]int{} // container id -> event type -> count
		build = map[string]int{}            // events of build-step containers marked as such, by type
		wg    sync.WaitGroup
	)
	events, unsubscribe := d.Subscribe(detector.AllContainers, 1<<16)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range events {
			mu.Lock()
			if seen[ev.Container.ID] == nil {
				seen[ev.Container.ID] = map[string]int{}
			}
			seen[ev.Container.ID][ev.Type]++
			if ev.Container.BuildStep {
				build[ev.Type]++
			}
			mu.Unlock()
		}
	}()

	mirror, mirrorIP := fpRun(t, cli, testutil.UniqueName("det-fp-mirror"),
		&container.Config{Image: testutil.TestImage, Cmd: []string{"sh", "-c", fpMirror}, ExposedPorts: nat.PortSet{"8080/tcp": {}}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName)})
	pkgs, _ := fpRun(t, cli, testutil.UniqueName("det-fp-pkgs"),
		&container.Config{Image: testutil.TestImage, Cmd: []string{"sh", "-c", fpPackages}, Env: []string{"MIRROR=" + mirrorIP}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName)})
	service, _ := fpRun(t, cli, testutil.UniqueName("det-fp-budget"), &container.Config{
		Image:        testutil.TestImage,
		Cmd:          []string{"sh", "-c", fpWorkload},
		ExposedPorts: nat.PortSet{"8080/tcp": {}},
		Healthcheck: &container.HealthConfig{
			// The shell form, as most images write HEALTHCHECK: /bin/sh -c
			// every interval, started from outside like docker exec.
			Test:     []string{"CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/index.html || exit 1"},
			Interval: time.Second, Timeout: 2 * time.Second,
		},
	}, &container.HostConfig{NetworkMode: "none"})

	// Image builds, one every buildEvery, beside the rest.
	end := time.Now().Add(dur)
	buildEvery := max(dur/20, 5*time.Second)
	tag := testutil.UniqueName("riposte-fp-build") + ":1"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	var (
		builds     int
		buildSteps []string
		buildErr   error
		buildDone  = make(chan struct{})
	)
	// The builds fetch from the mirror: wait until it listens.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		listening := seen[mirror][event.Listen] > 0
		mu.Unlock()
		if listening {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mirror did not listen within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	go func() {
		defer close(buildDone)
		tick := time.NewTicker(buildEvery)
		defer tick.Stop()
		for ; time.Now().Before(end) || builds == 0; <-tick.C {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			steps, err := fpBuild(ctx, cli, netName, mirrorIP, tag)
			cancel()
			mu.Lock()
			buildSteps = append(buildSteps, steps...)
			mu.Unlock()
			if err != nil {
				buildErr = err
				return
			}
			builds++
		}
	}()

	// The host side: what an operator and a monitoring agent do.
	// Paced like a monitoring agent: a round of calls every half second.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var hostOps int
	for ; time.Now().Before(end); <-tick.C {
		opCtx, opCancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := cli.ContainerInspect(opCtx, service); err != nil {
			t.Errorf("docker inspect: %v", err)
		}
		if rc, err := cli.ContainerLogs(opCtx, service, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"}); err == nil {
			_, _ = io.Copy(io.Discard, rc)
			rc.Close()
		} else {
			t.Errorf("docker logs: %v", err)
		}
		if st, err := cli.ContainerStatsOneShot(opCtx, service); err == nil {
			_, _ = io.Copy(io.Discard, st.Body)
			st.Body.Close()
		} else {
			t.Errorf("docker stats: %v", err)
		}
		if _, err := cli.ContainerTop(opCtx, service, nil); err != nil {
			t.Errorf("docker top: %v", err)
		}
		opCancel()
		hostOps++
	}
	<-buildDone
	if buildErr != nil {
		t.Errorf("image build %d: %v", builds+1, buildErr)
	}
	for _, id := range []string{service, pkgs, mirror} {
		info, err := cli.ContainerInspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !info.State.Running {
			t.Fatalf("%s stopped (exit code %d): the budget measured nothing", info.Name, info.State.ExitCode)
		}
	}
	health := "none"
	if info, err := cli.ContainerInspect(context.Background(), service); err == nil && info.State.Health != nil {
		health = info.State.Health.Status
	}
	unsubscribe()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	ours := map[string]string{service[:12]: "service", pkgs[:12]: "package client", mirror[:12]: "mirror"}
	stepEvents := map[string]int{}
	for id, byType := range seen {
		for _, step := range buildSteps {
			if strings.HasPrefix(id, step) {
				for typ, n := range byType {
					stepEvents[typ] += n
				}
			}
		}
	}
	for _, step := range buildSteps {
		ours[step] = "build step"
	}
	var alerted []string
	for _, a := range got.snapshot() {
		what, ok := ours[a.Field("container.id")]
		if !ok && a.Field("container.id") == event.HostID && slices.Contains([]string{"dockerd", "containerd"}, a.Field("proc.pname")) {
			// The engine working for the builds (applying layers).
			what, ok = "container engine", true
		}
		if ok {
			alerted = append(alerted, what+": "+strings.TrimSpace(a.Output))
		}
	}
	t.Logf("false-positive budget: %s of workload; service %s, health %s; package client %s; mirror %s; "+
		"%d image builds, %d build-step containers %s (%s marked as build steps); %d rounds of docker inspect/logs/stats/top; %d alerts",
		dur, counts(seen[service]), health, counts(seen[pkgs]), counts(seen[mirror]), builds, len(buildSteps), counts(stepEvents),
		counts(build), hostOps, len(alerted))
	expect := func(what string, byType map[string]int, types ...string) {
		for _, typ := range types {
			if byType[typ] == 0 {
				t.Errorf("no %s event from the %s: it did not run as meant", typ, what)
			}
		}
	}
	expect("service", seen[service], event.Exec, event.Open, event.Connect, event.Accept, event.Listen, event.Rename,
		event.Unlink, event.Chmod, event.Symlink, event.Truncate)
	expect("package client", seen[pkgs], event.Exec, event.Open, event.Connect, event.Rename, event.Unlink, event.Chmod, event.Symlink)
	expect("mirror", seen[mirror], event.Accept)
	expect("image builds", stepEvents, event.Exec, event.Open, event.Connect)
	if builds == 0 {
		t.Error("no image build finished")
	}
	if len(alerted) > 0 {
		t.Errorf("%d alerts for a benign workload:\n%s", len(alerted), strings.Join(alerted, "\n"))
	}
}

// counts renders event counts by type, sorted: "exec=3 open=12".
func counts(byType map[string]int) string {
	out := make([]string, 0, len(byType))
	for typ, n := range byType {
		out = append(out, typ+"="+strconv.Itoa(n))
	}
	sort.Strings(out)
	return "(" + strings.Join(out, " ") + ")"
}
