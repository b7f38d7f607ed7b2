// Package containerd is riposte's containerd responder: the containerd.*
// actions (pause, unpause, kill, quarantine, release, snapshot) on a node whose containers are
// made by containerd without Docker (Kubernetes' CRI in namespace k8s.io,
// nerdctl) or by Docker's own containerd (namespace moby). It talks to the
// daemon with the containerd v2 client, which also speaks to the 1.6 and
// 1.7 daemons of current distributions.
//
// containerd finds the container and says what it is: a reference (full
// id, a unique hex prefix of 12 or more, namespace/pod/container from the
// CRI labels, nerdctl's name, or "<namespace>:<ref>") is resolved once in
// the configured namespaces, in order, and every later step uses that
// namespace and full id. A reference found in two places is refused as
// ambiguous. Pause and unpause go through containerd's task API (runc
// freezes the task's cgroup), so that containerd, the kubelet and Docker
// keep a truthful state; the cgroup, found from the task's init pid in the
// host's /proc, is then checked frozen, and is frozen or thawed directly
// with responders/contain when containerd refuses. Kill signals every
// process of the cgroup. riposte needs root on the node with the host's
// /proc, as the agent has.
//
// The protect guardrail reads containerd's labels (CRI copies the pod's
// labels there): a container carrying the protect label, or whose name or
// image matches a protected glob, is refused before anything changes, with
// an error wrapping actions.ErrProtected.
//
// containerd.quarantine installs one nftables table (inet
// riposte_quarantine) in the network namespace of the task's init pid,
// through netlink from a thread switched into that namespace (no nft
// binary): its input, output and forward chains drop by policy and accept
// only loopback and the configured allow-list, in one nf_tables
// transaction. The table is read back and recorded in
// <data_dir>/containerd/quarantine/<namespace>/<id>.json with the
// namespace's inode, so containerd.release removes exactly that table (and
// thaws a paused container) and a second quarantine changes nothing. A
// container in the host's network namespace is refused: isolating it
// would isolate the node. The containers of a Kubernetes pod share their
// sandbox's namespace, so quarantining one isolates the pod.
//
// containerd.snapshot writes <evidence_dir>/<incident>/<short id>/<id>/:
// container.json (containerd's record with labels and task state),
// spec.json (OCI spec), processes.json (containerd's pid list, read from
// /proc) and rootfs-diff.tar (containerd's diff of the rootfs snapshot
// against its image, an OCI layer), with a manifest.json of the same form
// as the docker responder's, so docker.VerifyBundle checks it. The diff is
// computed by containerd into its content store under a temporary lease
// and copied out against the size cap.
//
// A Responder is safe for concurrent use; actions on one container are
// serialised within it. It does not own the client it is given: whoever
// made it (NewClient) closes it.
package containerd
