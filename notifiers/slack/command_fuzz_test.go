package slack_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	rslack "github.com/riposte-sec/riposte/notifiers/slack"
)

// FuzzParseSlashCommand feeds the form body of /v1/slack/commands (after
// the signature check) to the command parser.
func FuzzParseSlashCommand(f *testing.F) {
	for _, text := range []string{"", "help", "status", "pause web-1", "kill 3f9a1c2b7d4e", "release a b", "snapshot <@U1>", "PAUSE x"} {
		f.Add(url.Values{"user_id": {"U0ALICE"}, "user_name": {"alice"}, "channel_id": {"C0IR"}, "command": {"/riposte"},
			"text": {text}, "response_url": {"https://hooks.slack.com/commands/T0/1/x"}}.Encode())
	}
	f.Add("user_id=U0ALICE&text=pause%00x&response_url=javascript:alert(1)")
	f.Add("text=kill+web&user_id=")
	f.Fuzz(func(t *testing.T, body string) {
		v, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		cmd, err := rslack.ParseSlashCommand(slack.SlashCommand{UserID: v.Get("user_id"), UserName: v.Get("user_name"),
			ChannelID: v.Get("channel_id"), Command: v.Get("command"), Text: v.Get("text"), ResponseURL: v.Get("response_url")})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		switch cmd.Verb {
		case "help", "status":
			if cmd.Container != "" {
				t.Fatalf("%s with container %q", cmd.Verb, cmd.Container)
			}
		case "pause", "quarantine", "kill", "snapshot", "release":
			if cmd.Container == "" || strings.ContainsAny(cmd.Container, " <>&\n\x00") {
				t.Fatalf("%s accepted container %q", cmd.Verb, cmd.Container)
			}
		default:
			t.Fatalf("accepted verb %q", cmd.Verb)
		}
		if !strings.HasPrefix(cmd.User.ID, "U") && !strings.HasPrefix(cmd.User.ID, "W") {
			t.Fatalf("accepted user %q", cmd.User.ID)
		}
	})
}
