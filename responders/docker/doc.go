// Package docker is riposte's Docker responder: the container.* actions
// (pause, unpause, stop, kill, quarantine, release, snapshot) run against
// one Docker daemon through the Engine API, with the API version negotiated
// so that Debian's docker.io 20.10 (API 1.41) and current engines both work.
//
// Guardrails live here, not in the caller: Run refuses, before any call that
// changes anything, a container that carries the protect label
// (riposte.protect=true by default), matches the configured name or image
// globs, or is riposte's own container (found in /proc/self/cgroup,
// /proc/self/mountinfo or the hostname, or given as protect.self_id). The
// refusal wraps actions.ErrProtected; Protected answers the same question
// for callers that want to ask first (Slack buttons, the engine's plan).
//
// Actions are idempotent in effect: pausing a paused container, killing an
// exited one, stopping a stopped one, quarantining a disconnected one
// succeed with a note saying so. A missing container gives an error wrapping
// actions.ErrNotFound that names the reference; an unreachable daemon, a
// timeout, 429 or 5xx give an error marked actions.Retryable.
//
// container.pause takes one of two paths (Config.Pause): the Docker API's
// pause (default), or the freezer path, which freezes the container's cgroup
// from this process (internal/cgroupctl) once the guardrails passed: a
// fraction of a millisecond instead of the daemon's round trip through
// containerd, the shim and runc. The daemon is then told: runc (1.1, as
// here) refuses to pause a container whose freezer cgroup is frozen itself
// (freezer.self_freezing 1) but reads one frozen only through a relative as
// THAWED, and a v1 cgroup's state says nothing of its children; so the
// frozen processes move into a frozen child cgroup (riposte-hold), the
// container's cgroup is thawed (empty, it reads THAWED), the daemon pauses
// it, and the processes move back, frozen all along. docker ps then shows
// the container paused and docker unpause resumes it. Where that cannot be
// done (cgroup v2, where runc reads cgroup.freeze and the trick is untried;
// a container with child cgroups of its own, which the thaw would release;
// a failing daemon) the container stays frozen, the note says the daemon was
// not told, and container.unpause thaws it, as it does processes an
// interrupted run left in riposte-hold. The Result's frozen_at_ns (both
// paths) is when the container was contained; BenchmarkDockerContainment
// measures both paths against a bare ContainerPause, interleaved.
//
// With Deps.Events (buildDocker passes the client), the Responder keeps an
// inspect cache: a goroutine follows the daemon's container events, inspects
// every container as it starts and drops it on die, destroy and rename.
// container.pause and container.kill on an id (what alerts carry) then go to
// the daemon with the one call that contains, the guardrails evaluated on
// the cached inspect; a name, an id prefix that is also a name, a broken
// event stream or a failure on a cached entry fall back to an inspect. The
// cache holds only what Docker does not change during a container's life
// (inspectCache says why it cannot make riposte act on a protected
// container). Close stops the goroutine.
//
// container.quarantine records the networks it disconnects (aliases, pinned
// and observed addresses) in <data_dir>/docker/quarantine/<id>.json, written
// atomically before the first disconnect; container.release reconnects them,
// unpauses the container and removes the file. container.snapshot writes an
// evidence bundle <evidence_dir>/<incident>/<short id>/<snapshot id>/ whose
// manifest.json lists the SHA-256 and size of every file; the manifest's own
// SHA-256 is Result.SHA256, which the journal records. A bundle is sealed
// (renamed from .partial) only once its manifest is on disk; one that hit the
// size cap or failed is renamed .incomplete, has no manifest, and holds an
// INCOMPLETE file saying why (internal/evidence writes it). VerifyBundle
// re-checks a sealed bundle.
//
// A Responder is safe for concurrent use: actions on the same container are
// serialised within one Responder (not across processes). It does not own
// the Docker client it is given; whoever created the client (usually with
// NewClient) closes it after the Responder is no longer used, and after
// calling the Responder's Close, which stops the inspect cache's watch.
package docker
