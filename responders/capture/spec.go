package capture

import "github.com/riposte-sec/riposte/internal/actions"

// Specs describes the actions this responder implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "capture.start", Help: "Record the container's system calls (from the eBPF detector) and its network traffic (pcapng, AF_PACKET inside its network namespace) into the incident's evidence directory.",
			Params: []actions.Param{
				{Name: "duration", Type: actions.Duration, Default: "30s", Help: "how long to record"},
				{Name: "max_bytes", Type: actions.Bytes, Default: "100MiB", Help: "stop when the files reach this size"},
				{Name: "network", Type: actions.Bool, Default: "true", Help: "record a pcapng of the container's interfaces"},
				{Name: "syscalls", Type: actions.Bool, Default: "true", Help: "record the container's system-call events"},
			},
			Privileges: []string{"root (CAP_BPF, CAP_PERFMON, CAP_NET_RAW, CAP_SYS_ADMIN to enter the container's network namespace)", "access to the Docker API socket"},
			Container:  true},
	}
}
