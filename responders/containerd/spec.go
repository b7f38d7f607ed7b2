package containerd

import "github.com/riposte-sec/riposte/internal/actions"

// DefaultSignal is containerd.kill's signal, written once.
const DefaultSignal = "KILL"

var privileges = []string{
	"access to containerd's socket (/run/containerd/containerd.sock)",
	"root on the container's node: write access to its cgroup (freezer.state / cgroup.freeze) and permission to signal its processes",
}

// Specs describes the actions this responder implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "containerd.pause", Help: "Freeze every process of a containerd container (containerd's task API, the cgroup directly when containerd refuses); memory and state are kept for forensics.",
			Privileges: privileges, Destructive: true, Container: true},
		{Name: "containerd.unpause", Help: "Thaw a paused containerd container.",
			Privileges: privileges, Container: true},
		{Name: "containerd.kill", Help: "Signal every process of a containerd container's cgroup; KILL empties the cgroup.",
			Params:     []actions.Param{{Name: "signal", Type: actions.Signal, Default: DefaultSignal, Help: "signal name or number"}},
			Privileges: privileges, Destructive: true, Container: true},
		{Name: "containerd.snapshot", Help: "Collect an evidence bundle of a containerd container: its record and labels, OCI spec, process list and the rootfs diff as a tar; manifest with SHA-256 of every file.",
			Params: []actions.Param{
				{Name: "diff", Type: actions.Bool, Default: "true", Help: "include the rootfs diff (files changed since the container started) as a tar"},
				{Name: "max_bytes", Type: actions.Bytes, Default: "snapshot.max_bytes from config (1GiB)", Help: "bundle size cap; can lower the config's cap, not raise it"},
			},
			Privileges: append([]string{"write access to the evidence directory"}, privileges...), Container: true},
	}
}
