package docker

import (
	"slices"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Parameter defaults, written once: the specs show them and the actions
// apply them.
const (
	DefaultGrace  = 10 * time.Second // container.stop's grace
	DefaultSignal = "KILL"           // container.kill's signal
)

var dockerAPI = []string{"access to the Docker API socket (/var/run/docker.sock)"}

// freezing is what pause, unpause and release need besides the API with
// docker.pause: freezer.
var freezing = append(slices.Clone(dockerAPI), "with docker.pause: freezer, the host's /proc and write access to its cgroup file system")

// ActionRelease undoes quarantine and pause.
const ActionRelease = "container.release"

// Specs describes the actions this responder implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "container.pause", Help: "Freeze every process of the container (cgroup freezer, through Docker or, with docker.pause: freezer, directly); memory and state are kept for forensics.",
			Privileges: freezing, Destructive: true, Container: true, Idempotent: true},
		{Name: "container.unpause", Help: "Thaw a paused container.",
			Privileges: freezing, Container: true},
		{Name: "container.stop", Help: "Stop the container: SIGTERM, then SIGKILL after the grace period.",
			Params:     []actions.Param{{Name: "grace", Type: actions.Duration, Default: DefaultGrace.String(), Help: "time between SIGTERM and SIGKILL"}},
			Privileges: dockerAPI, Destructive: true, Container: true},
		{Name: "container.kill", Help: "Send a signal to the container's main process.",
			Params:     []actions.Param{{Name: "signal", Type: actions.Signal, Default: DefaultSignal, Help: "signal name or number"}},
			Privileges: dockerAPI, Destructive: true, Container: true},
		{Name: "container.quarantine", Help: "Disconnect the container from every network (recorded, so release can reconnect); it keeps running for forensics but can no longer talk.",
			Privileges: dockerAPI, Destructive: true, Container: true},
		{Name: ActionRelease, Releases: true, Help: "Undo quarantine and pause: reconnect the networks quarantine recorded and unpause.",
			Privileges: freezing, Container: true},
		{Name: "container.snapshot", Help: "Collect an evidence bundle: inspect, logs, process list, changed files, filesystem export, optional image commit; manifest with SHA-256 of every file.",
			Params: []actions.Param{
				{Name: "logs", Type: actions.Int, Default: "snapshot.log_lines from config (1000)", Help: "last N lines of logs; 0 for none"},
				{Name: "export", Type: actions.Bool, Default: "true", Help: "include a tar export of the filesystem"},
				{Name: "commit", Type: actions.Bool, Default: "false", Help: "also commit the container to an image riposte/evidence:<short id>-<snapshot id>"},
				{Name: "max_bytes", Type: actions.Bytes, Default: "snapshot.max_bytes from config (1GiB)", Help: "bundle size cap; can lower the config's cap, not raise it"},
			},
			Privileges: append([]string{"write access to the evidence directory"}, dockerAPI...), Container: true},
	}
}
