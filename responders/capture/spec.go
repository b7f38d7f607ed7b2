package capture

import (
	"strconv"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Specs describes the actions this responder implements. The parameters'
// defaults are the Default constants of config.go, which capture.start
// applies: each is written once.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "capture.start", Help: "Record the container's system calls (from the eBPF detector) and its network traffic (pcapng, AF_PACKET inside its network namespace) into the incident's evidence directory.",
			Params: []actions.Param{
				{Name: "duration", Type: actions.Duration, Default: DefaultDuration.String(), Help: "how long to record (capped by capture.max_duration)"},
				{Name: "max_bytes", Type: actions.Bytes, Default: DefaultParamBytes.String(), Help: "stop when the files reach this size (at least 64KiB; capped by capture.max_bytes)"},
				{Name: "network", Type: actions.Bool, Default: strconv.FormatBool(DefaultNetwork), Help: "record a pcapng of the container's interfaces"},
				{Name: "syscalls", Type: actions.Bool, Default: strconv.FormatBool(DefaultSyscalls), Help: "record the container's system-call events"},
				{Name: "wait", Type: actions.Bool, Default: strconv.FormatBool(DefaultWait), Help: "return when the capture ends, with the files' hashes, instead of as soon as it records"},
			},
			Privileges: []string{"root (CAP_BPF, CAP_PERFMON, CAP_NET_RAW, CAP_SYS_ADMIN to enter the container's network namespace)", "access to the Docker API socket"},
			Container:  true},
	}
}
