package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"

	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Actor is the Slack user who pressed a button or ran a command.
type Actor struct {
	ID   string // U024BE7LH
	Name string // Slack username, for people
}

// String is the journal's actor form: "slack:U024BE7LH (alice)".
func (a Actor) String() string {
	if a.Name == "" {
		return "slack:" + a.ID
	}
	return "slack:" + a.ID + " (" + a.Name + ")"
}

// Command is what a button press or a slash command asks riposte to do.
type Command struct {
	// Action is a catalog action (container.pause, container.quarantine,
	// container.kill, container.snapshot, container.release) or
	// ActionAcknowledge.
	Action string
	// Incident is set for buttons; "" for slash commands.
	Incident string
	// Container is the container reference: the id from the incident's
	// alert for buttons, what the user typed for slash commands.
	Container string
	Actor     Actor
	// Via is "button", "command" (HTTP) or "socket" (Socket Mode).
	Via string
}

// Denial is an attempt by someone who may not do what they asked; the
// engine journals it as approval.denied.
type Denial struct {
	Actor      Actor
	Action     string // what was asked ("container.kill", or ActionApproval)
	Incident   string
	Container  string
	ApprovalID string
	Reason     string
}

// Dispatcher runs what Slack users ask, through the engine's guardrails and
// journal. Implementations must be safe for concurrent use.
type Dispatcher interface {
	// Act runs one command for an authorised user and returns its result.
	// It must not call Slack.Update for this command: the handler reports
	// the step on the incident message itself.
	Act(ctx context.Context, cmd Command) (actions.Result, error)
	// Approve records an approver's decision on a held action; an error
	// (unknown, expired or already decided) is shown to the user.
	Approve(ctx context.Context, approvalID string, actor Actor, approve bool) error
	// Status is the text of `/riposte status` (mrkdwn, escaped by the
	// implementation).
	Status(ctx context.Context) (string, error)
	// Denied records a refused attempt (journal: approval.denied).
	Denied(ctx context.Context, d Denial) error
}

type noDispatcher struct{}

var errNoDispatcher = errors.New("riposte cannot act from Slack here (no dispatcher)")

func (noDispatcher) Act(context.Context, Command) (actions.Result, error) {
	return actions.Result{}, errNoDispatcher
}
func (noDispatcher) Approve(context.Context, string, Actor, bool) error { return errNoDispatcher }
func (noDispatcher) Status(context.Context) (string, error)             { return "", errNoDispatcher }
func (noDispatcher) Denied(context.Context, Denial) error               { return nil }

// Kind is the kind of interaction.
type Kind int

// Kinds of interaction.
const (
	KindButton   Kind = iota + 1 // a response button of an incident message
	KindApproval                 // Approve or Deny of a held action
)

// Interaction is one riposte button press, parsed and checked.
type Interaction struct {
	Kind Kind
	// Button interactions.
	Action     string // catalog action or ActionAcknowledge
	Restricted bool   // only approvers may press it
	Incident   string
	Container  string
	// Approval interactions.
	ApprovalID string
	Approve    bool
	Approvers  []string // the approval's own approvers; empty: config approvers
	Held       []string // the held actions, for the closing text
	// Where and who.
	User        Actor
	ChannelID   string
	MessageTS   string
	ResponseURL string

	via string // Command.Via
}

// ErrIgnored marks a payload that is valid but not riposte's (another app's
// action, a view submission...). Handlers answer 200 and do nothing.
var ErrIgnored = errors.New("not a riposte interaction")

// Limits on what a payload may carry.
const (
	maxRefLen     = 128
	maxPayloadLen = 1 << 20
)

var (
	refPattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$`)
	containerPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	channelPattern   = regexp.MustCompile(`^[CDG][A-Z0-9]{2,20}$`)
	tsPattern        = regexp.MustCompile(`^[0-9]{1,12}\.[0-9]{1,9}$`)
)

// ParseInteraction parses the body of a POST to the interactivity endpoint
// (form-encoded, `payload=<json>`). It accepts only riposte's block_actions;
// anything else is an error wrapping ErrIgnored or a description of what is
// wrong.
func ParseInteraction(body []byte) (Interaction, error) {
	if len(body) > maxPayloadLen {
		return Interaction{}, errors.New("parse slack interaction: body too large")
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return Interaction{}, fmt.Errorf("parse slack interaction: %w", err)
	}
	payload := vals.Get("payload")
	if payload == "" {
		return Interaction{}, errors.New("parse slack interaction: no payload")
	}
	return ParseInteractionPayload([]byte(payload))
}

// ParseInteractionPayload parses the JSON payload of an interaction, as the
// HTTP form carries it and as Socket Mode delivers it.
func ParseInteractionPayload(payload []byte) (Interaction, error) {
	var cb slack.InteractionCallback
	if err := json.Unmarshal(payload, &cb); err != nil {
		return Interaction{}, fmt.Errorf("parse slack interaction: %w", err)
	}
	return interactionFrom(cb)
}

func interactionFrom(cb slack.InteractionCallback) (Interaction, error) {
	if cb.Type != slack.InteractionTypeBlockActions {
		return Interaction{}, fmt.Errorf("parse slack interaction: type %q: %w", cb.Type, ErrIgnored)
	}
	acts := cb.ActionCallback.BlockActions
	if len(acts) != 1 {
		return Interaction{}, fmt.Errorf("parse slack interaction: want one action, got %d", len(acts))
	}
	a := acts[0]
	id, ok := strings.CutPrefix(a.ActionID, actionIDPrefix)
	if !ok {
		return Interaction{}, fmt.Errorf("parse slack interaction: action %q: %w", a.ActionID, ErrIgnored)
	}
	in := Interaction{
		User:        Actor{ID: cb.User.ID, Name: cleanName(cb.User.Name)},
		ChannelID:   cb.Channel.ID,
		MessageTS:   cb.Container.MessageTs,
		ResponseURL: cb.ResponseURL,
	}
	if in.ChannelID == "" {
		in.ChannelID = cb.Container.ChannelID
	}
	if in.MessageTS == "" {
		in.MessageTS = cb.Message.Timestamp
	}
	if !userIDPattern.MatchString(in.User.ID) {
		return Interaction{}, fmt.Errorf("parse slack interaction: user id %q is not a Slack user id", clip(in.User.ID))
	}
	if in.ChannelID != "" && !channelPattern.MatchString(in.ChannelID) {
		return Interaction{}, fmt.Errorf("parse slack interaction: channel id %q is not a Slack channel id", clip(in.ChannelID))
	}
	if in.MessageTS != "" && !tsPattern.MatchString(in.MessageTS) {
		return Interaction{}, fmt.Errorf("parse slack interaction: message ts %q is not a Slack ts", clip(in.MessageTS))
	}
	if in.ResponseURL != "" {
		if u, err := url.Parse(in.ResponseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return Interaction{}, errors.New("parse slack interaction: response_url is not an http(s) URL")
		}
	}
	switch id {
	case "approve", "deny":
		var v approvalValue
		if err := strictJSON(a.Value, &v); err != nil {
			return Interaction{}, fmt.Errorf("parse slack interaction: approval value: %w", err)
		}
		if !refPattern.MatchString(v.Approval) || (v.Incident != "" && !refPattern.MatchString(v.Incident)) {
			return Interaction{}, errors.New("parse slack interaction: approval value: bad approval or incident id")
		}
		for _, ap := range v.Approvers {
			if err := CheckApprover(ap); err != nil {
				return Interaction{}, fmt.Errorf("parse slack interaction: approval value: %w", err)
			}
		}
		for _, h := range v.Held {
			if !refPattern.MatchString(h) {
				return Interaction{}, errors.New("parse slack interaction: approval value: bad action name")
			}
		}
		in.Kind = KindApproval
		in.ApprovalID, in.Incident, in.Approvers, in.Held = v.Approval, v.Incident, v.Approvers, v.Held
		in.Approve = id == "approve"
		in.Action = ActionApproval
		in.Restricted = true
		return in, nil
	}
	b, ok := buttonByID(id)
	if !ok {
		return Interaction{}, fmt.Errorf("parse slack interaction: unknown riposte action %q", clip(a.ActionID))
	}
	var v buttonValue
	if err := strictJSON(a.Value, &v); err != nil {
		return Interaction{}, fmt.Errorf("parse slack interaction: button value: %w", err)
	}
	if !refPattern.MatchString(v.Incident) {
		return Interaction{}, errors.New("parse slack interaction: button value: bad incident id")
	}
	if b.container && !containerPattern.MatchString(v.Container) {
		return Interaction{}, errors.New("parse slack interaction: button value: bad container reference")
	}
	if !b.container {
		v.Container = ""
	}
	in.Kind = KindButton
	in.Action, in.Restricted = b.action, b.restricted
	in.Incident, in.Container = v.Incident, v.Container
	return in, nil
}

func strictJSON(s string, v any) error {
	if len(s) > 2000 {
		return errors.New("longer than 2000 bytes")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("not the JSON riposte puts in its buttons")
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// cleanName keeps a display name to printable characters and 80 runes.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) && r != '<' && r != '>' && r != '&' {
			return r
		}
		return -1
	}, s)
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80])
	}
	return strings.TrimSpace(s)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
