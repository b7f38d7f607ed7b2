// Package actions defines what every responder and notifier shares: the Spec
// an integration publishes about each action it implements (parameters,
// privileges, whether it is destructive), the Request the engine hands it,
// the Result it returns, and the classification of failures as retryable or
// permanent.
//
// Specs are plain values, safe for concurrent use. A Catalog is built once at
// start-up (cmd/riposte/assembly/integrations) and only read afterwards.
package actions
