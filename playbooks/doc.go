// Package playbooks is riposte's playbook model: the YAML format, a strict
// loader that reports every error with file:line, playbook and field, the
// matcher that finds the playbooks an alert triggers, and the planner that
// renders their actions.
//
// A Set is immutable once loaded and safe for concurrent use; Match and
// Explain may be called from many goroutines.
//
// Matching order: playbooks sort by `order`, ties keep file order (files in
// the order given, directories in lexical order). A matched playbook with
// `continue: false` stops every later playbook for that alert. Playbooks
// that name exact rules are indexed by rule name, so an alert only looks at
// the playbooks that name its rule plus those that use globs or no rule
// filter.
//
// Priorities compare by severity everywhere: "priority Notice < Warning".
// In expressions `priority` is an integer and Emergency, Alert, Critical,
// Error, Warning, Notice, Informational and Debug are constants, so
// `priority >= Critical` reads "at least Critical".
package playbooks
