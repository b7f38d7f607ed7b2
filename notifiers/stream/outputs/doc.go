// Package outputs is the `stream:` section of riposte.yaml made real: the
// one explicit list of record-stream outputs (syslog, file, program), each
// named and with its filter, opened from config, and the glue between them
// and the durable outbox: Messages turns one record into one outbox message
// per output whose filter passes it, and Deliver sends one such message.
//
//	stream:
//	  outputs:
//	    - name: siem
//	      kinds: [alert, journal]
//	      min_priority: notice
//	      syslog: {network: tcp, address: "127.0.0.1:6514", facility: authpriv}
//	    - name: archive
//	      file: {path: /var/log/riposte/riposte.jsonl, max_size: 100MiB, max_files: 10}
//	    - name: mail-oncall
//	      kinds: [alert]
//	      min_priority: critical
//	      program: {argv: ["mail", "-s", "riposte alert", "oncall@example.com"], timeout: 30s}
//
// The engine, for every alert it takes and every journal entry appended,
// builds a stream.Record (stream.FromAlert, stream.FromEntry) and enqueues
// Messages(record) — Enqueue dedupes on the message key, so enqueueing the
// same record again (after a crash, or from a journal follower that
// restarts from an older seq) adds nothing. The outbox worker hands
// messages of kind MessageKind to Deliver and retries retryable failures
// with backoff. Journal entries written about a delivery must carry the
// detail Deliver returns (its "stream" key marks them, and they are never
// streamed again: see stream.DeliveryDetailKey).
//
// A *Set is safe for concurrent use; Close closes every output.
package outputs
