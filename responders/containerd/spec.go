package containerd

import "github.com/riposte-sec/riposte/internal/actions"

// DefaultSignal is containerd.kill's signal, written once.
const DefaultSignal = "KILL"

var privileges = []string{
	"access to containerd's socket (/run/containerd/containerd.sock)",
	"root on the container's node: write access to its cgroup (freezer.state / cgroup.freeze) and permission to signal its processes",
}

// ActionRelease undoes quarantine and pause.
const ActionRelease = "containerd.release"

// netPrivileges is what quarantine and release need.
var netPrivileges = []string{
	privileges[0],
	"root on the container's node with the host's /proc: CAP_SYS_ADMIN to enter the container's network namespace, CAP_NET_ADMIN in it for nftables (the kernel's nf_tables)",
}

// Specs describes the actions this responder implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "containerd.pause", Help: "Freeze every process of a containerd container (containerd's task API, the cgroup directly when containerd refuses); memory and state are kept for forensics.",
			Privileges: privileges, Destructive: true, Container: true, Idempotent: true},
		{Name: "containerd.unpause", Help: "Thaw a paused containerd container.",
			Privileges: privileges, Container: true},
		{Name: "containerd.kill", Help: "Signal every process of a containerd container's cgroup; KILL empties the cgroup.",
			Params:     []actions.Param{{Name: "signal", Type: actions.Signal, Default: DefaultSignal, Help: "signal name or number"}},
			Privileges: privileges, Destructive: true, Container: true},
		{Name: "containerd.quarantine", Help: "Cut a containerd container off the network: an nftables table in its network namespace drops everything in and out but loopback and quarantine.allow (recorded, so release removes exactly that table); it keeps running for forensics.",
			Privileges: netPrivileges, Destructive: true, Container: true},
		{Name: ActionRelease, Releases: true, Help: "Undo containerd.quarantine and containerd.pause: remove the nftables table quarantine recorded and thaw the container.",
			Privileges: append(append([]string(nil), netPrivileges...), privileges[1]), Container: true},
		{Name: "containerd.snapshot", Help: "Collect an evidence bundle of a containerd container: its record and labels, OCI spec, process list and the rootfs diff as a tar; manifest with SHA-256 of every file.",
			Params: []actions.Param{
				{Name: "diff", Type: actions.Bool, Default: "true", Help: "include the rootfs diff (files changed since the container started) as a tar"},
				{Name: "max_bytes", Type: actions.Bytes, Default: "snapshot.max_bytes from config (1GiB)", Help: "bundle size cap; can lower the config's cap, not raise it"},
			},
			Privileges: append([]string{"write access to the evidence directory"}, privileges...), Container: true},
	}
}
