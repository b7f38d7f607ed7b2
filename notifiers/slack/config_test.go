package slack_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	rslack "github.com/riposte-sec/riposte/notifiers/slack"
)

func TestValidate(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		cfg  rslack.Config
		want string
	}{
		{"empty", rslack.Config{},
			"slack config: set token_env or token_file (bot token, with buttons), or webhook_url_env or webhook_url_file (incoming webhook, without buttons)"},
		{"token twice", rslack.Config{TokenEnv: "T", TokenFile: "/t"}, "slack config: slack bot token: set token_env or token_file, not both"},
		{"socket mode without app token", rslack.Config{TokenEnv: "T", SocketMode: &yes},
			"slack config: socket_mode needs an app-level token: set app_token_env or app_token_file"},
		{"app token without socket mode", rslack.Config{TokenEnv: "T", AppTokenEnv: "A"},
			"slack config: app_token_env/app_token_file are only used with socket_mode: true"},
		{"signing secret with webhook only", rslack.Config{WebhookURLEnv: "W", SigningSecretEnv: "S"},
			"slack config: interactivity (signing_secret_*) needs a bot token: set token_env or token_file"},
		{"bad approvers", rslack.Config{TokenEnv: "T", Approvers: []string{"alice", "U024BE7LH", "@OnCall", "S0614TZR7", "@oncall"}},
			"slack config: approvers: approver \"alice\": want a user id (U…, W…), a user-group id (S…) or a user-group handle (@oncall)\n" +
				"approvers: approver \"@OnCall\": want a user id (U…, W…), a user-group id (S…) or a user-group handle (@oncall)"},
		{"negative durations and bad api url", rslack.Config{TokenEnv: "T", Timeout: -time.Second, APIURL: "slack.com/api"},
			"slack config: timeout: must not be negative, got -1s\napi_url: want an http(s) URL ending in /, got \"slack.com/api\""},
		{"token and webhook", rslack.Config{TokenEnv: "T", WebhookURLEnv: "W"},
			"slack config: set a bot token or an incoming webhook URL, not both: the webhook is the mode without a bot token"},
		{"ok bot", rslack.Config{TokenFile: "/run/secrets/slack", SigningSecretEnv: "S", Channel: "#ir", Approvers: []string{"U024BE7LH", "@oncall"}}, ""},
		{"ok webhook", rslack.Config{WebhookURLFile: "/run/secrets/hook"}, ""},
		{"ok socket", rslack.Config{TokenEnv: "T", AppTokenEnv: "A", SocketMode: &yes}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestConfigYAMLKeys(t *testing.T) {
	src := `
token_env: SLACK_BOT_TOKEN
signing_secret_file: /run/secrets/slack-signing
socket_mode: true
app_token_env: SLACK_APP_TOKEN
channel: "#ir"
approvers: [U024BE7LH, "@oncall"]
group_cache_ttl: 10m
action_timeout: 1m
timeout: 5s
api_url: http://127.0.0.1:9/api/
`
	var c rslack.Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.TokenEnv != "SLACK_BOT_TOKEN" || c.SigningSecretFile != "/run/secrets/slack-signing" || c.SocketMode == nil || !*c.SocketMode || c.AppTokenEnv != "SLACK_APP_TOKEN" || c.Channel != "#ir" || len(c.Approvers) != 2 ||
		c.GroupCacheTTL != 10*time.Minute || c.ActionTimeout != time.Minute || c.Timeout != 5*time.Second || c.APIURL != "http://127.0.0.1:9/api/" {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestNewReportsMissingSecrets(t *testing.T) {
	cfg := rslack.Config{TokenEnv: "NO_SUCH_TOKEN", SigningSecretFile: "/nonexistent/slack-signing"}
	_, err := rslack.New(cfg, rslack.Deps{LookupEnv: env(nil)})
	want := "slack: slack bot token: environment variable NO_SUCH_TOKEN (token_env) is not set\n" +
		"slack signing secret: read signing_secret_file /nonexistent/slack-signing: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("New:\n%v\nwant:\n%s", err, want)
	}
}
