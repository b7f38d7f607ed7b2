// Package syslogtest is a strict RFC 5424 syslog receiver for tests: it
// listens on loopback UDP or TCP, or on a unix socket (stream or datagram),
// parses every message it receives with Parse, and hands them to the test
// in order with Next. Stream transports must use octet-counting framing (RFC
// 6587 section 3.4.1); a frame or a message that does not parse is reported
// by Next as an error, so a test cannot miss it.
//
// A Server is safe for concurrent use; Close stops it and closes every
// connection it accepted.
package syslogtest
