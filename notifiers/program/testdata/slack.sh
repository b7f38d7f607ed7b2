#!/bin/sh
# Falco's `jq '{text: .output}' | curl -d @- -X POST https://hooks.slack.com/...`
# as a script riposte runs with the alert JSON on stdin. The URL comes from
# the environment (env: [PATH, SLACK_WEBHOOK_URL]), never from the alert.
set -eu
jq -c '{text: .output}' | curl -fsS -X POST -H 'Content-Type: application/json' --data-binary @- "$SLACK_WEBHOOK_URL"
