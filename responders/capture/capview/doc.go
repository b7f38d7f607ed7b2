// Package capview prints riposte capture files (package capfile) for
// people and tools: the events, one line each (sysdig style) or as JSON
// lines, filtered with the detector's rule language (detector/rules
// CompileFilter: `evt.type == "open" && fd.name startsWith "/etc"`), and
// the incident-response views
//
//   - procs: the process tree, from the state header and the fork, exec
//     and exit events, with command lines, start and end;
//   - connections: new connections, connect (out) and accept (in), with
//     client and server addresses and the result;
//   - spy-users: commands run from interactive shells — execs whose
//     process or an ancestor is a shell (sh, bash, ash, ...) with a
//     controlling terminal, like sysdig's spy_users chisel;
//   - files: files opened, with flags and the fd, and changes to the file
//     tree (chmod, symlink, link, unlink, rename, truncate).
//
// It is what `riposte capture read` calls; cmd only parses the flags.
// Render reads a capfile.Reader to the end and writes to an io.Writer; it
// keeps state for one file and is not safe for concurrent use. It closes
// nothing.
package capview
