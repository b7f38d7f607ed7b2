// Package slack is riposte's Slack integration: the slack.notify action and
// the on-call side of an incident in Slack.
//
// Notify posts one Block Kit message per incident (rule, priority,
// container, image, host, key fields, what riposte already did, and the
// buttons Pause, Quarantine, Kill, Snapshot, Release, Acknowledge). The
// channel and ts of that message are kept per incident (Threads), so a
// second notify, a retried notify and later steps (Update) update the same
// message with chat.update and reply in its thread instead of posting new
// messages. A throttled update (actions.Request.Fold) adds the alerts it
// stands for to the message's count and replies once with "+37 more in 5
// min" and the latest alert. Without a bot token, an incoming webhook is
// used: the same message without buttons, never updated.
//
// Interactivity: InteractionsHandler and CommandsHandler serve
// POST /v1/slack/interactions and POST /v1/slack/commands, verified with the
// signing secret (v0 HMAC, five-minute window, replays refused: the
// canonical request, timestamp and body hash, is recorded in Deps.Replays,
// the store, so a re-spelled signature or a restart does not reopen it).
// RunSocketMode
// serves the same over Socket Mode. Containment buttons, the same slash
// commands and approvals are reserved to the configured approvers (user ids
// or user groups, membership cached); others get an ephemeral refusal and the
// Dispatcher is told (journal: approval.denied). RequestApproval posts
// Approve/Deny buttons for held actions.
//
// Errors are classified for the outbox: 429 (with its Retry-After, see
// RetryAfter on the error), 5xx, network failures and Slack's transient
// error codes are retryable (actions.IsRetryable); everything else is
// permanent. Nothing sleeps inside Run. No error or log line carries a token,
// the signing secret or the webhook URL.
//
// A *Slack is safe for concurrent use. Button presses and commands are
// answered at once and handled in the background; Close waits for that work.
// The caller owns Deps.HTTPClient, Deps.Threads and Deps.Replays.
package slack
