// Package topfeed feeds `riposte top` (package internal/console): Tracker
// turns the detector's events into the console's rows (process trees,
// new connections with their result, commands typed in interactive
// shells, file opens, deletes, renames, chmods, links and truncates);
// CompileRowFilter compiles the console's / filter as an expression of
// the detector's rule language, run on rows turned back into events;
// Local runs a detector in-process and polls Docker and the store; Remote
// reads a running server's stream (GET /v1/top/stream, bearer token);
// Handler serves that stream from a server's detector; Replay reads a
// capture file into the same rows.
//
// A Tracker is not safe for concurrent use; a RowFilter is; Local, Remote and Handler
// call send from one goroutine. Local runs the detector it is given and
// stops it when ctx ends; it closes nothing else (the Docker client and the
// capture file are the caller's).
package topfeed
