// Package slackpeertest is a local Slack for tests: slack-go's slacktest server
// with the Web API methods riposte uses implemented the way Slack answers
// them (chat.postMessage, chat.update, usergroups.list,
// usergroups.users.list, apps.connections.open), response_url and incoming
// webhook endpoints, a Socket Mode WebSocket, and helpers that press a
// button of a posted message and sign the interaction exactly as Slack
// does (v0 HMAC-SHA256 of "v0:<timestamp>:<body>" with the signing secret).
//
// Bot and app tokens are checked (not_authed, invalid_auth), Block Kit is
// checked against Slack's documented limits (invalid_blocks), unknown
// channels and messages fail as in Slack (channel_not_found,
// message_not_found), and failures can be queued per method (HTTP 429 with
// Retry-After, 5xx, or a Slack error code).
//
// A Peer is safe for concurrent use. Close stops its server and closes the
// Socket Mode connections. It listens on 127.0.0.1 only.
package slackpeertest
