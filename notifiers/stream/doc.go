// Package stream is what riposte's log-pipeline outputs share: the Record
// the engine hands to every output for each alert and each journal entry,
// the Filter that decides which records an output receives (the `stream:`
// section of riposte.yaml), and the Output interface that notifiers/syslog,
// notifiers/file and notifiers/program implement. Package
// notifiers/stream/outputs opens the configured outputs and connects them to
// the durable outbox.
//
// # Records
//
// A Record is built by FromAlert or FromEntry. Its JSON field is the one-line
// JSON of what it describes, exactly as riposte writes it elsewhere: Falco's
// alert shape (so pipelines built for Falco's json_output parse it
// unchanged), or the journal entry as `riposte journal show` prints it, hash
// chain included. The other fields are the facts outputs need without
// decoding that JSON: syslog severity and structured data, filtering.
//
// Delivery is at least once: the engine queues one outbox message per record
// per output and retries a failed Write with backoff, so an output can see
// the same record twice. Every record carries a stable ID (the alert's uuid,
// or the journal entry's seq) and every output emits it, so that receivers
// can drop duplicates; Key is what the outbox dedupes on.
//
// # Priority of journal entries
//
// Alerts have Falco's priority. A journal entry takes the priority of the
// alert it belongs to (or the "priority" its detail records, as
// alert.received does), Informational when it belongs to none, adjusted by
// type so that min_priority keeps what a responder must see (EntryPriority):
// action.failed, action.in_doubt and notification.failed are at least Error;
// action.held_for_approval, action.blocked_protected, approval.denied and
// approval.timeout are at least Warning; alert.duplicate is Debug.
//
// # Loops
//
// Entries that journal a stream delivery (detail key "stream", see
// DeliveryDetailKey) are never streamed: each delivery would journal an entry
// that is delivered again. FromEntry marks them SelfReport and Filter.Match
// refuses them whatever the filter says.
//
// Records and filters are values: safe for concurrent use once built.
// Outputs say in their own package docs whether they are; the three in this
// repository are.
package stream
