// Package latency summarises latency samples for benchmarks: nearest-rank
// quantiles and milliseconds for tables. Its functions are pure and safe
// for concurrent use.
package latency
