// Package rules embeds riposte's default detection rules (the *.yaml files
// in this directory), so that `riposte detect` works with no flags. The
// files are also the reference example of the rule format; a test in
// detector/rules loads every one of them.
//
// FS is read-only and safe for concurrent use.
package rules
