// Package anchor keeps copies of the journal's head outside the database,
// so that a rewrite of the whole chain, a cut tail or an emptied journal —
// each consistent on its own, and so invisible to the chain check — is
// caught against them.
//
// A Checkpoint is the head (seq, hash, time) signed with an ed25519 key.
// The Writer appends one to the journal (entry type store.JournalCheckpoint,
// which the stream outputs carry to syslog, files and programs like any
// entry) and to an anchor file (JSON lines) every Every entries, and on
// Close. Check compares a journal with checkpoints: the entry at each
// checkpoint's seq must exist and have its hash.
//
// A *Writer is safe for concurrent use; its owner calls Close once, after
// the last journal write it wants anchored. Key and the functions are
// stateless.
package anchor
