// Package resources samples the CPU and memory accounting of running
// containers from their cgroups and turns sustained anomalies into events.
//
// cpu_high fires when the mean CPU use over a sliding window (cpu_for) is
// at least the threshold, once the window spans cpu_for and holds at least
// cpu_min_samples samples (default: half the samples cpu_for/interval
// would hold, at least 2); a slow sample lowers the mean instead of
// restarting the count. memory_growth fires when the working set grows by
// more than a threshold over the minimum of a window. Each fires once per
// episode and re-arms when the mean falls below the threshold (CPU) or the
// growth under half of it (memory).
//
// While a container is warm (window mean or growth at half the threshold)
// its processes are read from /proc (cgroup.procs, then /proc/PID/stat), so
// that the event names the processes that used the CPU or grew
// (Event.TopProcesses; the first is the event's process). Containers below
// half the threshold cost no /proc reads.
//
// Each controller is read from the hierarchy the Placement given to New
// names (cgroup.ReadPlacement, chosen once at start and logged by the
// detector), so a hybrid host may account CPU on v1 and memory on v2.
//
// A Monitor is driven by one goroutine (Run); Sample is exported for tests
// and is not safe for concurrent use with Run.
package resources
