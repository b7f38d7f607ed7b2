// Package program is the program output of riposte's record stream: for
// every alert or journal entry that passes the output's filter it runs a
// configured program once, with the record's one-line JSON (Falco's alert
// JSON, or the journal entry) and a newline on standard input — Falco's
// program_output, without the shell.
//
// # Never a shell
//
// The program is given as an argv list and started with exec (fork and
// execve), never through /bin/sh, and nothing of a record is ever
// substituted into argv or the environment: alert text (command lines,
// file names, container names — all chosen by whoever triggered the alert)
// only ever travels as JSON bytes on standard input. The environment is
// riposte's, reduced to the variables the config allows (PATH by default),
// plus RIPOSTE_KIND, RIPOSTE_TYPE and RIPOSTE_PRIORITY, whose values come
// from fixed vocabularies.
//
// Falco's classic recipes, done this way:
//
// program_output: mail -s "Falco Notification" someone@example.com becomes
// an argv that mail(1) receives as is, the JSON becoming the mail's body:
//
//	program:
//	  argv: ["mail", "-s", "riposte alert", "someone@example.com"]
//	  env: [PATH, LANG]
//
// program_output: jq '{text: .output}' | curl -d @- -X POST https://hooks.slack.com/...
// is a pipeline, which needs a shell — so the pipeline goes in a script
// file that the operator writes and owns, and riposte runs that file. The
// alert is data on the script's standard input, never part of its text, and
// the webhook URL (a credential) comes from riposte's environment through
// the allowlist instead of the config or argv:
//
//	#!/bin/sh
//	# /usr/local/lib/riposte/slack.sh
//	set -eu
//	jq -c '{text: .output}' | curl -fsS -X POST -H 'Content-Type: application/json' --data-binary @- "$SLACK_WEBHOOK_URL"
//
// and in the output's config:
//
//	program:
//	  argv: ["/usr/local/lib/riposte/slack.sh"]
//	  env: [PATH, SLACK_WEBHOOK_URL]
//	  timeout: 15s
//
// (testdata/slack.sh is that script; the tests run it against a local HTTP
// receiver.) Journal records have no .output: pair such an output with
// kinds: [alert], or branch on RIPOSTE_KIND in the script.
//
// # Runs, failures, retries
//
// Each run gets at most timeout (default 30s); then, or when the caller's
// context ends, or when the output is closed, the program's whole process
// group is killed with SIGKILL, so the children of a script die with it.
// At most max_concurrent programs of one output run at once; further
// Writes wait for a slot. Standard output is discarded; the first 4 KiB of
// standard error are kept. Run returns a Result (exit status, signal,
// timeout, duration, stderr) for the journal, and on failure a *RunError
// carrying it. A non-zero exit, a kill or a failure to start is retryable
// (the outbox retries with backoff up to its attempts), except the exit
// codes listed in permanent_exit_codes; an invalid record is permanent.
// Delivery is at least once: a program can see the same record twice, and
// the record's "uuid" (alerts) or "seq" (journal entries) tells it so.
//
// A *Program is safe for concurrent use. The caller closes it: Close kills
// the programs still running and waits for them.
package program
