// Package syslog is the syslog output of riposte's record stream: every
// alert and journal entry that passes the output's filter becomes one RFC
// 5424 message, sent over UDP (RFC 5426), TCP (RFC 6587, octet-counting
// framing by default) or a local unix socket, datagram (/dev/log) or stream.
//
// The message (see Syslog.Format):
//
//	<133>1 2026-11-20T09:14:03.512348Z node-3 riposte 4242 alert [riposte@32473 id="6f1c…" kind="alert" priority="Notice" rule="Terminal shell in container" container_id="3f9a1c2b7d4e" container_name="payments-api" container_image="registry.local/payments:1.4" incident="inc-…" alert_id="6f1c…" host="node-3"] BOM{"uuid":"6f1c…","time":…}
//
// Its parts:
//
//   - PRI: facility (default local0; authpriv keeps records in the
//     restricted auth.log rather than /var/log/syslog on Debian) times 8
//     plus the severity mapped from the priority: Emergency 0, Alert 1,
//     Critical 2, Error 3, Warning 4, Notice 5, Informational 6, Debug 7.
//   - TIMESTAMP is the record's time (the alert's, or the journal entry's),
//     not the time of sending: a retried record is the same message.
//   - APP-NAME riposte, PROCID riposte's pid, MSGID the record type: "alert"
//     or the journal entry type ("action.succeeded").
//   - STRUCTURED-DATA: one element, SD-ID riposte@32473 by default. 32473
//     is the private enterprise number RFC 5612 reserves for documentation;
//     an organisation with its own number sets sd_id. The id parameter is
//     the stable record id (alert uuid or journal seq): receivers dedupe on
//     it, since delivery is at least once.
//   - MSG: a UTF-8 BOM, as RFC 5424 section 6.4 requires for UTF-8 text,
//     then the record's one-line JSON (Falco's alert JSON, or the journal
//     entry). Set bom: false for a receiver that hands MSG to a JSON parser
//     without stripping the BOM.
//
// Delivery: TCP and unix stream sockets have no acknowledgement in syslog,
// so before each message the connection is checked (without blocking) for
// having been closed by the receiver, and replaced; a write that fails on a
// kept connection is tried once on a new one. A record is still lost if the
// receiver dies after taking it into its socket buffer and before reading
// it; UDP gives no guarantee at all. Where every record must arrive, use the
// file output and a log shipper. Every send failure is retryable
// (actions.IsRetryable); a record that cannot be formatted (invalid, or
// whose header alone exceeds max_message_size) is permanent. Oversized
// records are cut, never split: the structured data then says
// truncated="<original JSON length>".
//
// A *Syslog is safe for concurrent use: writes are serialised on one
// connection. Close closes it; the caller closes the Syslog.
//
// The tests run against syslogtest, a strict RFC 5424 receiver in this
// repository, on loopback UDP and TCP and on unix sockets.
package syslog
