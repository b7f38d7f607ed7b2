package docker

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// protectedReason says why info's container may not be touched, or "" when
// it may. The order is fixed: own container, label, name, image.
func (r *Responder) protectedReason(info container.InspectResponse) string {
	if r.self.matches(info.ID) {
		return "it is riposte's own container (found in " + r.self.source + ")"
	}
	var labels map[string]string
	var image string
	if info.Config != nil {
		labels = info.Config.Labels
		image = info.Config.Image
	}
	if r.label.Matches(labels) {
		return "label " + r.cfg.Protect.Label
	}
	name := containerName(info)
	for _, p := range r.cfg.Protect.Names {
		if ok, _ := path.Match(p, name); ok {
			return fmt.Sprintf("name %q matches protected name %q", name, p)
		}
	}
	if len(r.cfg.Protect.Images) > 0 {
		cands := imageCandidates(image)
		if info.Image != "" {
			cands = append(cands, info.Image) // image id: sha256:...
		}
		for _, p := range r.cfg.Protect.Images {
			for _, c := range cands {
				if ok, _ := path.Match(p, c); ok {
					return fmt.Sprintf("image %q matches protected image %q", image, p)
				}
			}
		}
	}
	return ""
}

// imageCandidates returns the forms of an image reference a protect glob
// may be written against: as given, repository alone, and the short and
// fully qualified names with their tag ("latest" when none).
//
//	postgres:15 → postgres:15, postgres, docker.io/library/postgres, docker.io/library/postgres:15
func imageCandidates(image string) []string {
	if image == "" {
		return nil
	}
	out := []string{image}
	rest, digest, _ := strings.Cut(image, "@")
	repo, tag := rest, ""
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		repo, tag = rest[:i], rest[i+1:]
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	short, full := repo, repo
	first, remainder, hasSlash := strings.Cut(repo, "/")
	hasDomain := hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost")
	switch {
	case hasDomain && (first == "docker.io" || first == "index.docker.io"):
		short = strings.TrimPrefix(remainder, "library/")
		full = "docker.io/" + remainder
	case hasDomain:
	case hasSlash:
		full = "docker.io/" + repo
	default:
		full = "docker.io/library/" + repo
	}
	for _, n := range []string{short, full} {
		out = append(out, n)
		if tag != "" {
			out = append(out, n+":"+tag)
		}
		if digest != "" {
			out = append(out, n+"@"+digest)
		}
	}
	return out
}

// selfIDs identifies riposte's own container: full ids or id prefixes.
type selfIDs struct {
	prefixes []string
	source   string // where they were found, for the refusal message
}

func (s selfIDs) empty() bool { return len(s.prefixes) == 0 }

func (s selfIDs) matches(id string) bool {
	for _, p := range s.prefixes {
		if p != "" && strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

var (
	// A 64-hex container id as the last element of a cgroup path:
	// /docker/<id> (cgroup v1), docker-<id>.scope (v2, systemd driver),
	// libpod-<id>, cri-containerd-<id>, crio-<id>.
	cgroupID = regexp.MustCompile(`(?:^|/|-)([0-9a-f]{64})(?:\.scope)?$`)
	// Docker bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from
	// /var/lib/docker/containers/<id>/; this holds on cgroup v2 hosts with a
	// private cgroup namespace, where /proc/self/cgroup shows only "/".
	mountID     = regexp.MustCompile(`/(?:overlay-)?containers/([0-9a-f]{64})/`)
	shortHostID = regexp.MustCompile(`^[0-9a-f]{12}$`)
)

// detectSelf finds the container this process runs in from the contents of
// /proc/self/cgroup, /proc/self/mountinfo and the hostname (Docker's default
// hostname is the short id; used only when nothing else said anything).
func detectSelf(cgroup, mountinfo []byte, hostname string) selfIDs {
	var s selfIDs
	add := func(id, source string) {
		for _, p := range s.prefixes {
			if p == id {
				return
			}
		}
		s.prefixes = append(s.prefixes, id)
		if s.source == "" {
			s.source = source
		} else if !strings.Contains(s.source, source) {
			s.source += ", " + source
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(cgroup))
	for sc.Scan() {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if m := cgroupID.FindStringSubmatch(parts[2]); m != nil {
			add(m[1], "/proc/self/cgroup")
		}
	}
	sc = bufio.NewScanner(bytes.NewReader(mountinfo))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// field 4 is the mount's root within its filesystem, field 5 the
		// mount point: /var/lib/docker/containers/<id>/hostname on /etc/hostname.
		switch fields[4] {
		case "/etc/hostname", "/etc/hosts", "/etc/resolv.conf":
			if m := mountID.FindStringSubmatch(fields[3]); m != nil {
				add(m[1], "/proc/self/mountinfo")
			}
		}
	}
	if s.empty() && shortHostID.MatchString(hostname) {
		add(hostname, "the hostname")
	}
	return s
}
