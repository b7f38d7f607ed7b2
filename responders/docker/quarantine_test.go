package docker

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// canReach reports whether from can ping addr (one packet, 2 s).
func canReach(t *testing.T, cli *client.Client, from, addr string) bool {
	t.Helper()
	code, out := execIn(t, cli, from, "ping", "-c", "1", "-W", "2", addr)
	t.Logf("ping %s from %s: exit %d: %s", addr, shortID(from), code, strings.TrimSpace(out))
	return code == 0
}

// The container sits on the default bridge, on a user network with an alias
// (dynamic address) and on a user network with a pinned address. After
// quarantine it has no network and cannot reach a peer; after release it is
// back on all three, alias and pinned address included, and unpaused.
func TestQuarantineRelease(t *testing.T) {
	cli := testutil.DockerClient(t)
	ctx := context.Background()
	r := testResponder(t, cli, nil)
	sfx := randSuffix()
	netA, _ := testNetwork(t, cli, "dkr-qa-"+sfx, "")
	netB, prefixB := testNetwork(t, cli, "dkr-qb-"+sfx, "10.213.%d")
	nameA, nameB := "dkr-qa-"+sfx, "dkr-qb-"+sfx
	pinned := prefixB + ".77"
	alias := "dkr-suspect-" + sfx

	peer, _ := startContainer(t, cli, "q-peer", nil)
	target, _ := startContainer(t, cli, "q-target", nil)
	for _, c := range []struct {
		net, id string
		ep      *network.EndpointSettings
	}{
		{netA, peer, nil},
		{netA, target, &network.EndpointSettings{Aliases: []string{alias}}},
		{netB, target, &network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: pinned}}},
	} {
		if err := cli.NetworkConnect(ctx, c.net, c.id, c.ep); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	peerIP := inspect(t, cli, peer).NetworkSettings.Networks[nameA].IPAddress
	if !canReach(t, cli, target, peerIP) || !canReach(t, cli, peer, alias) {
		t.Fatal("before quarantine: the containers cannot reach each other; the test network is broken")
	}
	before := inspect(t, cli, target).NetworkSettings.Networks

	res := mustRun(t, r, "container.quarantine", target, nil)
	info := inspect(t, cli, target)
	if n := len(info.NetworkSettings.Networks); n != 0 {
		t.Fatalf("after quarantine: still on %d networks: %v", n, info.NetworkSettings.Networks)
	}
	if !info.State.Running {
		t.Fatal("quarantine stopped the container; it must keep running for forensics")
	}
	wantNote := "disconnected from bridge, " + nameA + ", " + nameB
	if res.Note != wantNote {
		t.Errorf("note %q, want %q", res.Note, wantNote)
	}
	if canReach(t, cli, target, peerIP) {
		t.Fatal("after quarantine: the container still reaches its peer")
	}
	if canReach(t, cli, peer, alias) {
		t.Fatal("after quarantine: the peer still reaches the container by its alias")
	}

	// The state file: durable record of what to reconnect.
	st, ok, err := r.QuarantineState(target)
	if err != nil || !ok {
		t.Fatalf("quarantine state: %v, %v", ok, err)
	}
	raw, err := os.ReadFile(r.statePath(target))
	if err != nil || !json.Valid(raw) {
		t.Fatalf("state file: %v", err)
	}
	if got := names(st.Networks); !slices.Equal(got, []string{"bridge", nameA, nameB}) {
		t.Fatalf("recorded networks %q", got)
	}
	for _, n := range st.Networks {
		if n.IPv4 != before[n.Name].IPAddress || n.ID != before[n.Name].NetworkID {
			t.Errorf("%s: recorded %s/%s, was %s/%s", n.Name, n.ID, n.IPv4, before[n.Name].NetworkID, before[n.Name].IPAddress)
		}
		switch n.Name {
		case nameA:
			if !slices.Equal(n.Aliases, []string{alias}) {
				t.Errorf("%s: aliases %q, want [%s] (the automatic short-id alias left out)", n.Name, n.Aliases, alias)
			}
		case nameB:
			if n.IPAMConfig == nil || n.IPAMConfig.IPv4Address != pinned {
				t.Errorf("%s: pinned address not recorded: %+v", n.Name, n.IPAMConfig)
			}
		}
	}

	res = mustRun(t, r, "container.quarantine", target, nil)
	if !strings.HasPrefix(res.Note, "already quarantined (disconnected from bridge, ") {
		t.Errorf("quarantine again: note %q", res.Note)
	}

	// Pause it too, as a playbook would; release undoes both.
	mustRun(t, r, "container.pause", target, nil)
	res = mustRun(t, r, "container.release", target, nil)
	if res.Note != "reconnected bridge, "+nameA+", "+nameB+"; unpaused" {
		t.Errorf("release note %q", res.Note)
	}
	info = inspect(t, cli, target)
	if info.State.Paused || !info.State.Running {
		t.Fatalf("after release: state %+v", info.State)
	}
	nets := info.NetworkSettings.Networks
	if len(nets) != 3 || nets["bridge"] == nil || nets[nameA] == nil || nets[nameB] == nil {
		t.Fatalf("after release: networks %v", nets)
	}
	if !slices.Contains(nets[nameA].Aliases, alias) {
		t.Errorf("after release: alias lost: %q", nets[nameA].Aliases)
	}
	if nets[nameB].IPAddress != pinned {
		t.Errorf("after release: address on %s is %s, want the pinned %s", nameB, nets[nameB].IPAddress, pinned)
	}
	if !canReach(t, cli, target, peerIP) || !canReach(t, cli, peer, alias) {
		t.Fatal("after release: the containers cannot reach each other")
	}
	if _, ok, _ := r.QuarantineState(target); ok {
		t.Error("quarantine state still there after release")
	}
	res = mustRun(t, r, "container.release", target, nil)
	if res.Note != "nothing to release (not quarantined, not paused)" {
		t.Errorf("release again: note %q", res.Note)
	}
}

// A quarantine interrupted half-way (state written, one network still
// connected) is finished by running quarantine again, and release restores
// both the network disconnected the first time and the second.
func TestQuarantineResumes(t *testing.T) {
	cli := testutil.DockerClient(t)
	ctx := context.Background()
	r := testResponder(t, cli, nil)
	sfx := randSuffix()
	netA, _ := testNetwork(t, cli, "dkr-qr-"+sfx, "")
	target, _ := startContainer(t, cli, "q-resume", nil)
	if err := cli.NetworkConnect(ctx, netA, target, &network.EndpointSettings{Aliases: []string{"dkr-resume-" + sfx}}); err != nil {
		t.Fatal(err)
	}
	// What a crash after the state write and the first disconnect leaves.
	info := inspect(t, cli, target)
	st := QuarantineState{Version: 1, Container: target, Time: time.Now().UTC(), Networks: saved(info)}
	if err := r.saveState(st); err != nil {
		t.Fatal(err)
	}
	if err := cli.NetworkDisconnect(ctx, "bridge", target, false); err != nil {
		t.Fatal(err)
	}

	res := mustRun(t, r, "container.quarantine", target, nil)
	if res.Note != "disconnected from dkr-qr-"+sfx {
		t.Errorf("note %q", res.Note)
	}
	if n := len(inspect(t, cli, target).NetworkSettings.Networks); n != 0 {
		t.Fatalf("still on %d networks", n)
	}
	got, _, _ := r.QuarantineState(target)
	if !slices.Equal(names(got.Networks), []string{"bridge", "dkr-qr-" + sfx}) {
		t.Fatalf("state lost the first network: %q", names(got.Networks))
	}
	mustRun(t, r, "container.release", target, nil)
	nets := inspect(t, cli, target).NetworkSettings.Networks
	if nets["bridge"] == nil || nets["dkr-qr-"+sfx] == nil || !slices.Contains(nets["dkr-qr-"+sfx].Aliases, "dkr-resume-"+sfx) {
		t.Fatalf("after release: %v", nets)
	}
}

func TestQuarantineNetworkModes(t *testing.T) {
	cli := testutil.DockerClient(t)
	ctx := context.Background()
	r := testResponder(t, cli, nil)
	owner, _ := startContainer(t, cli, "q-owner", nil)
	create := func(t *testing.T, mode string) string {
		t.Helper()
		name := "dkr-q-" + strings.NewReplacer(":", "-").Replace(mode)[:4] + "-" + randSuffix()
		created, err := cli.ContainerCreate(ctx, &container.Config{Image: testutil.TestImage, Cmd: []string{"sleep", "3600"}},
			&container.HostConfig{NetworkMode: container.NetworkMode(mode)}, nil, nil, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
		})
		if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		return created.ID
	}
	tests := []struct {
		mode    string
		note    string // success with this note
		errWant string // or an error saying this
	}{
		{mode: "none", note: "already isolated (network mode none)"},
		{mode: "host", errWant: "shares the host's network"},
		{mode: "container:" + owner, errWant: "shares the network of container " + owner},
	}
	for _, tc := range tests {
		t.Run(strings.SplitN(tc.mode, ":", 2)[0], func(t *testing.T) {
			id := create(t, tc.mode)
			res, err := run(t, r, "container.quarantine", id, nil)
			if tc.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errWant) {
					t.Fatalf("got %v (%q), want an error saying %q", err, res.Note, tc.errWant)
				}
				if _, ok, _ := r.QuarantineState(id); ok {
					t.Error("state written for a refused quarantine")
				}
				return
			}
			if err != nil || res.Note != tc.note {
				t.Fatalf("got %v, %q; want %q", err, res.Note, tc.note)
			}
		})
	}
}

// A container started with --network NET --network-alias web: its network
// mode names the network, and quarantine and release still work.
func TestQuarantineUserNetworkMode(t *testing.T) {
	cli := testutil.DockerClient(t)
	ctx := context.Background()
	r := testResponder(t, cli, nil)
	netName := "dkr-qm-" + randSuffix()
	netID, _ := testNetwork(t, cli, netName, "")
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: testutil.TestImage, Cmd: []string{"sleep", "3600"}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{"web"}}}},
		nil, netName+"-c")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if res := mustRun(t, r, "container.quarantine", created.ID, nil); res.Note != "disconnected from "+netName {
		t.Fatalf("quarantine: %q", res.Note)
	}
	if n := len(inspect(t, cli, created.ID).NetworkSettings.Networks); n != 0 {
		t.Fatalf("still on %d networks", n)
	}
	if res := mustRun(t, r, "container.release", created.ID, nil); res.Note != "reconnected "+netName {
		t.Fatalf("release: %q", res.Note)
	}
	ep := inspect(t, cli, created.ID).NetworkSettings.Networks[netName]
	if ep == nil || ep.NetworkID != netID || !slices.Contains(ep.Aliases, "web") || ep.IPAddress == "" {
		t.Fatalf("after release: %+v", ep)
	}
}

// A stopped container is quarantined too (so it stays cut off if something
// starts it again) and released back onto its networks.
func TestQuarantineStopped(t *testing.T) {
	cli := testutil.DockerClient(t)
	r := testResponder(t, cli, nil)
	id, _ := startContainer(t, cli, "q-stopped", nil)
	mustRun(t, r, "container.kill", id, nil)
	mustRun(t, r, "container.quarantine", id, nil)
	if n := len(inspect(t, cli, id).NetworkSettings.Networks); n != 0 {
		t.Fatalf("still on %d networks", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(inspect(t, cli, id).NetworkSettings.Networks); n != 0 {
		t.Fatalf("restarted onto %d networks", n)
	}
	res := mustRun(t, r, "container.release", id, nil)
	if res.Note != "reconnected bridge" || inspect(t, cli, id).NetworkSettings.Networks["bridge"] == nil {
		t.Fatalf("release: %q", res.Note)
	}
}
