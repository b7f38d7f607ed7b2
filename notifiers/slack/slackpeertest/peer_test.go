package slackpeertest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// Slack's documented example (Verifying requests from Slack): this secret,
// timestamp and body give this signature.
func TestSignMatchesSlackExample(t *testing.T) {
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := Sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, []byte(body))
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// SignedRequest passes slack-go's own verifier.
func TestSignedRequestVerifies(t *testing.T) {
	r := SignedRequest("s3cr3t-signing", "http://127.0.0.1/x", InteractionForm(slack.InteractionCallback{Type: slack.InteractionTypeBlockActions}), time.Now())
	body := []byte(InteractionForm(slack.InteractionCallback{Type: slack.InteractionTypeBlockActions}).Encode())
	sv, err := slack.NewSecretsVerifier(r.Header, "s3cr3t-signing")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Errorf("slack-go refuses the peer's signature: %v", err)
	}
}

func TestValidateBlocks(t *testing.T) {
	btn := func(id, text string) map[string]any {
		return map[string]any{"type": "button", "action_id": id, "text": map[string]any{"type": "plain_text", "text": text}, "value": "v"}
	}
	section := map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "hi"}}
	many := make([]any, 51)
	for i := range many {
		many[i] = section
	}
	tests := []struct {
		name   string
		blocks any
		want   string
	}{
		{"ok", []any{section, map[string]any{"type": "actions", "elements": []any{btn("a", "A"), btn("b", "B")}}}, ""},
		{"51 blocks", many, "51 blocks, at most 50"},
		{"long header", []any{map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": strings.Repeat("x", 151)}}}, "text of 151 characters, at most 150"},
		{"mrkdwn header", []any{map[string]any{"type": "header", "text": map[string]any{"type": "mrkdwn", "text": "x"}}}, `text type "mrkdwn", want "plain_text"`},
		{"empty section", []any{map[string]any{"type": "section"}}, "section without text or fields"},
		{"11 fields", []any{map[string]any{"type": "section", "fields": func() []any {
			f := make([]any, 11)
			for i := range f {
				f[i] = map[string]any{"type": "mrkdwn", "text": "x"}
			}
			return f
		}()}}, "11 fields, at most 10"},
		{"duplicate action_id", []any{map[string]any{"type": "actions", "elements": []any{btn("a", "A"), btn("a", "B")}}}, `action_id "a" used twice`},
		{"long button text", []any{map[string]any{"type": "actions", "elements": []any{btn("a", strings.Repeat("x", 76))}}}, "text of 76 characters, at most 75"},
		{"bad style", []any{map[string]any{"type": "actions", "elements": []any{func() map[string]any { b := btn("a", "A"); b["style"] = "red"; return b }()}}}, "button style red"},
		{"long confirm", []any{map[string]any{"type": "actions", "elements": []any{func() map[string]any {
			b := btn("a", "A")
			b["confirm"] = map[string]any{"title": map[string]any{"type": "plain_text", "text": "t"}, "text": map[string]any{"type": "mrkdwn", "text": strings.Repeat("x", 301)},
				"confirm": map[string]any{"type": "plain_text", "text": "ok"}}
			return b
		}()}}}, "confirm text: text of 301 characters, at most 300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := json.Marshal(tt.blocks)
			err := ValidateBlocks(string(raw))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid blocks refused: %v", err)
				}
				return
			}
			if err == nil || !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("error %v, want …%s", err, tt.want)
			}
		})
	}
}

func TestWebAPIAnswersLikeSlack(t *testing.T) {
	p := New("xoxb-good", "xapp-good")
	defer p.Close()
	post := func(method, token string, form string) map[string]any {
		t.Helper()
		r, _ := http.NewRequest(http.MethodPost, p.APIURL()+method, strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", method, resp.StatusCode, err)
		}
		return m
	}
	for _, tt := range []struct {
		method, token, form, err string
	}{
		{"chat.postMessage", "", "channel=%23ir&text=x", "not_authed"},
		{"chat.postMessage", "xoxb-bad", "channel=%23ir&text=x", "invalid_auth"},
		{"chat.postMessage", "xoxb-good", "channel=%23nowhere&text=x", "channel_not_found"},
		{"chat.postMessage", "xoxb-good", "channel=%23ir", "no_text"},
		{"chat.postMessage", "xoxb-good", "channel=%23ir&blocks=%5B%7B%22type%22%3A%22section%22%7D%5D", "invalid_blocks"},
		{"chat.update", "xoxb-good", "channel=C0IR&ts=1.000001&text=x", "message_not_found"},
		{"usergroups.users.list", "xoxb-good", "usergroup=S0NONE", "no_such_subteam"},
	} {
		if m := post(tt.method, tt.token, tt.form); m["ok"] != false || m["error"] != tt.err {
			t.Errorf("%s %s: %v, want error %s", tt.method, tt.form, m, tt.err)
		}
	}
	m := post("chat.postMessage", "xoxb-good", "channel=%23ir&text=hello")
	if m["ok"] != true || m["channel"] != "C0IR" || m["ts"] == "" {
		t.Fatalf("post: %v", m)
	}
	m = post("chat.update", "xoxb-good", "channel=C0IR&ts="+m["ts"].(string)+"&text=edited")
	if m["ok"] != true {
		t.Fatalf("update: %v", m)
	}
	if msgs := p.Messages(); len(msgs) != 1 || msgs[0].Text != "edited" || msgs[0].Updates != 1 {
		t.Errorf("messages %+v", msgs)
	}
}
