// Package app wires riposte together for the commands: it reads the
// configuration, opens the store (OpenStore: SQLite in the data directory,
// or PostgreSQL when store.url / --store / RIPOSTE_STORE names one), loads
// playbooks, builds the integrations
// from the registry, and runs the engine, the HTTP server and the detector.
// cmd/riposte only parses flags and calls in here.
//
// Serve also listens on the local socket riposte act uses, reloads the
// credentials (and the TLS files) on SIGHUP, and signs checkpoints of the
// journal's head (internal/anchor) periodically and once more after the
// engine stopped.
//
// An *App owns everything it opened; Close releases it. Serve blocks until
// its context ends, then drains (HTTP requests on the listener and the
// socket, in-flight alerts) before it returns; it removes the socket and
// serve.json.
package assembly
