package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Approval is a request for a human decision on held actions.
type Approval struct {
	// ID is the approval's id in the engine; Dispatcher.Approve receives it.
	ID       string
	Incident string
	Playbook string
	// Held are the actions waiting ("container.pause").
	Held []string
	// Container is the container's name, for the text.
	Container string
	// Approvers may decide; empty: the config's approvers.
	Approvers []string
	// Expires is when the engine applies on_timeout; zero: not shown.
	Expires time.Time
	// Channel picks which of the incident's messages gets the request in
	// its thread (default: the first), and is where it is posted when the
	// incident has no message yet (default: the config's channel).
	Channel string
}

// ApprovalMessage locates the posted approval request.
type ApprovalMessage struct {
	Channel string
	TS      string
}

// approvalValue is the value of the Approve and Deny buttons. Slack returns
// it unchanged in the signed interaction, so the handler knows who may
// decide without a lookup.
type approvalValue struct {
	Approval  string   `json:"approval"`
	Incident  string   `json:"incident,omitempty"`
	Approvers []string `json:"approvers,omitempty"`
	Held      []string `json:"held,omitempty"`
}

// RequestApproval posts Approve and Deny buttons in the incident's thread
// (also sent to the channel, so that approvers see it), or in the channel
// when the incident has no message.
func (s *Slack) RequestApproval(ctx context.Context, ap Approval) (ApprovalMessage, error) {
	if s.api == nil {
		return ApprovalMessage{}, errors.New("request slack approval: approvals need a bot token (incoming webhooks cannot carry buttons)")
	}
	if !refPattern.MatchString(ap.ID) {
		return ApprovalMessage{}, fmt.Errorf("request slack approval: bad approval id %q", ap.ID)
	}
	if ap.Incident != "" && !refPattern.MatchString(ap.Incident) {
		return ApprovalMessage{}, fmt.Errorf("request slack approval: bad incident id %q", ap.Incident)
	}
	for _, a := range ap.Approvers {
		if err := CheckApprover(a); err != nil {
			return ApprovalMessage{}, fmt.Errorf("request slack approval: %w", err)
		}
	}
	for _, h := range ap.Held {
		if !refPattern.MatchString(h) {
			return ApprovalMessage{}, fmt.Errorf("request slack approval: bad action name %q", h)
		}
	}
	val, err := json.Marshal(approvalValue{Approval: ap.ID, Incident: ap.Incident, Approvers: ap.Approvers, Held: ap.Held})
	if err != nil {
		return ApprovalMessage{}, fmt.Errorf("request slack approval: %w", err)
	}
	if len(val) > 2000 {
		return ApprovalMessage{}, errors.New("request slack approval: too many approvers or actions for one button (2000 bytes)")
	}

	who := ap.Approvers
	if len(who) == 0 {
		who = s.cfg.Approvers
	}
	text := fmt.Sprintf("⏳ *Approval needed*: %s", escape(strings.Join(ap.Held, ", ")))
	if ap.Container != "" {
		text += " on " + code(ap.Container)
	}
	if ap.Playbook != "" {
		text += " (playbook " + escape(ap.Playbook) + ")"
	}
	ctxLine := "Approvers: " + s.mentions(ctx, who)
	if !ap.Expires.IsZero() {
		ctxLine += " · expires " + ap.Expires.UTC().Format("15:04 UTC")
	}
	ctxLine += " · approval " + code(ap.ID)
	blocks := []slack.Block{
		slack.NewSectionBlock(mrkdwn(text), nil, nil),
		slack.NewContextBlock("riposte_approval_context", mrkdwn(ctxLine)),
		slack.NewActionBlock(approvalBlockID,
			slack.NewButtonBlockElement(actionIDPrefix+"approve", string(val), plain("Approve")).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement(actionIDPrefix+"deny", string(val), plain("Deny")).WithStyle(slack.StyleDanger),
		),
	}
	opts := []slack.MsgOption{
		slack.MsgOptionText(fmt.Sprintf("Approval needed: %s", escape(strings.Join(ap.Held, ", "))), false),
		slack.MsgOptionBlocks(blocks...),
		slack.MsgOptionDisableLinkUnfurl(),
	}
	channel := ap.Channel
	if channel == "" {
		channel = s.cfg.Channel
	}
	if ap.Incident != "" {
		c, ok, err := s.load(ctx, ap.Incident)
		if err != nil {
			return ApprovalMessage{}, fmt.Errorf("request slack approval: %w", err)
		}
		if ok && len(c.Messages) > 0 {
			m := c.Messages[max(c.message(ap.Channel), 0)]
			channel = m.Channel
			opts = append(opts, slack.MsgOptionTS(m.TS), slack.MsgOptionBroadcast())
		}
	}
	if channel == "" {
		return ApprovalMessage{}, errors.New("request slack approval: no channel: the incident has no message and the slack config has no channel")
	}
	ch, ts, err := s.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return ApprovalMessage{}, s.redact.Error(s.classify("request slack approval", err))
	}
	return ApprovalMessage{Channel: ch, TS: ts}, nil
}

// CloseApproval replaces the approval request with text and removes its
// buttons; the engine calls it when the approval times out.
func (s *Slack) CloseApproval(ctx context.Context, m ApprovalMessage, text string) error {
	if s.api == nil {
		return errors.New("close slack approval: approvals need a bot token")
	}
	_, _, _, err := s.api.UpdateMessageContext(ctx, m.Channel, m.TS,
		slack.MsgOptionText(escape(text), false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(mrkdwn(escape(text)), nil, nil)))
	if err != nil {
		return s.redact.Error(s.classify("close slack approval", err))
	}
	return nil
}

// mentions renders approvers as Slack mentions. A handle is shown as a
// group mention when it resolves, else as text.
func (s *Slack) mentions(ctx context.Context, approvers []string) string {
	if len(approvers) == 0 {
		return "nobody configured"
	}
	out := make([]string, 0, len(approvers))
	for _, a := range approvers {
		switch {
		case userIDPattern.MatchString(a):
			out = append(out, "<@"+a+">")
		case groupIDPattern.MatchString(a):
			out = append(out, "<!subteam^"+a+">")
		default:
			if id, err := s.groups.resolve(ctx, a); err == nil {
				out = append(out, "<!subteam^"+id+">")
			} else {
				out = append(out, escape(a))
			}
		}
	}
	return strings.Join(out, ", ")
}
