// Package detector is riposte's eBPF detector: it loads the sensor in
// package bpf, attributes every kernel event to its container in the
// kernel, enriches it (process tree, user name, Docker name/image/labels)
// and evaluates Falco-style rules, emitting alerts in Falco's JSON shape
// (internal/alert).
//
// # Pipeline
//
//	kernel ring buffer -> reader -> bounded queue -> state -> workers -> emit
//
// The kernel sends only what is needed: Run fills the sensor's map of
// wanted event types from the rules (a type no enabled rule applies to, and
// failed calls when every rule for the type excludes them with "not
// evt.failed", stay in the kernel), and while any subscription exists it
// sends everything; Subscribe and its cancel refill the map. What the
// kernel drops on purpose is counted per type (Stats.KernelFilteredByType).
//
// The reader never blocks: a record that does not fit in the queue
// (Config.QueueSize) is dropped and counted, as the kernel counts what does
// not fit in the ring buffer. The state goroutine decodes records in kernel
// order, keeps the process table (seeded from /proc), maps cgroups to
// containers and feeds subscribers; workers (Config.Workers) look containers
// up in Docker (cached, refreshed from Docker events), evaluate rules and
// emit alerts. A sampler reads container cgroup statistics for the CPU and
// memory rules (Config.Resources).
//
// # API
//
//	d, err := detector.New(cfg, detector.Deps{Logger: log, Docker: cli, Registerer: reg})
//	go d.Run(ctx, func(a alert.Alert) { ... })   // blocks until ctx ends
//	<-d.Ready()                                    // sensor attached
//	ch, cancel := d.Subscribe(containerID, 4096)   // every event of one container
//
// New loads and checks the rules (file:line errors) without touching the
// kernel; Run loads the sensor and fails with a clear error without root or
// kernel BTF. emit is never called concurrently. Subscribe delivers
// event.Event values (JSON-serialisable, documented in package event);
// slow subscribers lose events (counted) and never slow the pipeline.
// To evaluate rules without a kernel (tests, `capture read --filter`), use
// package rules: rules.Compile / Ruleset.Eval / rules.CompileFilter, or
// LoadRules here for the default or configured rule set.
//
// # Metrics
//
// With Deps.Registerer set: riposte_detector_events_total{type},
// riposte_detector_kernel_dropped_total{type},
// riposte_detector_queue_dropped_total, riposte_detector_queue_length,
// riposte_detector_subscriber_dropped_total,
// riposte_detector_decode_errors_total,
// riposte_detector_rule_errors_total{rule},
// riposte_detector_alerts_total{rule}.
//
// # Concurrency and ownership
//
// # Enforcement
//
// With Config.Enforce enabled and rules marked `enforce:`, Run loads the
// enforcement program (package enforce) before the sensor, so that on the
// exec tracepoint it runs first and its decision is recorded before the
// exec event can be read. One goroutine arms containers' cgroups: those
// running at start, then each container at its first event, once
// Deps.Protected said it is not protected. The alert of an enforced rule
// carries what the kernel did (alert.FieldEnforceOutcome and friends).
//
// A Detector is safe for concurrent use; Run runs once at a time. Run
// closes the sensor, the enforcement program (nothing is enforced after
// Run returns) and every subscription channel when it returns. The
// caller owns the Docker client and closes it after Run returns.
package detector
