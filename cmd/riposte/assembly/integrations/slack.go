package integrations

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/notifiers/slack"
)

// slackThreads keeps each incident's Slack messages in the store's
// key/value table.
type slackThreads struct{ st KV }

const slackThreadNS = "slack.thread"

func (t slackThreads) Get(ctx context.Context, incident string) (slack.Thread, bool, error) {
	v, ok, err := t.st.Get(ctx, slackThreadNS, incident)
	if err != nil || !ok {
		return slack.Thread{}, false, err
	}
	var th slack.Thread
	if err := json.Unmarshal(v, &th); err != nil {
		return slack.Thread{}, false, fmt.Errorf("read slack thread of %s: %w", incident, err)
	}
	return th, true, nil
}

func (t slackThreads) Put(ctx context.Context, incident string, th slack.Thread) error {
	v, err := json.Marshal(th)
	if err != nil {
		return fmt.Errorf("write slack thread of %s: %w", incident, err)
	}
	return t.st.Put(ctx, slackThreadNS, incident, v)
}

// slackApprovals asks for approvals in the incident's Slack thread.
type slackApprovals struct{ s *slack.Slack }

func (sa slackApprovals) RequestApproval(ctx context.Context, ap store.Approval, req actions.Request) error {
	var approvers []string
	if list, ok := ap.Detail["approvers"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				approvers = append(approvers, s)
			}
		}
	}
	name := req.Alert.Field("container.name")
	if name == "" {
		name = req.Container
	}
	_, err := sa.s.RequestApproval(ctx, slack.Approval{ID: ap.ID, Incident: ap.Incident, Playbook: ap.Key.Playbook,
		Held: []string{ap.Action}, Container: name, Approvers: approvers, Expires: ap.Deadline})
	return err
}
