// Package console is the model and the views of `riposte top`, a live
// incident-response console in the terminal (csysdig's views beside what
// riposte did: incidents, actions, approvals).
//
// It knows nothing of where its data comes from: a Source (the in-process
// detector, or a running `riposte serve` over its authenticated stream)
// sends Updates of plain rows — containers, processes, connections,
// commands typed in interactive shells, file opens, incidents, counters —
// and an Actor runs the actions a keypress asks for through riposte's act
// path (guardrails, approvals, journal). So the package imports neither the
// detector nor the engine, and its views are tested as golden screens.
//
// Model is a bubbletea model: Update and View run on bubbletea's goroutine
// and the Model is not safe for concurrent use; Sources deliver Updates
// through Program.Send (see Run). Run closes nothing it was given: the
// caller closes the Source's resources after Run returns.
package console
