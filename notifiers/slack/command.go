package slack

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/slack-go/slack"
)

// SlashCommand is a parsed `/riposte …` command.
type SlashCommand struct {
	// Verb is help, status, pause, quarantine, kill, snapshot or release.
	Verb string
	// Container is the container the verb acts on ("" for help, status).
	Container   string
	User        Actor
	ChannelID   string
	ResponseURL string

	via string
}

const helpText = "*riposte* commands:\n" +
	"• `/riposte status`: open incidents and what riposte is doing\n" +
	"• `/riposte pause &lt;container&gt;`: freeze its processes (approvers only)\n" +
	"• `/riposte quarantine &lt;container&gt;`: cut it off every network (approvers only)\n" +
	"• `/riposte kill &lt;container&gt;`: kill it (approvers only)\n" +
	"• `/riposte snapshot &lt;container&gt;`: collect evidence\n" +
	"• `/riposte release &lt;container&gt;`: undo pause and quarantine (approvers only)\n" +
	"• `/riposte help`: this text"

func usage(err error) string { return escape(err.Error()) + "\n\n" + helpText }

func slashFromForm(v url.Values) slack.SlashCommand {
	return slack.SlashCommand{
		UserID:      v.Get("user_id"),
		UserName:    v.Get("user_name"),
		ChannelID:   v.Get("channel_id"),
		Command:     v.Get("command"),
		Text:        v.Get("text"),
		ResponseURL: v.Get("response_url"),
	}
}

// ParseSlashCommand checks a slash command and its text.
func ParseSlashCommand(sc slack.SlashCommand) (SlashCommand, error) {
	cmd := SlashCommand{
		User:        Actor{ID: sc.UserID, Name: cleanName(sc.UserName)},
		ChannelID:   sc.ChannelID,
		ResponseURL: sc.ResponseURL,
	}
	if !userIDPattern.MatchString(sc.UserID) {
		return SlashCommand{}, errors.New("the command carries no Slack user id")
	}
	if sc.ResponseURL != "" {
		if u, err := url.Parse(sc.ResponseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return SlashCommand{}, errors.New("the command's response_url is not an http(s) URL")
		}
	}
	verb, arg, err := ParseCommandText(sc.Text)
	if err != nil {
		return SlashCommand{}, err
	}
	cmd.Verb, cmd.Container = verb, arg
	return cmd, nil
}

// ParseCommandText splits the text after `/riposte` into a verb and its
// container argument, checking both.
func ParseCommandText(text string) (verb, container string, err error) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return "help", "", nil
	}
	verb = strings.ToLower(f[0])
	switch verb {
	case "help", "status":
		if len(f) > 1 {
			return "", "", fmt.Errorf("`%s` takes no argument", verb)
		}
		return verb, "", nil
	case "pause", "quarantine", "kill", "snapshot", "release":
		if len(f) != 2 {
			return "", "", fmt.Errorf("usage: `/riposte %s <container>`", verb)
		}
		if !containerPattern.MatchString(f[1]) {
			return "", "", fmt.Errorf("%q is not a container name or id", clip(f[1]))
		}
		return verb, f[1], nil
	}
	return "", "", fmt.Errorf("unknown command %q", clip(f[0]))
}
