// Package topfeed feeds `riposte top` (package internal/console): Tracker
// turns the detector's events into the console's rows (process trees,
// new connections, commands typed in interactive shells, file opens);
// Local runs a detector in-process and polls Docker and the store; Remote
// reads a running server's stream (GET /v1/top/stream, bearer token);
// Handler serves that stream from a server's detector.
//
// A Tracker is not safe for concurrent use; Local and Remote call send
// from one goroutine. Local runs the detector it is given and stops it
// when ctx ends; it closes nothing else.
package topfeed
