// Package resources samples the CPU and memory accounting of running
// containers from their cgroups and turns sustained anomalies into events:
// cpu_high when a container stays above a CPU threshold for a duration, and
// memory_growth when its working set grows by more than a threshold within
// a window. Each fires once per episode and re-arms when the container
// comes back below (CPU) or under half the threshold (memory).
//
// A Monitor is driven by one goroutine (Run); Sample is exported for tests
// and is not safe for concurrent use with Run.
package resources
