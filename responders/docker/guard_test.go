package docker

import (
	"slices"
	"strings"
	"testing"
)

func TestImageCandidates(t *testing.T) {
	tests := []struct {
		image string
		want  []string // must all be present
	}{
		{"postgres:15", []string{"postgres:15", "postgres", "docker.io/library/postgres", "docker.io/library/postgres:15"}},
		{"postgres", []string{"postgres", "postgres:latest", "docker.io/library/postgres:latest"}},
		{"docker.io/library/redis:7", []string{"redis", "redis:7", "docker.io/library/redis:7"}},
		{"bitnami/redis:7", []string{"bitnami/redis", "bitnami/redis:7", "docker.io/bitnami/redis:7"}},
		{"registry.example.com:5000/infra/app:1.2", []string{"registry.example.com:5000/infra/app", "registry.example.com:5000/infra/app:1.2"}},
		{"localhost/app@sha256:abcd", []string{"localhost/app", "localhost/app@sha256:abcd"}},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			got := imageCandidates(tc.image)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("imageCandidates(%q) = %q, missing %q", tc.image, got, w)
				}
			}
		})
	}
	if got := imageCandidates(""); got != nil {
		t.Errorf("imageCandidates(\"\") = %q, want nil", got)
	}
}

func TestDetectSelf(t *testing.T) {
	const id = "d935be168e330bc0fa387aaccb2ca964fb78f10fa9d5e00c14b4b6abb49399ae"
	const layer = "4f1e2c9a8b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"
	tests := []struct {
		name       string
		cgroup     string
		mountinfo  string
		hostname   string
		wantPrefix string // "" means nothing found
		wantSource string
	}{
		{name: "cgroup v1",
			cgroup:     "12:pids:/docker/" + id + "\n4:memory:/docker/" + id + "\n0::/system.slice/containerd.service\n",
			wantPrefix: id, wantSource: "/proc/self/cgroup"},
		{name: "cgroup v2 systemd driver",
			cgroup:     "0::/system.slice/docker-" + id + ".scope\n",
			wantPrefix: id, wantSource: "/proc/self/cgroup"},
		{name: "cgroup v2 private namespace, mountinfo",
			cgroup: "0::/\n",
			mountinfo: "1100 1090 0:50 / / rw,relatime master:1 - overlay overlay rw,upperdir=/var/lib/docker/overlay2/" + layer + "/diff\n" +
				"1120 1100 254:1 /var/lib/docker/containers/" + id + "/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw\n" +
				"1121 1100 254:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw\n",
			wantPrefix: id, wantSource: "/proc/self/mountinfo"},
		{name: "overlay layer ids are not container ids",
			cgroup:    "0::/\n",
			mountinfo: "1100 1090 0:50 / / rw,relatime - overlay overlay rw,upperdir=/var/lib/docker/overlay2/" + layer + "/diff\n"},
		{name: "hostname is the short id",
			cgroup: "0::/\n", hostname: id[:12], wantPrefix: id[:12], wantSource: "the hostname"},
		{name: "host process",
			cgroup:   "9:name=systemd:/\n4:memory:/process_api/8d3c2c296f531b26f58ed61e406d5b46\n0::/\n",
			hostname: "vm"},
		{name: "hostname ignored when cgroup spoke",
			cgroup: "1:cpu:/docker/" + id + "\n", hostname: "0123456789ab", wantPrefix: id, wantSource: "/proc/self/cgroup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := detectSelf([]byte(tc.cgroup), []byte(tc.mountinfo), tc.hostname)
			if tc.wantPrefix == "" {
				if !s.empty() {
					t.Fatalf("found %q in %s, want nothing", s.prefixes, s.source)
				}
				return
			}
			if len(s.prefixes) != 1 || s.prefixes[0] != tc.wantPrefix {
				t.Fatalf("prefixes %q, want [%s]", s.prefixes, tc.wantPrefix)
			}
			if !strings.Contains(s.source, tc.wantSource) {
				t.Errorf("source %q, want %q", s.source, tc.wantSource)
			}
			if !s.matches(id) || s.matches(layer) {
				t.Errorf("matches: own id %v, other id %v", s.matches(id), s.matches(layer))
			}
		})
	}
}
