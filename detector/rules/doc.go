// Package rules is the detector's rule language: Falco-style YAML files of
// rule, macro and list items, conditions in expr-lang over a typed
// environment with Falco's dotted field names (evt.type, proc.name,
// proc.pname, fd.name, fd.sip, container.id, container.image.repository,
// user.name, ...; FieldNames lists them all), and outputs written with
// Falco's %field syntax or as a Go template ({{ .proc.name }}).
//
//   - list: shell_binaries
//     items: [sh, bash, ash, zsh]
//   - macro: spawned_process
//     condition: evt.type == "exec"
//   - rule: Shell spawned in container
//     desc: A shell started inside a container.
//     condition: spawned_process and container.id != "host" and proc.name in shell_binaries
//     output: Shell spawned (user=%user.name container=%container.name cmdline=%proc.cmdline)
//     priority: Warning
//     tags: [container, shell]
//     enabled: true
//
// Macros and lists are expanded by name wherever they appear as a whole
// identifier; a list item that names another list is spliced in. Loading is
// strict: unknown keys, missing fields, bad priorities, unknown fields in
// conditions or outputs, unknown event types, duplicates and cycles are all
// reported, each as "file:line: kind "name": message", joined with
// errors.Join. Conditions are indexed by the event types they test
// (evt.type == "x" / evt.type in [...] in a top-level conjunction) so that
// a rule only runs for events it can match.
//
// A rule may carry `enforce: sigkill` or `enforce: sigstop`: the detector
// then also stops the process in the kernel at exec (package
// detector/enforce). Only a condition the kernel can decide alone compiles:
// an exec in a container of a program named by proc.name or proc.exepath
// (Rule.Enforce holds the names and paths); any other is a load error
// saying why. Ruleset.Enforced lists those rules.
//
// Ruleset.Eval turns a matching event into an alert.Alert in Falco's shape;
// CompileFilter (and Ruleset.Filter, with macros) evaluates the same
// language over events without any kernel, for tests and for
// `capture read --filter`. A compiled Ruleset or Filter is immutable and
// safe for concurrent use.
package rules
