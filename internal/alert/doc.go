// Package alert is riposte's alert model: the Falco JSON wire format
// (uuid, time, rule, priority, output, output_fields, source, tags,
// hostname) that the eBPF detector emits and that Falco, Falcosidekick and
// compatible tools post to the webhook.
//
// Decode is strict: a missing rule, an unknown priority or an unparseable
// time is an error that names the field and the value. Values are plain data
// and safe to share between goroutines once decoded, as long as nobody
// mutates them.
package alert
